"""Files the chat hands to one browser session only (a user's export of their data).

Gradio serves its files (``/gradio_api/file=…``) to anyone signed in who has the link. A download of
ours is instead offered under ``/kit/download/<token>``: the token is unguessable, it works once, only
for the session that asked for the file (the same sign-in cookie, or the same user named by the trusted
proxy), and the file is deleted as soon as it is downloaded, or after `ttl_s` when it never is.
"""

from __future__ import annotations

import hmac
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.config import Settings
from ui.auth import trusted

PREFIX = "/kit/download/"
TTL_S = 600.0
SESSION_COOKIE = "access-token"  # Gradio's sign-in cookies: access-token-<id>, access-token-unsecure-<id>


@dataclass
class Offer:
    path: Path
    filename: str
    owner: frozenset[str]
    expires: float


def cookie_values(header: str, prefix: str = SESSION_COOKIE) -> list[str]:
    """Values of the cookies whose name starts with `prefix`, from a Cookie header."""
    out = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.startswith(prefix) and value:
            out.append(value.strip().strip('"'))
    return out


def session_owner(settings: Settings, headers: dict[str, list[str]], client: str | None) -> frozenset[str]:
    """Proofs of who a request comes from, for tying a download to it: the sign-in cookies' tokens
    (ui.auth: local or oidc), the user named by a trusted proxy (proxy), the single local operator (none); empty
    when it carries none. `headers` maps lower-case names to every value sent."""
    mode = settings.ui.auth
    if mode == "none":
        return frozenset({"local"})
    if mode in ("local", "oidc"):
        return frozenset("session:" + v for cookie in headers.get("cookie", []) for v in cookie_values(cookie))
    values = headers.get(settings.ui.proxy_header.lower(), [])
    if not trusted(client, settings.ui.trusted_proxies) or len(values) != 1 or not values[0].strip():
        return frozenset()
    return frozenset({"proxy:" + values[0].strip()[:200]})


def owner_of(settings: Settings, request: Any) -> frozenset[str]:
    """session_owner() of a page event's request (Gradio's gr.Request, or None outside a request)."""
    inner = getattr(request, "request", None) or request
    headers = getattr(inner, "headers", None)
    items = headers.items() if headers is not None else []
    client = getattr(inner, "client", None)
    return session_owner(settings, request_headers(items), getattr(client, "host", None))


def _shares(mine: frozenset[str], theirs: frozenset[str]) -> bool:
    return any(hmac.compare_digest(a.encode(), b.encode()) for a in mine for b in theirs)


def request_headers(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(value)
    return out


class Downloads:
    """The files on offer, each for one session; thread-safe (Gradio's handlers run in threads)."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._offers: dict[str, Offer] = {}
        self._lock = threading.Lock()

    def offer(self, data: bytes, filename: str, owner: frozenset[str]) -> str:
        """Keep `data` in a private file for the session holding one of the proofs `owner` only; returns the
        one-time token of its link."""
        if not owner:
            raise ValueError("owner")  # a file for nobody in particular would be a file for anybody
        folder = Path(tempfile.mkdtemp(prefix="kit-download-"))  # 0700
        path = folder / Path(filename).name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._offers[token] = Offer(path, path.name, owner, time.monotonic() + self.ttl_s)
        timer = threading.Timer(self.ttl_s + 1, self.expire)
        timer.daemon = True
        timer.start()
        self.expire()
        return token

    def take(self, token: str, owner: frozenset[str]) -> tuple[str, bytes] | None:
        """The file's name and content, once, for its owner only; the file is deleted. A request from
        another session gets None and leaves the offer in place."""
        self.expire()
        with self._lock:
            offer = self._offers.get(token)
            if offer is None or not _shares(offer.owner, owner):
                return None
            del self._offers[token]
        try:
            return offer.filename, offer.path.read_bytes()
        except OSError:
            return None
        finally:
            shutil.rmtree(offer.path.parent, ignore_errors=True)

    def expire(self) -> None:
        """Delete the files whose time is over."""
        now = time.monotonic()
        with self._lock:
            gone = [t for t, o in self._offers.items() if o.expires <= now]
            offers = [self._offers.pop(t) for t in gone]
        for offer in offers:
            shutil.rmtree(offer.path.parent, ignore_errors=True)

    def pending(self) -> list[Path]:
        with self._lock:
            return [o.path for o in self._offers.values()]

    def close(self) -> None:
        with self._lock:
            offers, self._offers = list(self._offers.values()), {}
        for offer in offers:
            shutil.rmtree(offer.path.parent, ignore_errors=True)
