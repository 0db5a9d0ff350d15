"""Sign-in sessions of the browser chat (ui.auth: local).

Gradio's login gives the browser a random token (the ``access-token`` cookie) and keeps token -> user in
memory, for ever. This module keeps, beside it, what a session is worth:

* an idle lifetime (``ui.session_idle_minutes``) and an absolute one (``ui.session_max_hours``), checked on
  every request by :class:`SessionGuard`, which takes an expired or unknown token out of the request's
  cookies, so that Gradio sees no signed-in user (the page shows the sign-in form again);
* the stamp of the credentials the token was issued under (password, role: see
  ``kit.storage.users.stamp_of``), compared with the gateway's on every event (``ui.base``): a password or
  role change ends every session opened before it, used or not.

The password check itself runs in a worker thread (never on the page's event loop), with the browser's
address passed to the gateway so that its per-address throttle applies.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from kit.config import Settings
from ui.client import ApiError, GatewayClient

SIGN_IN_THREADS = 8  # sign-ins checked at once: a burst of them leaves Gradio's other worker threads alone
COOKIE_PREFIX = "access-token"  # Gradio's cookies: access-token-<id> and access-token-unsecure-<id>
Clock = Callable[[], float]


@dataclass
class Session:
    user: str
    stamp: str
    issued: float
    used: float
    role: str = ""  # ui.auth: oidc: the role and groups the provider's claims gave at sign-in or renewal
    groups: tuple[str, ...] = ()
    tokens: dict[str, str] = field(default_factory=dict)  # oidc: the ID token (to end the provider's session), refresh
    renewed: float = 0.0


class Sessions:
    """Tokens the chat issued, with their user, credentials' stamp, issue and last use times."""

    def __init__(self, idle_s: float, max_s: float, clock: Clock = time.monotonic) -> None:
        self.idle_s, self.max_s, self.clock = idle_s, max_s, clock
        self._open: dict[str, Session] = {}
        # ui.auth: oidc: renews a session's claims from the provider when due (None: the session is over)
        self.renew: Callable[[str, Session], Session | None] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sessions:
        return cls(settings.ui.session_idle_minutes * 60, settings.ui.session_max_hours * 3600)

    def open(self, token: str, user: str, stamp: str, **extra: Any) -> Session:
        """Record a new session (``extra``: role, groups, tokens of an OpenID Connect sign-in)."""
        now = self.clock()
        session = Session(user, stamp, now, now, renewed=now, **extra)
        with self._lock:
            self._prune(now)
            self._open[token] = session
        return session

    def check(self, token: str, touch: bool = True) -> Session | None:
        """The token's session if it is still valid (its idle time restarts when ``touch``); None for a token
        this chat did not issue or whose idle or absolute lifetime is over (it is then forgotten)."""
        now = self.clock()
        with self._lock:
            session = self._open.get(token)
            if session is None:
                return None
            if self._expired(session, now):
                del self._open[token]
                return None
            if touch:
                session.used = now
            return session

    def bound(self, token: str, user: str, stamp: str | None) -> bool:
        """Whether the token is a valid session of `user` issued under the credentials' stamp `stamp`;
        a session that is not is ended."""
        session = self.check(token, touch=False)
        if session is not None and session.user == user and stamp and session.stamp == stamp:
            return True
        self.close(token)
        return False

    def close(self, token: str) -> None:
        with self._lock:
            self._open.pop(token, None)

    def close_user(self, user: str) -> None:
        with self._lock:
            for token in [t for t, s in self._open.items() if s.user == user]:
                del self._open[token]

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.used > self.idle_s or now - session.issued > self.max_s

    def _prune(self, now: float) -> None:
        if len(self._open) % 64 == 0:  # now and then: memory stays bounded by the sessions alive
            for token in [t for t, s in self._open.items() if self._expired(s, now)]:
                del self._open[token]


def session_token(cookies: Any) -> str | None:
    """The sign-in token among a request's cookies (a mapping of name -> value)."""
    for name, value in (cookies or {}).items():
        if str(name).startswith(COOKIE_PREFIX) and value:
            return str(value)
    return None


# --- the sign-in ------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One POST /login as SessionGuard saw it; the sign-in function fills in who signed in."""

    address: str
    user: str = ""
    stamp: str = ""


_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("kit_sign_in", default=None)


def _too_many(err: ApiError) -> Exception:
    """HTTP 429 for the sign-in form: why (``account_locked``: the account, whatever the password;
    ``rate_limit_exceeded``: the address), the gateway's Retry-After, and a message in both languages."""
    from fastapi import HTTPException

    from ui.texts import texts

    wait = max(1, int(err.detail.get("retry_after") or 60))
    reason = "account_locked" if err.detail.get("type") == "account_locked" else "rate_limit_exceeded"
    key = "auth.locked" if reason == "account_locked" else "auth.throttled"
    message = " / ".join(texts(lang)(key, seconds=wait) for lang in ("fr", "en"))
    return HTTPException(status_code=429, detail={"reason": reason, "retry_after": wait, "message": message},
                         headers={"Retry-After": str(wait)})


def make_sign_in(gateway: GatewayClient) -> Callable[[str, str], Any]:
    """Gradio's auth function: a coroutine, so Gradio awaits it; the password check (an HTTP call to the
    gateway, which hashes the password) runs in a worker thread and the page's event loop stays free."""
    import anyio
    import anyio.to_thread

    threads: list[anyio.CapacityLimiter] = []  # made in the event loop, on first use

    async def sign_in(username: str, password: str) -> bool:
        attempt = _attempt.get()
        address = attempt.address if attempt else None
        if not threads:
            threads.append(anyio.CapacityLimiter(SIGN_IN_THREADS))
        try:
            data = await anyio.to_thread.run_sync(gateway.sign_in, username, password, address, limiter=threads[0])
        except ApiError as err:
            if err.kind == "busy":  # the gateway's throttle: say so, and when to retry, instead of "wrong password"
                raise _too_many(err) from None
            return False
        if data is None:
            return False
        if attempt is not None:
            attempt.user, attempt.stamp = str(data.get("user") or username), str(data.get("session_stamp") or "")
        return True

    return sign_in


# --- the ASGI guard -------------------------------------------------------------------------------


def _cookie_pairs(raw: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


class SessionGuard:
    """ASGI middleware: records the tokens Gradio's /login issues, ends them on /logout, and hides expired or
    unknown ones from the rest of the app."""

    def __init__(self, app: Any, sessions: Sessions) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path") or "")
        if scope["type"] == "http" and scope.get("method") == "POST" and path.rstrip("/").endswith("/login"):
            await self._login(scope, receive, send)
            return
        filtered = self._filtered(scope)
        if path.rstrip("/").endswith("/logout"):  # Gradio signs the user out of all their sessions: so do we
            token = session_token(dict(_cookie_pairs(self._cookie_header(filtered))))
            session = self.sessions.check(token, touch=False) if token else None
            try:
                await self.app(filtered, receive, send)
            finally:
                if session is not None:
                    self.sessions.close_user(session.user)
            return
        await self.app(filtered, receive, send)

    @staticmethod
    def _cookie_header(scope: dict[str, Any]) -> str:
        return "; ".join(v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"cookie")

    def _filtered(self, scope: dict[str, Any]) -> dict[str, Any]:
        """The scope with every sign-in cookie that is not a valid session taken out."""
        raw = self._cookie_header(scope)
        if COOKIE_PREFIX not in raw:
            return scope
        pairs = _cookie_pairs(raw)
        kept = [(n, v) for n, v in pairs if not n.startswith(COOKIE_PREFIX) or self.sessions.check(v)]
        if len(kept) == len(pairs):
            return scope
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"cookie"]
        if kept:
            headers.append((b"cookie", "; ".join(f"{n}={v}" for n, v in kept).encode("latin-1")))
        return {**scope, "headers": headers}

    async def _login(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = scope.get("client")
        attempt = Attempt(str(client[0]) if client else "")
        reset = _attempt.set(attempt)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200 and attempt.user:
                for key, value in message.get("headers") or []:
                    if key.lower() != b"set-cookie":
                        continue
                    cookie: SimpleCookie = SimpleCookie()
                    cookie.load(value.decode("latin-1"))
                    for name, morsel in cookie.items():
                        if name.startswith(COOKIE_PREFIX) and morsel.value:
                            self.sessions.open(morsel.value, attempt.user, attempt.stamp)
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            _attempt.reset(reset)
