"""Who is using the page: a local user signed in with Gradio's login, a user named by a trusted
reverse proxy, a user signed in with the organisation's OpenID Connect provider (ui.oidc), or the single
local operator. Worked out again on every event from the request, so
nothing the browser holds can change it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kit.config import Settings
from ui.client import Who

RoleLookup = Callable[[str], "str | None"]

LOCAL_USER = "local"


@dataclass
class Refusal:
    """Why the page cannot be used; `key` names the message in the translation files."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


def trusted(address: str | None, proxies: list[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    for entry in proxies:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _header(request: Any, name: str) -> str | None:
    """The header's value; None when it is sent more than once (a proxy must send exactly one)."""
    headers = getattr(request, "headers", None) or {}
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = getlist(name.lower()) or getlist(name)
        if len(values) > 1:
            return None
        return str(values[0]).strip() if values else ""
    try:
        value = headers.get(name.lower()) or headers.get(name)
    except AttributeError:
        value = None
    return str(value or "").strip()


def identify(settings: Settings, request: Any, get_role: RoleLookup) -> Who | Refusal:
    """Who is behind this request; `get_role` asks the gateway for a local user's role (None: unknown)."""
    mode = settings.ui.auth
    if mode == "none":
        return Who(LOCAL_USER, get_role(LOCAL_USER) or "user")  # the gateway says what the operator may do
    if mode == "local":
        name = str(getattr(request, "username", None) or "").strip()
        if not name:
            return Refusal("auth.no_user")
        role = get_role(name)
        return Who(name, role) if role else Refusal("auth.no_user")
    if mode == "oidc":  # the OpenID Connect session is read from the chat's own sessions (ui.base)
        return Refusal("auth.oidc_signed_out")
    # proxy: the header counts only when the connection comes from a trusted proxy
    client = getattr(request, "client", None)
    address = getattr(client, "host", None) if client is not None else None
    if not trusted(address, settings.ui.trusted_proxies):
        return Refusal("auth.proxy_refused", {"address": address or "?"})
    value = _header(request, settings.ui.proxy_header)
    if value is None:
        return Refusal("auth.proxy_repeated", {"header": settings.ui.proxy_header})
    name = value[:200]
    if not name:
        return Refusal("auth.proxy_missing", {"header": settings.ui.proxy_header})
    groups = _header(request, settings.ui.proxy_groups_header) or ""
    return Who(name, get_role(name) or "user", tuple(g.strip() for g in groups.split(",") if g.strip())[:64])
