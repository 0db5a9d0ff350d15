"""API keys: sent as ``Authorization: Bearer``, stored only as sha256 hashes.

Keys come from ``server.api_keys`` in kit.yaml and from ``$KIT_HOME/keys.json``, which
``kit keys create`` writes (so the commented kit.yaml is never rewritten).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from kit.config import ApiKey, Settings
from kit.errors import UsageError
from kit.files import atomic_write_text

PREFIX = "kit-"


def keys_file(home: Path) -> Path:
    return home / "keys.json"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _read_file(home: Path) -> list[ApiKey]:
    path = keys_file(home)
    if not path.exists():
        return []
    return [ApiKey.model_validate(k) for k in json.loads(path.read_text(encoding="utf-8"))]


def _write_file(home: Path, keys: list[ApiKey]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    path = keys_file(home)
    atomic_write_text(path, json.dumps([k.model_dump() for k in keys], indent=2) + "\n")
    os.chmod(path, 0o600)


def list_keys(settings: Settings) -> list[ApiKey]:
    return list(settings.server.api_keys) + _read_file(settings.home)


def create_key(settings: Settings, name: str, role: str = "user", *, acknowledge: bool = True,
               groups: list[str] | None = None) -> tuple[str, ApiKey]:
    """Create a key; its owner acknowledges the current charter when `acknowledge` is true."""
    from kit.rules.users import check_groups

    if not name.strip():
        raise UsageError("give the key a name: who or what will use it.")
    key = PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(name=name, sha256=hash_key(key), role=role, groups=check_groups(groups or []))  # type: ignore[arg-type]
    _write_file(settings.home, [*_read_file(settings.home), record])
    from kit.rules.audit import AuditEvent
    from kit.rules.state import open_state

    state = open_state(settings)
    try:
        state.audit.record(AuditEvent(action="key_created", user=key_user(name), detail={"role": role}))
        if acknowledge:
            version = settings.charter()["version"]
            state.store.acknowledge(key_user(name), version)
            state.audit.record(AuditEvent(action="acknowledge", user=key_user(name), detail={"charter": version}))
    finally:
        state.close()
    return key, record


def revoke_key(settings: Settings, name: str) -> int:
    keys = _read_file(settings.home)
    kept = [k for k in keys if k.name != name]
    if len(kept) == len(keys):
        in_config = any(k.name == name for k in settings.server.api_keys)
        where = " (it is in kit.yaml: remove it there)" if in_config else ""
        raise UsageError(f"no key named {name} in {keys_file(settings.home)}{where}.")
    _write_file(settings.home, kept)
    from kit.rules.audit import AuditEvent
    from kit.rules.state import open_state

    state = open_state(settings)
    try:
        state.audit.record(AuditEvent(action="key_revoked", user=key_user(name),
                                      detail={"keys": len(keys) - len(kept)}))
    finally:
        state.close()
    return len(keys) - len(kept)


def key_user(name: str) -> str:
    return f"key:{name}"


def find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    digest = hash_key(presented)
    for k in keys:
        if hmac.compare_digest(k.sha256, digest):
            return k
    return None
