"""HTTP guard of the browser chat (an ASGI middleware inside Gradio's app).

Requests, before Gradio sees them:

* The Host header must name this chat (its bound address, ``localhost``, ``ui.allowed_hosts``, the name
  of ``ui.public_url``), else 421: a page that rebinds its own domain name to this machine cannot use
  the chat (kit.config.host_allowed).
* A request sent by a page of another origin (its ``Origin`` header, or ``Sec-Fetch-Site`` saying
  cross-site or same-site for anything but opening a page) gets 403: no other site can read from the
  chat nor act in its user's name. Gradio's ``/gradio_api/token``, which hands the sign-in cookie's
  value to scripts, is not served at all.
* ``/kit/download/<token>``: a file offered to one session (ui.downloads), once.

Responses:

* Gradio's CORS headers are removed; the sign-in cookies are made ``HttpOnly; SameSite=Lax``, and
  ``Secure`` when the page is served over TLS (directly, through a trusted proxy that says
  ``X-Forwarded-Proto: https``, or when ``ui.public_url`` is https).
* A Content-Security-Policy that lets the page load and contact only its own origin, so the browser
  itself refuses any request to another host (fonts, scripts, images, analytics).
* ``Referrer-Policy: no-referrer``: following a link to a public source does not reveal the page's
  address; ``X-Content-Type-Options``, ``X-Frame-Options`` and a closed ``Permissions-Policy``.
* The social-preview tags of Gradio's page template (which name images on outside hosts) are
  removed from HTML pages, so no link-preview robot is sent there either; the page's language is
  the one asked for (``?lang=``), else the configured default one (the language switch updates it).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import quote

from starlette.datastructures import MutableHeaders

from kit import config as hosts  # the host and origin rules shared with the gateway
from kit.config import Settings
from ui.auth import trusted
from ui.downloads import PREFIX, Downloads, request_headers, session_owner
from ui.standalone import page_lang
from ui.texts import texts

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
SOCIAL_META = re.compile(rb'<meta\s+(?:property|name)="(?:og|twitter):[^"]*"\s+content="[^"]*"\s*/?>\s*')
HTML_LANG = re.compile(rb'(<html\s+lang=")[a-zA-Z-]*(")')
NOT_SERVED = frozenset({"/gradio_api/token", "/gradio_api/token/"})
# state-changing GETs: never from another site, even as a link
NAVIGATION_ONLY_HERE = ("/logout", "/auth/logout", PREFIX)
COOKIE_FLAGS = frozenset({"samesite", "secure", "httponly"})


def _text(key: str, **values: Any) -> str:
    """The message in English, then in French (an answer to a request has no page language)."""
    return f"{texts('en')(key, **values)} / {texts('fr')(key, **values)}"


async def answer(send: Any, status: int, message: str, etype: str) -> None:
    body = json.dumps({"error": {"message": message, "type": etype, "code": etype}}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-store"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def safe_cookie(value: str, secure: bool) -> str:
    """A Set-Cookie value with HttpOnly and SameSite=Lax (and Secure over TLS) in place of its own flags."""
    parts = [p.strip() for p in value.split(";")]
    kept = [parts[0]] + [p for p in parts[1:] if p and p.split("=", 1)[0].strip().lower() not in COOKIE_FLAGS]
    return "; ".join([*kept, "HttpOnly", "SameSite=Lax", *(["Secure"] if secure else [])])


class Doorman:
    """Which requests the chat refuses before they reach Gradio, and whether one came over TLS."""

    def __init__(self, settings: Settings | None = None, host: str | None = None) -> None:
        self.settings = settings or Settings()
        ui = self.settings.ui
        self.host = host or ui.host
        self.public = ui.public_url
        public_name = hosts.host_name(hosts.origin_netloc(ui.public_url) or "") if ui.public_url else ""
        self.names = [*ui.allowed_hosts, *([public_name] if public_name else [])]
        self.origins = [*self.names, *([ui.public_url] if ui.public_url else [])]

    def from_proxy(self, scope: dict[str, Any]) -> bool:
        client = scope.get("client")
        return client is not None and trusted(str(client[0]), self.settings.ui.trusted_proxies)

    def own_origin(self, origin: str, headers: dict[str, list[str]], scope: dict[str, Any]) -> bool:
        host = next(iter(headers.get("host", [])), None)
        if hosts.same_origin(origin, host) or hosts.origin_listed(origin, self.origins):
            return True
        forwarded = headers.get("x-forwarded-host", [])
        return len(forwarded) == 1 and self.from_proxy(scope) and hosts.same_origin(origin, forwarded[0])

    def refusal(self, scope: dict[str, Any], headers: dict[str, list[str]]) -> tuple[int, str, str] | None:
        """Why this request is refused (status, message, type), or None."""
        host = headers.get("host", [None])
        if len(host) > 1 or not hosts.host_allowed(host[0], self.host, self.names):
            return 421, _text("guard.wrong_host", host=repr(host[0])), "misdirected_request"
        origin = headers.get("origin", [])
        site = (headers.get("sec-fetch-site") or [""])[0].lower()
        mode = (headers.get("sec-fetch-mode") or [""])[0].lower()
        path = scope.get("path", "")
        foreign = any(not self.own_origin(o, headers, scope) for o in origin)
        if not origin and site in ("cross-site", "same-site"):
            navigation = scope.get("method", "GET") in ("GET", "HEAD") and mode == "navigate"
            foreign = not navigation or path.startswith(NAVIGATION_ONLY_HERE)
        if foreign:
            where = origin[0] if origin else site
            return 403, _text("guard.other_site", origin=where), "cross_origin_refused"
        if path in NOT_SERVED:
            return 404, _text("guard.not_served"), "not_found"
        return None

    def over_tls(self, scope: dict[str, Any], headers: dict[str, list[str]]) -> bool:
        if scope.get("scheme") == "https" or (self.public or "").lower().startswith("https:"):
            return True
        proto = headers.get("x-forwarded-proto", [])
        return len(proto) == 1 and proto[0].strip().lower() == "https" and self.from_proxy(scope)


def _headers(scope: dict[str, Any]) -> dict[str, list[str]]:
    return request_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))


async def _refuse(scope: dict[str, Any], send: Any, refused: tuple[int, str, str]) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        await answer(send, *refused)


class OriginGate:
    """Outside Gradio's own middleware (its CORS layer answers preflights and grants other origins): the
    Doorman's refusals first, and no ``Access-Control-*`` header on any answer."""

    def __init__(self, app: Any, doorman: Doorman) -> None:
        self.app, self.doorman = app, doorman

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.doorman.refusal(scope, _headers(scope))
        if refused:
            await _refuse(scope, send, refused)
            return

        async def no_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if not k.lower().startswith(b"access-control-")]
            await send(message)

        await self.app(scope, receive, no_cors if scope["type"] == "http" else send)


def gate_lifespan(doorman: Doorman) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan for Gradio's app (``app_kwargs={"lifespan": ...}``) that puts an OriginGate around its
    whole middleware stack when the server starts, before any request."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        app.middleware_stack = OriginGate(app.middleware_stack or app.build_middleware_stack(), doorman)
        yield

    return lifespan


class PageGuard:
    """Inside Gradio's app: the Doorman's refusals again (in case the app runs without its lifespan), the
    health probe, downloads, and the rewriting of answers (headers, cookies, HTML)."""

    def __init__(self, app: Any, lang: str = "fr", doorman: Doorman | None = None,
                 downloads: Downloads | None = None) -> None:
        self.app = app
        self.lang = re.sub(r"[^a-zA-Z-]", "", lang).encode() or b"fr"
        self.doorman = doorman or Doorman()
        self.settings = self.doorman.settings
        self.downloads = downloads or Downloads()

    # --- ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refused = self.doorman.refusal(scope, headers)
        if refused:
            await _refuse(scope, send, refused)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/health":  # for probes (Kubernetes, load balancers): the page process is up
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"status": "ok"}', "more_body": False})
            return
        if path.startswith(PREFIX):
            await self.download(scope, headers, send)
            return
        if path.endswith("/gradio_api/upload"):
            send = self.upload_send(send)
        lang = page_lang(scope, self.lang.decode()).encode()  # the language asked for (?lang=), else the default
        await self.app(scope, receive, self.guarded_send(send, self.doorman.over_tls(scope, headers), lang))

    def upload_send(self, send: Any) -> Any:
        """Gradio's refusal of a file over ``ui.max_upload_bytes`` (413, in English only), said in both languages."""
        refused: dict[str, Any] = {}

        async def told(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 413:
                refused["start"] = message
                return
            if message["type"] == "http.response.body" and "start" in refused:
                if message.get("more_body"):
                    return
                body = _text("guard.upload_too_large", limit=self.settings.ui.max_upload_bytes).encode()
                start = refused.pop("start")
                start["headers"] = [(k, v) for k, v in start.get("headers", [])
                                    if k.lower() not in (b"content-length", b"content-type")]
                start["headers"] += [(b"content-type", b"text/plain; charset=utf-8"),
                                     (b"content-length", str(len(body)).encode())]
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        return told

    async def download(self, scope: dict[str, Any], headers: dict[str, list[str]], send: Any) -> None:
        if scope.get("method") != "GET":  # not even HEAD: a look at the link must not spend it
            await answer(send, 405, _text("guard.get_only"), "method_not_allowed")
            return
        client = scope.get("client")
        owner = session_owner(self.settings, headers, client[0] if client else None)
        got = self.downloads.take(scope["path"][len(PREFIX):], owner) if owner else None
        if got is None:
            await answer(send, 404, _text("guard.download_gone"), "not_found")
            return
        name, data = got
        ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        out = [(b"content-type", b"application/json; charset=utf-8" if name.endswith(".json") else
                b"application/octet-stream"),
               (b"content-disposition", f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''"
                f"{quote(name)}".encode()),
               (b"cache-control", b"no-store"), (b"content-length", str(len(data)).encode())]
        out += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    def guarded_send(self, send: Any, secure: bool, lang: bytes | None = None) -> Any:
        held: dict[str, Any] = {}
        body = bytearray()

        async def guarded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
                message["headers"] = [
                    (k, safe_cookie(v.decode("latin-1"), secure).encode("latin-1")) if k.lower() == b"set-cookie"
                    else (k, v) for k, v in raw
                ]
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if headers.get("content-type", "").startswith("text/html") and "content-encoding" not in headers:
                    held["start"] = message  # hold it: the body is rewritten, its length changes
                    return
                await send(message)
                return
            if message["type"] == "http.response.body" and "start" in held:
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                page = HTML_LANG.sub(rb"\g<1>" + (lang or self.lang) + rb"\g<2>", SOCIAL_META.sub(b"", bytes(body)),
                                     count=1)
                start = held.pop("start")
                MutableHeaders(scope=start)["content-length"] = str(len(page))
                await send(start)
                await send({"type": "http.response.body", "body": page, "more_body": False})
                return
            await send(message)

        return guarded
