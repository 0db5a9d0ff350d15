"""`kit doctor`'s security checks: who can reach the API and the chat, who may set identity headers,
file modes of the configuration, keys, users, audit key and model files, the audit chain, the limits."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from kit.errors import KitError
from kit.ops.checks import Check, Status, listening

if TYPE_CHECKING:
    from kit.config import Settings


def key_counts(settings: Settings) -> dict[str, int]:
    """API keys by kind: ``user`` (people and applications: admin, auditor and user roles) and ``service`` (a front
    end such as the browser chat, acting for its signed-in users). `kit doctor` and `kit report` both count so."""
    from kit.storage.keys import list_keys

    keys = list_keys(settings, fresh=True)
    service = sum(1 for k in keys if k.role == "service")
    return {"user": len(keys) - service, "service": service}


def check_keys(settings: Settings) -> Check:
    from kit.config import is_loopback_host

    srv = settings.server
    api = listening(settings, "api")
    host, where = api["host"], f"{api['host']}:{api['port']}"
    users = key_counts(settings)["user"]
    if is_loopback_host(host):
        return Check("api exposure", "PASS", f"API on {where}; {users} user key(s); "
                     f"local operator: {srv.local_operator_role}")
    if users:
        return Check("api exposure", "PASS", f"API on {where} with {users} user key(s)")
    status: Status = "WARN" if srv.allow_insecure_bind else "FAIL"
    return Check("api exposure", status, f"the API binds to {host} and no user key exists: it refuses every "
                 "request", "create keys with `kit keys create NAME`, or bind server.host to 127.0.0.1")


def check_proxies(settings: Settings) -> Check:
    ui = settings.ui
    if ui.auth != "proxy":
        return Check("trusted proxies", "PASS", f"sign-in is {ui.auth}: no identity header is trusted")
    wide = []
    for entry in ui.trusted_proxies:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            wide.append(f"{entry} (not an address)")
            continue
        if net.num_addresses > 256:
            wide.append(f"{entry} ({net.num_addresses} addresses)")
        elif net.network_address.is_loopback:
            wide.append(f"{entry} (any local process could claim to be anyone)")
    if not ui.trusted_proxies:
        return Check("trusted proxies", "FAIL", "ui.auth is proxy but no proxy is trusted",
                     "list the reverse proxy's address in ui.trusted_proxies")
    if wide:
        return Check("trusted proxies", "WARN", "broad or local entries: " + ", ".join(wide),
                     "list only the reverse proxies' own addresses in ui.trusted_proxies")
    return Check("trusted proxies", "PASS", ", ".join(ui.trusted_proxies))


IDLE_MINUTES_ADVISED, MAX_HOURS_ADVISED = 60, 12


def check_sessions(settings: Settings) -> Check:
    """Local sign-in: sessions end when idle and after a working day (with a proxy, the portal decides)."""
    ui = settings.ui
    if ui.auth != "local":
        return Check("sign-in sessions", "PASS", f"sign-in is {ui.auth}: the chat keeps no sign-in session")
    detail = f"idle {ui.session_idle_minutes:g} min, at most {ui.session_max_hours:g} h"
    if ui.session_idle_minutes > IDLE_MINUTES_ADVISED or ui.session_max_hours > MAX_HOURS_ADVISED:
        return Check("sign-in sessions", "WARN", f"long-lived sessions: {detail}",
                     f"set ui.session_idle_minutes to {IDLE_MINUTES_ADVISED} or less and ui.session_max_hours to "
                     f"{MAX_HOURS_ADVISED} or less")
    return Check("sign-in sessions", "PASS", detail)


def _mode_problem(path: Path, *, secret: bool) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_mode & stat.S_IWOTH:
        return f"{path} is writable by everyone ({stat.filemode(st.st_mode)})"
    if secret and st.st_mode & (stat.S_IROTH | stat.S_IWGRP):
        return f"{path} is readable by everyone or writable by its group ({stat.filemode(st.st_mode)})"
    return None


def check_file_modes(settings: Settings) -> Check:
    home = Path(settings.home)
    secrets = [home / "kit.db", home / "ui-service.key"]
    from kit.storage.keyfiles import AUDIT_KEY, PSEUDONYM_KEY, key_path

    for setting, name in (("audit_key_file", AUDIT_KEY), ("pseudonym_key_file", PSEUDONYM_KEY)):
        try:
            secrets.append(key_path(settings, setting, name))
        except KitError as exc:
            return Check("file modes", "FAIL", str(exc), f"set policy.{setting} to a file outside $KIT_HOME")
    problems = [p for p in (_mode_problem(path, secret=True) for path in secrets) if p]
    models = home / "models"
    if models.exists():
        for path in [models, *models.rglob("*")]:
            problem = _mode_problem(path, secret=False)
            if problem:
                problems.append(problem)
                break
    if problems:
        return Check("file modes", "FAIL", "; ".join(problems[:4]),
                     "chmod 0600 the keys, users, audit and conversation files; chmod -R o-w the models")
    config = _mode_problem(Path(settings.source), secret=True) if settings.source else None
    if config:
        return Check("file modes", "WARN", f"{config}: it may hold the engine's key",
                     "chmod 0640 kit.yaml (group: the service's) or 0600")
    return Check("file modes", "PASS", "configuration, keys, users, audit and model files are not open to others")


def check_audit_chain(settings: Settings) -> Check:
    from kit.storage.state import open_state

    try:
        state = open_state(settings)
    except (KitError, OSError) as exc:
        return Check("audit chain", "FAIL", f"the audit log cannot be opened: {exc}", "see the message above")
    try:
        result = state.audit.verify()
    finally:
        state.close()
    if result.ok:
        return Check("audit chain", "PASS", f"{result.rows_checked} rows, chain intact")
    return Check("audit chain", "FAIL", f"{result.reason} (first bad row {result.first_bad_id})",
                 "keep the database for investigation; `kit audit export` what remains and tell the DPO")


def check_limits(settings: Settings) -> Check:
    limits = getattr(settings, "limits", None)
    if limits is None:
        return Check("limits", "WARN", "this version sets no per-user limits", "upgrade kit")
    roles = {name: getattr(limits, name, None) for name in ("user", "admin", "auditor")}
    unlimited = [name for name, rl in roles.items() if rl is not None and not any(
        getattr(rl, field, 0) for field in ("requests_per_minute", "tokens_per_minute")) and getattr(
        rl, "concurrent", 0) == 0]  # None: the default cap, below server.parallel
    if unlimited:
        return Check("limits", "WARN", f"no request, token or concurrency limit for: {', '.join(unlimited)}",
                     "set limits.<role>.requests_per_minute, tokens_per_minute and concurrent in kit.yaml")
    return Check("limits", "PASS", "per-user request, token and concurrency limits are set")


def security_checks(settings: Settings) -> list[Check]:
    checks = [check_keys(settings), check_proxies(settings), check_sessions(settings), check_file_modes(settings),
              check_limits(settings)]
    if os.environ.get("KIT_DOCTOR_SKIP_AUDIT") != "1":
        checks.append(check_audit_chain(settings))
    return checks
