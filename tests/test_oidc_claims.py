"""Claims of an OpenID Connect provider -> a kit account (kit.oidc.claims), and the ui.oidc settings that
kit refuses before starting. The tokens themselves are checked against a real provider in test_oidc.py."""

from __future__ import annotations

import pytest

from kit.config import Oidc, Settings
from kit.errors import ConfigError, SignInError
from kit.oidc.claims import account, claim, values


def test_claims_are_read_by_name_then_by_dotted_path() -> None:
    claims = {"realm_access": {"roles": ["kit-admins", "offline"]}, "https://example.org/groups": ["rh"]}
    assert claim(claims, "realm_access.roles") == ["kit-admins", "offline"]
    assert claim(claims, "https://example.org/groups") == ["rh"]  # a name holding dots is a name first
    assert claim(claims, "realm_access.missing") is None and claim(claims, "") is None
    assert values({"groups": "rh, finance  paie"}, "groups") == ["rh", "finance", "paie"]
    assert values({"groups": ["rh", 7, {"x": 1}, " "]}, "groups") == ["rh", "7"]


def test_user_role_and_groups_from_the_settings() -> None:
    oidc = Oidc(issuer="https://sso.example.org", client_id="kit", role_claim="realm_access.roles",
                roles={"kit-auditors": "auditor", "kit-admins": "admin"})
    claims = {"sub": "u1", "email": "ana@example.org", "groups": ["rh", "finance", "rh"],
              "realm_access": {"roles": ["kit-auditors", "kit-admins", "other"]}}
    found = account(claims, oidc)
    assert (found.user, found.role, found.subject) == ("ana@example.org", "admin", "u1")
    assert found.groups == ("finance", "rh")
    assert account({**claims, "realm_access": {"roles": ["other"]}}, oidc).role == "user"
    with pytest.raises(SignInError, match="preferred_username"):
        account(claims, oidc.model_copy(update={"user_claim": "preferred_username"}))


def test_organisation_filters() -> None:
    oidc = Oidc(issuer="https://sso.example.org", client_id="kit", allowed_domains=["Example.org"],
                user_claim="preferred_username")
    assert account({"sub": "1", "preferred_username": "ana@example.org"}, oidc).user == "ana@example.org"
    with pytest.raises(SignInError, match="elsewhere.org"):
        account({"sub": "1", "preferred_username": "ana@example.org", "email": "ana@elsewhere.org"}, oidc)
    with pytest.raises(SignInError, match="allowed_domains"):
        account({"sub": "1", "preferred_username": "ana"}, oidc)
    siret = Oidc(issuer="https://x.example", client_id="kit", allowed_siret=["217 500 016 00019"])
    assert account({"sub": "1", "email": "a@b.fr", "siret": "21750001600019"}, siret).user == "a@b.fr"
    with pytest.raises(SignInError, match="siret"):
        account({"sub": "1", "email": "a@b.fr", "siret": "11111111111111"}, siret)


@pytest.mark.parametrize(("oidc", "message"), [
    ({}, "ui.oidc.issuer is empty"),
    ({"issuer": "https://sso.example.org"}, "ui.oidc.client_id is empty"),
    ({"issuer": "http://sso.example.org", "client_id": "kit"}, "must be an https address"),
    ({"issuer": "https://sso.example.org", "client_id": "kit"}, "redirect_url"),
])
def test_incomplete_settings_are_refused(oidc: dict[str, str], message: str) -> None:
    settings = Settings.model_validate({"deployment": {"purpose": "Rédiger des textes."},
                                        "ui": {"auth": "oidc", "oidc": oidc}})
    with pytest.raises(ConfigError, match=message):
        settings.check_ui()


def test_the_redirect_url_defaults_to_the_public_address() -> None:
    settings = Settings.model_validate({"ui": {"auth": "oidc", "public_url": "https://chat.example.org/", "oidc": {
        "issuer": "http://127.0.0.1:9000", "client_id": "kit"}}})
    settings.check_oidc()
    assert settings.oidc_redirect_url() == "https://chat.example.org/auth/oidc/callback"
