"""Checks made before any route: the Host header must name this server (a page on another domain that
resolves to 127.0.0.1 cannot drive the API: DNS rebinding)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from kit.config import Settings, is_loopback_host
from kit.gateway.errors import error_response

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def host_name(header: str) -> str:
    """The host part of a Host header, without port or IPv6 brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(settings: Settings, header: str | None) -> bool:
    if not header:
        return True  # HTTP/1.0 without Host: nothing to rebind
    name = host_name(header)
    srv = settings.server
    allowed = LOOPBACK_NAMES | {h.lower() for h in srv.allowed_hosts}
    if name in allowed or name.startswith("127."):
        return True
    if is_loopback_host(srv.host):
        return False
    if srv.host in ("0.0.0.0", "::", ""):
        return not srv.allowed_hosts  # every address of the machine, unless the names are listed
    return name == host_name(srv.host)


class HostGuard:
    """Plain ASGI middleware (not BaseHTTPMiddleware, which hides a client's disconnect from the routes):
    answers 421 itself when the Host header names another server, else passes the request on untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
            if not host_allowed(self.settings, host):
                response = error_response(
                    421, f"this server does not answer to the host name {host!r}: use its own address, or add "
                    "the name to server.allowed_hosts.", "misdirected_request")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_guard(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(HostGuard, settings=settings)
