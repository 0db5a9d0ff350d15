"""Checks made before any route.

* The Host header must name this server: a page on another domain that resolves to 127.0.0.1 cannot
  drive the API (DNS rebinding). See kit.config.host_allowed for the names accepted.
* A request that changes something (POST, PUT, PATCH, DELETE) sent by a browser page of another site
  is refused: its ``Origin`` must be this server's own or one of ``server.allowed_origins``, and
  ``Sec-Fetch-Site`` must not say cross-site. Clients that send no Origin (curl, the OpenAI SDK, the
  browser chat's own backend) are not browsers driven by a page, and keep working.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from kit import config
from kit.config import Settings
from kit.gateway.errors import error_response

LOOPBACK_NAMES = config.LOOPBACK_NAMES
host_name = config.host_name
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_allowed(settings: Settings, header: str | None) -> bool:
    srv = settings.server
    return config.host_allowed(header, srv.host, srv.allowed_hosts)


def origin_allowed(settings: Settings, headers: Headers) -> bool:
    """Whether a state-changing request may come from where the browser says it comes from."""
    origin = headers.get("origin")
    if origin is not None:
        return config.same_origin(origin, headers.get("host")) or config.origin_listed(
            origin, settings.server.allowed_origins)
    return headers.get("sec-fetch-site", "").lower() not in ("cross-site", "same-site")


class HostGuard:
    """Plain ASGI middleware (not BaseHTTPMiddleware, which hides a client's disconnect from the routes):
    answers 421 itself when the Host header names another server, 403 to a state-changing request from a
    page of another site, else passes the request on untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host")
            if not host_allowed(self.settings, host):
                response = error_response(
                    421, f"this server does not answer to the host name {host!r}: use its own address, or add "
                    "the name to server.allowed_hosts. / Ce serveur ne répond pas au nom d'hôte "
                    f"{host!r} : utilisez son adresse, ou ajoutez ce nom à server.allowed_hosts.",
                    "misdirected_request")
                await response(scope, receive, send)
                return
            if scope.get("method", "GET").upper() in STATE_CHANGING and not origin_allowed(self.settings, headers):
                origin = headers.get("origin") or headers.get("sec-fetch-site", "")
                response = error_response(
                    403, f"a page of another site ({origin}) may not send this request: call the API from "
                    "a program, or add the page's origin to server.allowed_origins. / Une page d'un autre "
                    f"site ({origin}) ne peut pas envoyer cette requête : appelez l'API depuis un programme, "
                    "ou ajoutez l'origine de la page à server.allowed_origins.", "cross_origin_refused")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_guard(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(HostGuard, settings=settings)
