"""Moves the files of the earlier one-machine layout into the database: users.db, keys.json, state.db
(acknowledgements, feedback, switches), conversations.db and, when the audit log goes to the same database,
audit.db (its rows copied as they are, so the chain still verifies with the same key).

Each file is read whole, its rows written in one transaction, then the file is moved to
``$KIT_HOME/imported-<time>/`` (mode 0700): nothing is lost if the import stops half way, and the
administrator deletes that folder once the import is checked (it holds conversations and password hashes).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kit.errors import KitError
from kit.storage import tables

LEGACY_FILES = ("users.db", "keys.json", "state.db", "conversations.db", "audit.db")
_AUDIT_TABLES = ("audit_log", "audit_anchor", "audit_head", "audit_chain")


def legacy_files(home: Path, *, with_audit: bool) -> list[Path]:
    names = LEGACY_FILES if with_audit else LEGACY_FILES[:-1]
    return [Path(home) / name for name in names if (Path(home) / name).exists()]


def _read_sqlite(path: Path, tables_wanted: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    try:
        conn = sqlite3.connect(path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {name: [dict(r) for r in conn.execute(f"SELECT * FROM {name} ORDER BY rowid")]
                    for name in tables_wanted if name in present}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise KitError(f"{path} cannot be read ({exc}): restore it from a backup, or move it away to start "
                       "without it.") from None


def _insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], key: tuple[str, ...]) -> int:
    """Insert the rows whose key is not in the table yet (an import run twice adds nothing)."""
    columns = {c.name for c in table.columns}
    seen = {tuple(r) for r in conn.execute(sa.select(*[table.c[k] for k in key]))}
    fresh = [{k: v for k, v in row.items() if k in columns} for row in rows if tuple(row[k] for k in key) not in seen]
    if fresh:
        conn.execute(table.insert(), fresh)
    return len(fresh)


def _users(conn: sa.Connection, path: Path) -> int:
    rows = _read_sqlite(path, ("users",)).get("users", [])
    for row in rows:
        row.setdefault("groups", "")
    return _insert_new(conn, tables.users, rows, ("name",))


def _keys(conn: sa.Connection, path: Path) -> int:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KitError(f"{path} cannot be read ({exc}): restore it from a backup.") from None
    created = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    rows = [{"sha256": k["sha256"], "name": k["name"], "role": k.get("role", "user"),
             "groups": ",".join(k.get("groups") or []), "created": created} for k in data]
    return _insert_new(conn, tables.api_keys, rows, ("sha256",))


def _state(conn: sa.Connection, path: Path) -> int:
    found = _read_sqlite(path, ("acks", "feedback", "flags"))
    n = _insert_new(conn, tables.acks, found.get("acks", []), ("user", "version"))
    n += _insert_new(conn, tables.flags, found.get("flags", []), ("key",))
    feedback = [{k: v for k, v in row.items() if k != "id"} for row in found.get("feedback", [])]
    if feedback:
        conn.execute(tables.feedback.insert(), feedback)
    return n + len(feedback)


def _conversations(conn: sa.Connection, path: Path) -> int:
    found = _read_sqlite(path, ("conversations", "messages"))
    n = _insert_new(conn, tables.conversations, found.get("conversations", []), ("id",))
    known = {r[0] for r in conn.execute(sa.select(tables.messages.c.conversation_id).distinct())}
    fresh = [{k: v for k, v in row.items() if k != "id"} for row in found.get("messages", [])
             if row["conversation_id"] not in known]
    if fresh:
        conn.execute(tables.messages.insert(), fresh)
    return n + len(fresh)


def _audit(conn: sa.Connection, path: Path) -> int:
    if conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar_one():
        raise KitError(f"the database already holds audit rows, and {path} holds others: two chains cannot be "
                       "merged. Keep the old log where it is (KIT_AUDIT_URL=sqlite:///" f"{path}) or archive it "
                       "(`kit audit export`) and move it away.")
    found = _read_sqlite(path, _AUDIT_TABLES)
    meta = sa.MetaData()
    n = 0
    for name in _AUDIT_TABLES:
        rows = found.get(name, [])
        if rows:
            table = sa.Table(name, meta, autoload_with=conn)
            conn.execute(table.insert(), rows)
            n += len(rows)
    return n


_IMPORTERS: dict[str, Callable[[sa.Connection, Path], int]] = {
    "users.db": _users, "keys.json": _keys, "state.db": _state, "conversations.db": _conversations,
    "audit.db": _audit}


def import_legacy(db: Any, home: Path, *, with_audit: bool) -> dict[str, int]:
    """Import each file of the earlier layout found under ``home``; return the rows imported per file."""
    done: dict[str, int] = {}
    files = legacy_files(home, with_audit=with_audit)
    if not files:
        return done
    folder = Path(home) / f"imported-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    for path in files:
        with db.begin("written") as conn:
            done[path.name] = _IMPORTERS[path.name](conn, path)
        folder.mkdir(mode=0o700, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{path}{suffix}")
            if part.exists():
                os.replace(part, folder / part.name)
    return done
