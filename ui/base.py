"""What every handler shares: its part of the page, the gateway client, identity, sessions, messages
and the files offered for download."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from kit.config import Settings
from ui.auth import Refusal, identify
from ui.client import ApiError, GatewayClient, Who
from ui.downloads import PREFIX as DOWNLOAD_PREFIX
from ui.downloads import Downloads, owner_of
from ui.sessions import Sessions, session_token
from ui.texts import Texts, texts
from ui.views import error_text

if TYPE_CHECKING:
    from ui.page import Page


class Base:
    """`c` is the handler's own part of the page (a tab's components); `page` the whole page, for the
    states and the components of other tabs that an event also updates."""

    downloads: Downloads  # the files offered to one session (exports)
    page: Page

    def __init__(self, settings: Settings, client: GatewayClient, c: Any, *, max_tokens: int,
                 sessions: Sessions | None = None, page: Page | None = None,
                 downloads: Downloads | None = None) -> None:
        self.settings = settings
        self.client = client
        self.c = c
        self.max_tokens = max_tokens
        self.sessions = sessions if sessions is not None else Sessions.from_settings(settings)
        if page is not None:
            self.page = page
        if downloads is not None:
            self.downloads = downloads

    @staticmethod
    def t(lang: str | None) -> Texts:
        return texts(lang or "fr")

    def who(self, request: Any) -> Who | Refusal:
        if self.settings.ui.auth == "oidc":
            return self._oidc_who(request)
        try:
            who = identify(self.settings, request, self.client.role_of)
        except ApiError as err:
            return Refusal("auth.gateway", {"error": err.kind})
        if isinstance(who, Who) and self.settings.ui.auth == "local" and not self._session_valid(who.user, request):
            return Refusal("auth.session_ended")
        return who

    def _oidc_who(self, request: Any) -> Who | Refusal:
        """The user of the request's OpenID Connect session, with the role and groups of its last sign-in or
        renewal (ui.oidc), renewed first when it is due."""
        token = session_token(self._cookies(request))
        session = self.sessions.check(str(token)) if token else None
        if session is not None and self.sessions.renew is not None:
            session = self.sessions.renew(str(token), session)
        if session is None:
            return Refusal("auth.oidc_signed_out")
        return Who(session.user, session.role or "user", session.groups)

    @staticmethod
    def _cookies(request: Any) -> Any:
        return getattr(getattr(request, "request", None), "cookies", None) or getattr(request, "cookies", {}) or {}

    def _session_valid(self, user: str, request: Any) -> bool:
        """The request's sign-in token is a live session of `user`, issued under the password and role the
        account has now (the gateway's stamp, fetched with the role just above): a change ends it."""
        token = session_token(self._cookies(request))
        stamp = (self.client.seen.get(user) or {}).get("session_stamp")
        return bool(token) and self.sessions.bound(str(token), user, stamp)

    def _staff(self, request: Any, *roles: str) -> Who | None:
        """The signed-in user if their role is one of ``roles``, else None (the gateway checks again)."""
        who = self.who(request)
        if isinstance(who, Refusal) or who.role not in roles:
            return None
        return who

    def refusal_text(self, refusal: Refusal, t: Texts) -> str:
        return t(refusal.key, **refusal.values)

    @staticmethod
    def error(err: ApiError, t: Texts) -> str:
        return error_text(err, t)

    @staticmethod
    def status(text: str, kind: str = "info") -> dict[str, Any]:
        """A gr.update for a status line (empty text hides it)."""
        import gradio as gr

        return gr.update(
            value=f'<div class="kit-status kit-{kind}">\n\n{text}\n\n</div>' if text else "", visible=bool(text)
        )

    def offer(self, request: Any, data: bytes, name: str, label: str) -> str | None:
        """A link to `data` as the file `name` that only this request's session can follow, once
        (ui.downloads); None when the request carries no proof of its session."""
        owner = owner_of(self.settings, request)
        if not owner:
            return None
        token = self.downloads.offer(data, name, owner)
        href = DOWNLOAD_PREFIX.lstrip("/") + token  # relative: right behind a proxy serving the chat under a path
        return f'<a href="{href}" download="{html.escape(name)}" class="kit-download">{html.escape(label)}</a>'

    @staticmethod
    def esc(value: Any) -> str:
        return html.escape(str(value or ""))
