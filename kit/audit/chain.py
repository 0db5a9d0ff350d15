"""Which rows of the audit log are chained with the key, sealed so that nobody without the key can change it.

Rows are chained with HMAC-SHA256 under the audit key (``policy.audit_key_file``), kept apart from the
database: whoever can write the database cannot recompute the chain after editing a row. Logs written
before keyed chains hold rows chained with plain SHA-256; they still verify. When such a log is first
opened with a key, the log records where the keyed part begins (``keyed_from``: the next row id) and the
hash of the last plain row, and seals both with the key (table ``audit_chain``). From then on the plain
rows cannot be rewritten either (their last hash is sealed), and the boundary cannot be moved to pass
keyed rows off as plain ones (the seal would no longer match). A log with rows but no chain record is
adopted this way only when asked (``adopt_plain``: the gateway asks when it has just created the key, i.e.
on the first start after the upgrade; `kit audit seal` asks explicitly); otherwise it is refused, since
removing the record after rewriting every row with plain SHA-256 would be a way around the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.audit.database import Database
from kit.audit.records import ANCHOR_SQL, CHAIN_SQL, HEAD_SQL, ZERO_HASH, canon
from kit.errors import AuditError

SCHEME = "hmac-sha256"
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chain:
    """Rows from ``keyed_from`` on are keyed; ``legacy_hash`` is the hash of the row just before them."""

    scheme: str
    keyed_from: int
    legacy_hash: str
    seal: str

    def sealed_by(self, key: bytes) -> bool:
        return hmac.compare_digest(self.seal, seal(key, self.keyed_from, self.legacy_hash))


def seal(key: bytes, keyed_from: int, legacy_hash: str) -> str:
    body = canon({"scheme": SCHEME, "keyed_from": keyed_from, "legacy_hash": legacy_hash})
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def read_chain(db: Database, conn: Any) -> Chain | None:
    found = db.run(conn, CHAIN_SQL)
    if not found:
        return None
    scheme, keyed_from, legacy_hash, sealed = found[0]
    return Chain(str(scheme), int(keyed_from), str(legacy_hash), str(sealed))


def holds_rows(db: Database, conn: Any) -> bool:
    """Whether the log holds or held rows (a head, a purge anchor or a row)."""
    return bool(db.slot(conn, HEAD_SQL) or db.slot(conn, ANCHOR_SQL)
                or db.run(conn, "SELECT id FROM audit_log LIMIT 1"))


def open_chain(db: Database, key: bytes, *, adopt_plain: bool = False) -> Chain:
    """The log's chain record, created (or, on a log that never held a row, re-sealed) for ``key``.

    Raises AuditError when the log holds rows sealed with another key, or rows without a chain record
    unless ``adopt_plain`` is true.
    """
    with db.write() as conn:
        chain, rows = read_chain(db, conn), holds_rows(db, conn)
        if chain is not None and (chain.sealed_by(key) or not rows):
            if not chain.sealed_by(key):
                chain = _write(db, conn, key, 1, ZERO_HASH)
            return chain
        if chain is not None:
            raise AuditError(
                f"the audit key does not match this audit log {db.where} (its chain record is sealed with another "
                "key, or was altered): restore the original key file (policy.audit_key_file) from your backup; "
                "every gateway sharing one log needs the same key")
        if not rows:
            return _write(db, conn, key, 1, ZERO_HASH)
        if not adopt_plain:
            raise AuditError(
                f"the audit log {db.where} holds rows but no chain record (table audit_chain). If it was written by "
                "a kit from before keyed chains and never opened since, adopt it once with `kit audit seal` (its "
                "rows stay verifiable with plain SHA-256); otherwise the record was removed, which is tampering: "
                "keep the database as evidence and restore it from a backup")
        last_id, last_hash = db.slot(conn, HEAD_SQL) or _last_row(db, conn)
        _logger.warning("audit log %s: rows 1 to %d were chained with plain SHA-256 (before keyed chains); they "
                        "still verify and are now sealed; new rows are chained with the audit key", db.where, last_id)
        return _write(db, conn, key, last_id + 1, last_hash)


def _last_row(db: Database, conn: Any) -> tuple[int, str]:
    found = db.run(conn, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return (int(found[0][0]), str(found[0][1])) if found else (0, ZERO_HASH)


def _write(db: Database, conn: Any, key: bytes, keyed_from: int, legacy_hash: str) -> Chain:
    chain = Chain(SCHEME, keyed_from, legacy_hash, seal(key, keyed_from, legacy_hash))
    db.run(conn, "INSERT INTO audit_chain (slot, scheme, keyed_from, legacy_hash, seal) VALUES (1, ?, ?, ?, ?) "
                 "ON CONFLICT (slot) DO UPDATE SET scheme = excluded.scheme, keyed_from = excluded.keyed_from, "
                 "legacy_hash = excluded.legacy_hash, seal = excluded.seal",
           (chain.scheme, chain.keyed_from, chain.legacy_hash, chain.seal))
    return chain


def needs_existing_key(url: str | Path) -> bool:
    """Whether the log at ``url`` holds rows chained with a key (so a missing key file must be restored,
    not created anew)."""
    db = Database(url)
    try:
        with db.read() as conn:
            return read_chain(db, conn) is not None and holds_rows(db, conn)
    finally:
        db.close()
