"""Storage of the audit log: SQLite (WAL, file mode 0600) or PostgreSQL through psycopg v3."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kit.errors import AuditError
from kit.files import create_private


class Database:
    """SQLite or PostgreSQL storage: one write connection under a lock, a fresh connection per read."""

    def __init__(self, url: str | Path) -> None:
        self.lock = threading.Lock()
        self.target = str(url)
        self.pg = self.target.startswith(("postgresql://", "postgres://"))
        self.errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        self.where = "in PostgreSQL"  # never the URL: it may hold a password
        if self.pg:
            try:
                import psycopg
            except ImportError as exc:
                raise AuditError("a PostgreSQL audit log needs the psycopg package: "
                                 "pip install 'kit[postgres]' (or 'psycopg[binary]')") from exc
            self.errors += (psycopg.Error,)
        else:
            path = Path(self.target.removeprefix("sqlite:///")).expanduser()
            self.target, self.where = str(path), f"at {path}"
            try:
                create_private(path)
            except OSError as exc:
                raise AuditError(f"cannot create the audit log {self.where}: {exc}; "
                                 "check the directory and its permissions") from exc
        self.conn: Any = None
        id_type, ts_type = ("BIGINT", 'TEXT COLLATE "C"') if self.pg else ("INTEGER", "TEXT")
        with self._guard("opened"):
            self.conn = self.connect(read=False)
            for table in ("audit_anchor", "audit_head"):
                self.run(self.conn, f"CREATE TABLE IF NOT EXISTS {table} (slot INTEGER PRIMARY KEY, "
                                    "last_id BIGINT NOT NULL, last_hash TEXT NOT NULL)")
            self.run(self.conn, f"CREATE TABLE IF NOT EXISTS audit_log (id {id_type} PRIMARY KEY, "
                     f"ts {ts_type} NOT NULL, pseudonym TEXT NOT NULL, action TEXT NOT NULL, model TEXT "
                     "NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                     "latency_ms INTEGER NOT NULL, pii_categories TEXT NOT NULL, pii_action TEXT NOT NULL, "
                     "doc_ids TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL, body TEXT, "
                     "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)")
            self.run(self.conn, "CREATE TABLE IF NOT EXISTS audit_chain (slot INTEGER PRIMARY KEY, scheme TEXT "
                                "NOT NULL, keyed_from BIGINT NOT NULL, legacy_hash TEXT NOT NULL, seal TEXT NOT NULL)")
            self.run(self.conn, "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts)")
            self.run(self.conn, "CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action)")
            self.conn.commit()

    def connect(self, *, read: bool) -> Any:
        if self.pg:
            import psycopg

            pg = psycopg.connect(self.target)
            if read:
                pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            return pg
        conn = sqlite3.connect(self.target, timeout=30, isolation_level=None, check_same_thread=False)
        if not read:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON"):
                conn.execute(f"PRAGMA {pragma}")
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except self.errors as exc:
            raise AuditError(f"the audit log {self.where} could not be {what} ({exc}); check the "
                             "disk space, the file permissions or the database server") from exc

    def _live(self) -> Any:
        if self.conn is None:
            raise AuditError("the audit log is closed; open it again")
        if self.pg and (self.conn.closed or self.conn.broken):  # the server restarted
            self.conn = self.connect(read=False)
        return self.conn

    def run(self, conn: Any, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        cur = conn.cursor()
        try:
            cur.execute(sql.replace("?", "%s") if self.pg else sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def slot(self, conn: Any, query: str) -> tuple[int, str] | None:
        found = self.run(conn, query)
        return (int(found[0][0]), str(found[0][1])) if found else None

    def set_slot(self, conn: Any, table: str, last_id: int, last_hash: str) -> None:
        self.run(conn, f"INSERT INTO {table} (slot, last_id, last_hash) VALUES (1, ?, ?) ON CONFLICT "
                       "(slot) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
                 (last_id, last_hash))

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.lock, self._guard("written"):
            conn, done = self._live(), False
            try:
                if self.pg:
                    self.run(conn, "LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
                else:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
                done = True
            finally:
                if not done:
                    conn.rollback()

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A connection reading one consistent snapshot, so long reads never block writers."""
        if self.conn is None:
            raise AuditError("the audit log is closed; open it again")
        with self._guard("read"):
            conn = self.connect(read=True)
            try:
                if not self.pg:
                    conn.execute("BEGIN")
                yield conn
            finally:
                conn.rollback()
                conn.close()

    def checkpoint(self) -> None:
        """Copy purged pages into the database file and empty the write-ahead log."""
        if not self.pg:
            with self.lock, self._guard("written"):
                self._live().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
