"""Sign-in with the organisation's OpenID Connect provider (ui.auth: oidc).

* ``GET /auth/oidc/login`` sends the browser to the provider (303) with a fresh ``state``, ``nonce`` and PKCE
  challenge (S256); the state is also tied to this browser by a short-lived cookie, so that a sign-in started
  elsewhere (login CSRF) or a made-up state is refused.
* ``GET /auth/oidc/callback`` takes the state back once (a second use is refused), exchanges the code with the
  verifier, checks the ID token (kit.oidc.provider), reads userinfo, maps the claims to a user, role and groups
  (kit.oidc.claims) and opens a kit session: the ``access-token-kit`` cookie, which the session guard hides as
  soon as it is no longer valid.
* ``GET /auth/logout`` ends the kit session and, when the provider has an end-session endpoint, sends the
  browser there so that the provider's session ends too.
* The page itself, opened without a session, redirects to the sign-in.

A session's claims are renewed with the refresh token after ``ui.oidc.refresh_minutes`` (``renew``): a group
removed at the provider is lost then, an account disabled there ends the session. Each sign-in, refusal and
sign-out is reported to the gateway, whose audit log keeps the user's pseudonym only.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from kit.config import Settings
from kit.errors import KitError, ProviderError, SignInError
from kit.oidc.claims import Account, account
from kit.oidc.provider import Provider, pkce_pair
from ui.client import ApiError, GatewayClient, Who
from ui.sessions import Session, Sessions, session_token
from ui.texts import texts

LOGIN, CALLBACK, LOGOUT = "/auth/oidc/login", "/auth/oidc/callback", "/auth/logout"
COOKIE = "access-token-kit"  # the sign-in cookies' prefix: the session guard hides it once the session is over
LOGIN_COOKIE = "kit-oidc-login"  # ties a pending sign-in to the browser that started it
LOGIN_TTL_S = 600.0
MAX_PENDING = 10_000


def refused(key: str, **values: Any) -> SignInError:
    """A sign-in the chat itself refuses; `key` names its reason in the translation files (oidc.<key>)."""
    return SignInError(texts("en")(f"oidc.{key}", **values), key=key, values=values)


@dataclass
class Pending:
    nonce: str
    verifier: str
    browser: str
    created: float


class OidcSignIn:
    """The sign-ins under way, the provider and the sessions; thread-safe."""

    def __init__(self, settings: Settings, sessions: Sessions, gateway: GatewayClient | None = None,
                 provider: Provider | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.sessions, self.gateway = settings, sessions, gateway
        self.provider = provider or Provider.from_settings(settings)
        self.clock = clock
        sessions.renew = self.renew
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def begin(self, browser: str) -> str:
        """The provider's authorization URL for a new sign-in by `browser` (the login cookie's value)."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        now = self.clock()
        with self._lock:
            for key in [k for k, p in self._pending.items() if now - p.created > LOGIN_TTL_S]:
                del self._pending[key]
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[state] = Pending(nonce, verifier, browser, now)
        return self.provider.authorization_url(state, nonce, challenge)

    def _take(self, state: str, browser: str) -> Pending:
        with self._lock:
            pending = self._pending.pop(state, None) if state else None
        if pending is None or self.clock() - pending.created > LOGIN_TTL_S:
            raise refused("state_unknown")
        if not browser or not secrets.compare_digest(pending.browser, browser):
            raise refused("state_other_browser")
        return pending

    def _account(self, tokens: dict[str, Any], nonce: str | None) -> tuple[Account, dict[str, Any]]:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise refused("no_id_token")
        claims = self.provider.verify_id_token(id_token, nonce)
        access = tokens.get("access_token")
        if isinstance(access, str):
            try:
                claims = {**self.provider.userinfo(access, str(claims["sub"])), **claims}
            except ProviderError:
                pass  # no userinfo: the ID token's claims alone (fewer groups at worst, never more)
        return account(claims, self.settings.ui.oidc), claims

    def finish(self, query: dict[str, str], browser: str) -> tuple[str, Session]:
        """The callback: a new session's token and the session; SignInError or ProviderError when refused."""
        pending = self._take(query.get("state", ""), browser)
        issuer = str(self.provider.metadata()["issuer"])
        if query.get("iss") and query["iss"] != issuer:  # RFC 9207: the answer of another provider (mix-up)
            raise refused("other_issuer", issuer=query["iss"][:120])
        if query.get("error"):
            raise refused("provider_error", error=query["error"][:80])
        if not query.get("code"):
            raise refused("no_code")
        tokens = self.provider.exchange(query["code"], pending.verifier)
        found, _ = self._account(tokens, pending.nonce)
        kept = _kept(tokens)
        token = secrets.token_urlsafe(32)
        session = self.sessions.open(token, found.user, found.subject, role=found.role, groups=found.groups,
                                     tokens=kept)
        self.report(Who(found.user, found.role, found.groups), "login")
        return token, session

    def renew(self, token: str, session: Session) -> Session | None:
        """The session with claims fresh from the provider when ``refresh_minutes`` have passed (None: the
        provider refused, the session is ended); unchanged otherwise, or when it holds no refresh token."""
        every = self.settings.ui.oidc.refresh_minutes * 60
        refresh = session.tokens.get("refresh_token")
        with self._lock:  # one renewal at a time per session: a refresh token may be good for one use only
            if not every or not refresh or self.sessions.clock() - session.renewed < every:
                return session
            session.renewed = self.sessions.clock()
        try:
            tokens = self.provider.refresh(refresh)
            found, _ = self._account(tokens, None)
        except SignInError as exc:
            self.sessions.close(token)
            self.report(Who(session.user, session.role), "logout", f"renewal refused: {exc}")
            return None
        except ProviderError:
            return session  # the provider is unreachable for now: try again at the next event
        if found.subject != session.stamp:
            self.sessions.close(token)
            return None
        session.role, session.groups = found.role, found.groups
        session.tokens.update(_kept(tokens))
        return session

    def end(self, token: str | None, after: str | None) -> str | None:
        """End the session of `token` (and every session of its user); the provider's end-session URL, if any."""
        session = self.sessions.check(token, touch=False) if token else None
        if session is None:
            return None
        self.sessions.close_user(session.user)
        self.report(Who(session.user, session.role), "logout")
        return self.provider.end_session_url(session.tokens.get("id_token"), after)

    def report(self, who: Who | None, event: str, reason: str = "") -> None:
        if self.gateway is None:
            return
        try:
            self.gateway.oidc_event(who, event, reason)
        except ApiError:
            pass  # the sign-in goes on; the gateway logs its own failure to answer


def _kept(tokens: dict[str, Any]) -> dict[str, str]:
    """What a session keeps of the provider's tokens: the ID token (to end the provider's session) and the
    refresh token (to renew the claims); never the access token."""
    return {k: str(tokens[k]) for k in ("id_token", "refresh_token") if isinstance(tokens.get(k), str)}


# --- the ASGI routes ------------------------------------------------------------------------------------


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header counts as no cookie
                continue
    return {name: morsel.value for name, morsel in jar.items()}


def _cookie(name: str, value: str, max_age: int, path: str = "/") -> tuple[bytes, bytes]:
    return b"set-cookie", f"{name}={value}; Path={path}; Max-Age={max_age}".encode("latin-1")


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    headers = [*headers, (b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def reason(exc: KitError, t: Any) -> str:
    """Why a sign-in was refused, in the page's language when the chat itself refused it."""
    return t(f"oidc.{exc.key}", **exc.values) if isinstance(exc, SignInError) and exc.key else str(exc)


def refusal_page(lang: str, exc: KitError) -> bytes:
    """A small page saying why the sign-in failed, in both languages, with a link to try again."""
    parts = []
    for code in (lang, "en" if lang == "fr" else "fr"):
        t = texts(code)
        parts.append(f'<section lang="{code}"><h1>{html.escape(t("oidc.refused_title"))}</h1>'
                     f'<p>{html.escape(t("oidc.refused", reason=reason(exc, t)))}</p>'
                     f'<p><a href="{LOGIN}">{html.escape(t("oidc.again"))}</a></p></section>')
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>kit</title></head>'
            f'<body>{"".join(parts)}</body></html>').encode()


class OidcGate:
    """ASGI middleware of the chat's OpenID Connect routes (inside the session guard)."""

    def __init__(self, app: Any, signin: OidcSignIn) -> None:
        self.app, self.signin = app, signin
        self.lang = signin.settings.ui.default_language

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path") or "").rstrip("/") or "/"
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
        elif path == LOGIN:
            await self._login(send)
        elif path == CALLBACK:
            await self._callback(scope, send)
        elif path == LOGOUT:
            await self._logout(scope, send)
        elif path == "/" and not self._signed_in(scope):
            await _send(send, 303, [(b"location", LOGIN.encode())])
        else:
            await self.app(scope, receive, send)

    def _signed_in(self, scope: dict[str, Any]) -> bool:
        token = session_token(_cookies(scope))
        return bool(token) and self.signin.sessions.check(str(token), touch=False) is not None

    async def _login(self, send: Any) -> None:
        import anyio.to_thread

        browser = secrets.token_urlsafe(24)
        try:
            url = await anyio.to_thread.run_sync(self.signin.begin, browser)
        except KitError as exc:
            await self._refused(send, exc)
            return
        await _send(send, 303, [(b"location", url.encode()), _cookie(LOGIN_COOKIE, browser, int(LOGIN_TTL_S))])

    async def _callback(self, scope: dict[str, Any], send: Any) -> None:
        import anyio.to_thread

        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items() if v}
        browser = _cookies(scope).get(LOGIN_COOKIE, "")
        try:
            token, session = await anyio.to_thread.run_sync(self.signin.finish, query, browser)
        except KitError as exc:
            await anyio.to_thread.run_sync(self.signin.report, None, "login_failed", str(exc)[:200])
            await self._refused(send, exc)
            return
        max_age = int(self.signin.settings.ui.session_max_hours * 3600)
        await _send(send, 303, [(b"location", b"/"), _cookie(COOKIE, token, max_age),
                                _cookie(LOGIN_COOKIE, "", 0)])

    async def _logout(self, scope: dict[str, Any], send: Any) -> None:
        import anyio.to_thread

        token = session_token(_cookies(scope))
        after = self.signin.settings.ui.public_url or _origin(scope)
        url = await anyio.to_thread.run_sync(self.signin.end, token, after.rstrip("/") + "/" if after else None)
        await _send(send, 303, [(b"location", (url or LOGIN).encode()), _cookie(COOKIE, "", 0)])

    async def _refused(self, send: Any, exc: KitError) -> None:
        status = 502 if isinstance(exc, ProviderError) else 401 if isinstance(exc, SignInError) else 500
        await _send(send, status, [(b"content-type", b"text/html; charset=utf-8")], refusal_page(self.lang, exc))


def _origin(scope: dict[str, Any]) -> str | None:
    """This chat's own address as the browser reached it (the Host header), for the provider's return."""
    host = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"host"), "")
    return f"{scope.get('scheme', 'http')}://{host}" if host else None
