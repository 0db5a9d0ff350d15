"""Small state of the gateway in SQLite: acknowledgements, feedback and reports, admin switches.

The file is ``$KIT_HOME/state.db`` (mode 0600). Feedback is stored under the user's pseudonym (the
caller passes it), kept ``policy.feedback_retention_days`` days, and exported and deleted with the user's
data; acknowledgements keep the user name, since the organisation must be able to show who accepted which
charter version. The pseudonymisation key is not here: see ``kit.rules.keyfiles``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS acks (user TEXT NOT NULL, version TEXT NOT NULL, time TEXT NOT NULL,
                                 quiz_passed INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (user, version));
CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT NOT NULL,
                                     kind TEXT NOT NULL, rating INTEGER, comment TEXT NOT NULL DEFAULT '',
                                     meta TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'open');
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class FeedbackItem:
    id: int
    time: str
    user: str
    kind: str  # "feedback" or "report"
    rating: int | None
    comment: str
    meta: dict[str, Any]
    status: str


class Store:
    def __init__(self, path: Path, now: Callable[[], datetime] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if new:
            os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted feedback is overwritten, not left in free pages
        self._db.executescript(_SCHEMA)
        self._mutex = threading.Lock()
        self._now = now or (lambda: datetime.now(UTC))

    def _time(self) -> str:
        return self._now().isoformat(timespec="seconds")

    # acknowledgements
    def acknowledge(self, user: str, version: str, quiz_passed: bool = True) -> str:
        t = self._time()
        with self._mutex:
            self._db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?)", (user, version, t, int(quiz_passed)))
        return t

    def acknowledged(self, user: str, version: str) -> str | None:
        with self._mutex:
            row = self._db.execute("SELECT time FROM acks WHERE user=? AND version=?", (user, version)).fetchone()
        return row[0] if row else None

    def ack_count(self, version: str) -> int:
        with self._mutex:
            return int(self._db.execute("SELECT COUNT(*) FROM acks WHERE version=?", (version,)).fetchone()[0])

    # feedback and problem reports
    def add_feedback(self, user: str, kind: str, rating: int | None, comment: str, meta: dict[str, Any]) -> int:
        with self._mutex:
            cur = self._db.execute(
                "INSERT INTO feedback (time, user, kind, rating, comment, meta) VALUES (?, ?, ?, ?, ?, ?)",
                (self._time(), user, kind, rating, comment, json.dumps(meta, ensure_ascii=False)))
            return int(cur.lastrowid or 0)

    def feedback(self, kind: str | None = None, limit: int = 200) -> list[FeedbackItem]:
        sql = "SELECT id, time, user, kind, rating, comment, meta, status FROM feedback"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind=?"
            args = (kind,)
        with self._mutex:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [FeedbackItem(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows]

    def user_feedback(self, user: str) -> list[FeedbackItem]:
        """Everything one user (by pseudonym) sent, oldest first, for their access requests."""
        with self._mutex:
            rows = self._db.execute("SELECT id, time, user, kind, rating, comment, meta, status FROM feedback "
                                    "WHERE user=? ORDER BY id", (user,)).fetchall()
        return [FeedbackItem(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows]

    def delete_user_feedback(self, user: str) -> int:
        with self._mutex:
            return self._db.execute("DELETE FROM feedback WHERE user=?", (user,)).rowcount

    def purge_feedback(self, retention_days: int) -> int:
        """Delete feedback and reports older than ``retention_days`` days; return how many."""
        cutoff = (self._now() - timedelta(days=retention_days)).astimezone(UTC).isoformat(timespec="seconds")
        with self._mutex:
            n = self._db.execute("DELETE FROM feedback WHERE time < ?", (cutoff,)).rowcount
            if n:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n)

    # admin switches
    def set_flag(self, key: str, value: Any) -> None:
        with self._mutex:
            self._db.execute("INSERT OR REPLACE INTO flags VALUES (?, ?)", (key, json.dumps(value)))

    def flag(self, key: str, default: Any = None) -> Any:
        with self._mutex:
            row = self._db.execute("SELECT value FROM flags WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def close(self) -> None:
        self._db.close()
