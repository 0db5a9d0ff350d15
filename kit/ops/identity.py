"""`kit doctor`'s checks of the OpenID Connect sign-in (ui.auth: oidc, server.oidc_bearer): the settings, the
client secret file (present, not readable by other users) and the provider itself (discovery document and
signing keys reachable from this machine)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING

from kit.errors import ConfigError, KitError
from kit.ops.checks import Check

if TYPE_CHECKING:
    from kit.config import Settings


def secret_file_check(path: str | None) -> Check:
    """The client secret file: absent (a public client: PKCE only), or readable by its owner (and group) only."""
    if not path:
        return Check("oidc secret", "WARN", "no ui.oidc.client_secret_file: the chat signs in as a public client "
                     "(PKCE only)", "register a confidential client and write its secret into a file kit reads")
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        return Check("oidc secret", "FAIL", f"{file} cannot be read ({exc.strerror})",
                     f"write the client secret into {file}, then chmod 600 {file}")
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        return Check("oidc secret", "FAIL", f"{file} has mode {stat.S_IMODE(mode):o}: other users can read or change "
                     "the client secret", f"chmod 600 {file}")
    if not file.read_text(encoding="utf-8", errors="replace").strip():
        return Check("oidc secret", "FAIL", f"{file} is empty", f"write the client secret into {file}")
    return Check("oidc secret", "PASS", f"{file} (mode {stat.S_IMODE(mode):o})")


def provider_check(settings: Settings) -> Check:
    """The provider answers its discovery document and publishes signing keys."""
    from kit.oidc.provider import Provider

    provider = Provider(settings.ui.oidc)
    try:
        meta = provider.metadata()
        keys = provider.keys()
    except KitError as exc:
        return Check("oidc provider", "FAIL", str(exc), "check ui.oidc.issuer and that this machine reaches it")
    finally:
        provider.close()
    ending = "with" if meta.get("end_session_endpoint") else "without"
    return Check("oidc provider", "PASS", f"{meta['issuer']} answers: {len(keys.keys)} signing key(s), {ending} an "
                 "end-session endpoint")


def identity_checks(settings: Settings) -> list[Check]:
    """The checks that apply: none unless the chat signs in with OpenID Connect or the gateway takes its tokens."""
    if settings.ui.auth != "oidc" and not settings.server.oidc_bearer:
        return []
    try:
        if settings.ui.auth == "oidc":
            settings.check_oidc()
        elif not settings.ui.oidc.issuer:
            raise ConfigError("server.oidc_bearer is on but ui.oidc.issuer is empty: name the identity provider.")
    except KitError as exc:
        return [Check("oidc settings", "FAIL", str(exc), "complete ui.oidc in kit.yaml")]
    oidc = settings.ui.oidc
    checks = [Check("oidc settings", "PASS", f"client {oidc.client_id or '-'} at {oidc.issuer}")]
    if settings.ui.auth == "oidc":
        checks.append(secret_file_check(settings.ui.oidc.client_secret_file))
    checks.append(provider_check(settings))
    return checks
