"""The register of documents: every version of every document ever indexed (id, name, sha256, groups, size,
when it was indexed, replaced or removed), kept for the audit's retention period after it left the index.

Audit rows name documents by id only (``document_ingested``, ``document_removed``, the ``doc_ids`` of a chat
with documents); the register is where such an id leads once the document is gone. It lives in the document
index's own SQLite file (``docs.db``) and is written in the same transaction as the documents table, so the
index and its register never disagree. A version still indexed is never forgotten; one replaced or removed
more than ``policy.audit_retention_days`` ago is, like the audit rows that named it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS register (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    collection TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    groups TEXT NOT NULL DEFAULT '[]',
    size INTEGER NOT NULL DEFAULT 0,
    ingested_at TEXT NOT NULL,
    replaced_at TEXT,
    removed_at TEXT
);
CREATE INDEX IF NOT EXISTS register_id ON register (id);
"""
_OPEN = "replaced_at IS NULL AND removed_at IS NULL"


@dataclass
class RegisterEntry:
    """One version of one document: ``name`` as users see it (the file name, never a server path)."""

    id: str
    name: str
    collection: str
    sha256: str
    groups: list[str]
    size: int
    ingested_at: str
    replaced_at: str | None
    removed_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(source: str) -> str:
    """A source as users see it (as ``kit.documents.store.shown_source``): never a path of the server."""
    return os.path.basename(source) if os.path.isabs(source) else source


def opened(db: sqlite3.Connection, doc_id: str, source: str, collection: str, sha256: str, groups: list[str],
           size: int, now: str) -> None:
    """A version has just been published (call :func:`replaced` first for the one it replaces)."""
    db.execute("INSERT INTO register (id, source, collection, sha256, groups, size, ingested_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", (doc_id, source, collection, sha256, json.dumps(groups), size, now))


def replaced(db: sqlite3.Connection, doc_id: str, now: str) -> None:
    db.execute(f"UPDATE register SET replaced_at = ? WHERE id = ? AND {_OPEN}", (now, doc_id))


def removed(db: sqlite3.Connection, doc_id: str, now: str) -> None:
    db.execute(f"UPDATE register SET removed_at = ? WHERE id = ? AND {_OPEN}", (now, doc_id))


def fill(db: sqlite3.Connection) -> None:
    """Register the ready documents of an index written before the register existed (once: those already
    registered are left alone)."""
    db.execute(f"INSERT INTO register (id, source, collection, sha256, groups, size, ingested_at) "
               f"SELECT d.id, d.source, d.collection, d.sha256, d.groups, d.size, d.ingested_at FROM documents d "
               f"WHERE d.state = 'ready' AND NOT EXISTS (SELECT 1 FROM register r WHERE r.id = d.id AND {_OPEN})")


def purge(db: sqlite3.Connection, now: str, retention_days: int) -> int:
    """Forget the versions that left the index more than ``retention_days`` before ``now``; how many."""
    limit = (datetime.fromisoformat(now) - timedelta(days=retention_days)).isoformat(timespec="seconds")
    return db.execute("DELETE FROM register WHERE COALESCE(removed_at, replaced_at) < ?", (limit,)).rowcount


def entries(db: sqlite3.Connection) -> list[RegisterEntry]:
    """Every version kept, the most recently indexed first."""
    rows = db.execute("SELECT * FROM register ORDER BY ingested_at DESC, seq DESC").fetchall()
    return [RegisterEntry(r["id"], _name(r["source"]), r["collection"], r["sha256"], json.loads(r["groups"]),
                          r["size"], r["ingested_at"], r["replaced_at"], r["removed_at"]) for r in rows]
