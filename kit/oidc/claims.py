"""Verified claims -> a kit account, under ``ui.oidc``: the user's name, role and need-to-know groups, and the
organisation filters (e-mail domains, ProConnect's ``siret``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kit.config import Oidc
from kit.errors import SignInError

RANK = {"user": 0, "auditor": 1, "admin": 2}  # several mapped values: the highest role wins
MAX_GROUPS = 64
MAX_GROUP_CHARS = 64


@dataclass(frozen=True)
class Account:
    """Who signed in, as kit sees them."""

    user: str
    role: str
    groups: tuple[str, ...]
    subject: str  # the provider's ``sub``: the same person at every sign-in


def claim(claims: dict[str, Any], name: str) -> Any:
    """The claim `name`, or, when no claim has that exact name, the one its dotted path reaches
    (``realm_access.roles``); None when absent."""
    if not name:
        return None
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def values(claims: dict[str, Any], name: str) -> list[str]:
    """A claim read as a list of strings (a JSON list, or one string with values separated by commas or spaces)."""
    found = claim(claims, name)
    if found is None:
        return []
    if isinstance(found, str):
        items: list[Any] = found.replace(",", " ").split()
    elif isinstance(found, (list, tuple)):
        items = list(found)
    else:
        items = [found]
    return [str(v).strip() for v in items if isinstance(v, (str, int)) and str(v).strip()]


def _user(claims: dict[str, Any], oidc: Oidc) -> str:
    found = claim(claims, oidc.user_claim)
    if not isinstance(found, str) or not found.strip():
        raise SignInError(f"the identity provider sent no '{oidc.user_claim}' claim: ask for the scope that carries it "
                          "(ui.oidc.scopes) or choose another claim in ui.oidc.user_claim.")
    return found.strip()[:200]


def _check_organisation(claims: dict[str, Any], oidc: Oidc) -> None:
    if oidc.allowed_domains:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:  # Entra ID may send no e-mail: its user name has one
            email = claim(claims, oidc.user_claim)
        domain = email.rsplit("@", 1)[-1].strip().lower() if isinstance(email, str) and "@" in email else ""
        allowed = {d.strip().lower().lstrip("@") for d in oidc.allowed_domains}
        if domain not in allowed:
            raise SignInError(f"the e-mail domain '{domain or '?'}' is not among those allowed to sign in "
                              "(ui.oidc.allowed_domains): ask your administrator.")
    if oidc.allowed_siret:
        siret = str(claims.get("siret") or "").replace(" ", "")
        if siret not in {s.replace(" ", "") for s in oidc.allowed_siret}:
            raise SignInError(f"the organisation (siret {siret or '?'}) is not among those allowed to sign in "
                              "(ui.oidc.allowed_siret): ask your administrator.")


def role_of(claims: dict[str, Any], oidc: Oidc) -> str:
    """The highest kit role that a value of ``role_claim`` maps to in ``roles``; user when none does."""
    mapped = [oidc.roles[v] for v in values(claims, oidc.role_claim) if v in oidc.roles]
    return max(mapped, key=RANK.__getitem__, default="user")


def account(claims: dict[str, Any], oidc: Oidc) -> Account:
    """The account that verified claims describe; SignInError when the organisation filters refuse it."""
    _check_organisation(claims, oidc)
    groups = sorted({g[:MAX_GROUP_CHARS] for g in values(claims, oidc.groups_claim)})[:MAX_GROUPS]
    return Account(_user(claims, oidc), role_of(claims, oidc), tuple(groups), str(claims.get("sub") or ""))
