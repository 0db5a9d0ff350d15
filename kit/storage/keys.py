"""API keys: sent as ``Authorization: Bearer``, stored only as sha256 hashes.

Keys come from ``server.api_keys`` in kit.yaml and from the installation's database (``kit.storage.db``),
where ``kit keys create`` writes them (so the commented kit.yaml is never rewritten, and every gateway
sharing the database knows the same keys at once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from kit.config import ApiKey, Settings
from kit.errors import UsageError
from kit.storage.db import open_database
from kit.storage.tables import api_keys as table

PREFIX = "kit-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _stored(home: Path, fresh: bool = False) -> list[ApiKey]:
    def read() -> tuple[ApiKey, ...]:
        with db.begin("read") as conn:
            rows = conn.execute(sa.select(table.c.name, table.c.sha256, table.c.role, table.c.groups)
                                .order_by(table.c.created, table.c.name)).all()
        return tuple(ApiKey(name=r[0], sha256=r[1], role=r[2], groups=[g for g in r[3].split(",") if g]) for r in rows)

    db = open_database(home)
    return list(db.recall(("api_keys",), read, fresh=fresh))  # read by every request


def list_keys(settings: Settings, *, fresh: bool = False) -> list[ApiKey]:
    """The keys of kit.yaml and of the database (as read within the last second, unless ``fresh``)."""
    return list(settings.server.api_keys) + _stored(settings.home, fresh)


def create_key(settings: Settings, name: str, role: str = "user", *, acknowledge: bool = True,
               groups: list[str] | None = None) -> tuple[str, ApiKey]:
    """Create a key; its owner acknowledges the current charter when `acknowledge` is true."""
    from kit.storage.users import check_groups

    if not name.strip():
        raise UsageError("give the key a name: who or what will use it.")
    key = PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(name=name, sha256=hash_key(key), role=role, groups=check_groups(groups or []))  # type: ignore[arg-type]
    with open_database(settings.home).begin("written") as conn:
        conn.execute(table.insert().values(sha256=record.sha256, name=name, role=role, groups=",".join(record.groups),
                                           created=datetime.now(UTC).isoformat(timespec="seconds")))
    from kit.audit import AuditEvent
    from kit.storage.state import open_state

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
    db = open_database(settings.home)
    with db.begin("written") as conn:
        revoked = conn.execute(table.delete().where(table.c.name == name)).rowcount
    if not revoked:
        in_config = any(k.name == name for k in settings.server.api_keys)
        where = " (it is in kit.yaml: remove it there)" if in_config else ""
        raise UsageError(f"no key named {name} in {db.where}{where}.")
    from kit.audit import AuditEvent
    from kit.storage.state import open_state

    state = open_state(settings)
    try:
        state.audit.record(AuditEvent(action="key_revoked", user=key_user(name),
                                      detail={"keys": revoked}))
    finally:
        state.close()
    return int(revoked)


def key_user(name: str) -> str:
    return f"key:{name}"


def find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    digest = hash_key(presented)
    for k in keys:
        if hmac.compare_digest(k.sha256, digest):
            return k
    return None
