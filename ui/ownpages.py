"""The innermost middleware of the chat's app, after ui.sessions.SessionGuard has taken out every sign-in
cookie that is not a live session: it answers ``GET /accessibility`` always (ui.statement), and ``GET /``
with the kit's own sign-in page (ui.signin) while local sign-in is on and the browser holds no live session;
everything else goes to Gradio."""

from __future__ import annotations

from typing import Any

from kit.config import Settings
from ui.sessions import COOKIE_PREFIX
from ui.signin import sign_in_html
from ui.standalone import STATEMENT_PATH, page_lang, relative_path
from ui.statement import statement_html
from ui.texts import texts


def _cookies(scope: dict[str, Any]) -> str:
    return "; ".join(v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"cookie")


async def send_html(send: Any, page: str, head_only: bool = False) -> None:
    body = page.encode("utf-8")
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if head_only else body, "more_body": False})


class OwnPages:
    """ASGI middleware: the accessibility statement, and the sign-in page in place of Gradio's."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path, head = relative_path(scope), scope.get("method") == "HEAD"
        t = texts(page_lang(scope, self.settings.ui.default_language))
        if path.rstrip("/") == STATEMENT_PATH:
            await send_html(send, statement_html(self.settings, t), head)
            return
        signed_in = any(p.strip().startswith(COOKIE_PREFIX) for p in _cookies(scope).split(";"))
        if path == "/" and self.settings.ui.auth == "local" and not signed_in:
            await send_html(send, sign_in_html(self.settings, t), head)
            return
        await self.app(scope, receive, send)
