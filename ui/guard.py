"""HTTP guard of the browser chat (an ASGI middleware inside Gradio's app).

* A Content-Security-Policy that lets the page load and contact only its own origin, so the browser
  itself refuses any request to another host (fonts, scripts, images, analytics).
* ``Referrer-Policy: no-referrer``: following a link to a public source does not reveal the page's
  address; ``X-Content-Type-Options``, ``X-Frame-Options`` and a closed ``Permissions-Policy``.
* The social-preview tags of Gradio's page template (which name images on outside hosts) are
  removed from HTML pages, so no link-preview robot is sent there either; the page's language is
  the configured default one (the language switch updates it).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import MutableHeaders

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


class PageGuard:
    def __init__(self, app: Any, lang: str = "fr") -> None:
        self.app = app
        self.lang = re.sub(r"[^a-zA-Z-]", "", lang).encode() or b"fr"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == "/health":  # for probes (Kubernetes, load balancers): the page process is up
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"status": "ok"}', "more_body": False})
            return
        held: dict[str, Any] = {}
        body = bytearray()

        async def guarded_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
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
                page = HTML_LANG.sub(rb"\g<1>" + self.lang + rb"\g<2>", SOCIAL_META.sub(b"", bytes(body)), count=1)
                start = held.pop("start")
                MutableHeaders(scope=start)["content-length"] = str(len(page))
                await send(start)
                await send({"type": "http.response.body", "body": page, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, guarded_send)
