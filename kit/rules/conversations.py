"""History of the staff chat interface, kept per user and only for the configured retention.

With a retention of 0 days nothing is kept: no file is created and every read is empty. Otherwise
conversations live in a SQLite file (WAL mode, file mode 0600) and conversations not updated
within the retention period are removed by ``purge()``. Deleted text is overwritten in the
database file (``secure_delete``) and the write-ahead log is emptied after each deletion, so it
cannot be recovered from the files on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from kit.errors import KitError, UsageError
from kit.files import create_private

Role = Literal["user", "assistant"]
_ROLES = ("user", "assistant")
_OWN_TABLES = {"conversations", "messages", "sqlite_sequence"}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, user TEXT NOT NULL, "
    "title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user, updated)",
    "CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated)",
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL "
    "REFERENCES conversations (id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL, "
    "time TEXT NOT NULL, meta TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, id)",
)


@dataclass
class Message:
    role: Role
    content: str
    time: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversation:
    id: str
    user: str
    title: str
    created: str
    updated: str
    messages: list[Message] = field(default_factory=list)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class ConversationStore:
    """Per-user conversation history; safe to share between threads."""

    def __init__(self, path: Path, retention_days: int, *,
                 now: Callable[[], datetime] | None = None) -> None:
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) \
                or retention_days < 0:
            raise UsageError("the conversation retention must be a whole number of days, 0 or more")
        self._path = Path(path).expanduser()
        self._retention = retention_days
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if retention_days > 0:
            self._conn = self._open()

    @property
    def enabled(self) -> bool:
        return self._retention > 0

    def _open(self) -> sqlite3.Connection:
        try:
            create_private(self._path)
        except OSError as exc:
            raise KitError(f"cannot create the conversation history {self._path}: {exc}; "
                           "check the directory and its permissions") from exc
        try:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            for pragma in ("journal_mode=WAL", "secure_delete=ON", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
            for statement in _SCHEMA:
                conn.execute(statement)
        except sqlite3.Error as exc:
            raise KitError(f"cannot open the conversation history {self._path} ({exc}); "
                           "check the file or move it away to start afresh") from exc
        return conn

    def _clock(self, minus_days: int = 0) -> str:
        moment = self._now()
        if moment.tzinfo is None:
            raise UsageError("the conversation clock returned a naive datetime; give a UTC clock")
        return _iso(moment - timedelta(days=minus_days))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise KitError("the conversation history is closed; open it again")
            conn, done = self._conn, False
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
                done = True
            except sqlite3.Error as exc:
                raise KitError(f"the conversation history {self._path} could not be used ({exc}); "
                               "check the disk space and the file permissions") from exc
            finally:
                if not done and conn.in_transaction:
                    conn.rollback()

    def _scrub(self) -> None:
        """Copy overwritten pages into the database file and empty the write-ahead log."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    raise KitError(f"the conversation history {self._path} could not be "
                                   f"cleaned ({exc}); check the disk space") from exc

    def new_conversation(self, user: str, title: str) -> str:
        """Start a conversation and return its id (nothing is stored when disabled)."""
        conversation_id = uuid.uuid4().hex
        if not self.enabled:
            return conversation_id
        stamp = self._clock()
        with self._tx() as conn:
            conn.execute("INSERT INTO conversations (id, user, title, created, updated) "
                         "VALUES (?, ?, ?, ?, ?)", (conversation_id, user, title, stamp, stamp))
        return conversation_id

    def add_message(self, user: str, conversation_id: str, role: Role, content: str,
                    meta: dict[str, Any] | None = None) -> None:
        """Append a message to one of the user's conversations (no-op when disabled)."""
        if not self.enabled:
            return
        if role not in _ROLES:
            raise UsageError(f"unknown message role {role!r}; use 'user' or 'assistant'")
        try:
            meta_text = json.dumps(meta or {}, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"message metadata must be JSON-serialisable: {exc}") from exc
        stamp = self._clock()
        with self._tx() as conn:
            found = conn.execute("UPDATE conversations SET updated = ? WHERE id = ? AND user = ?",
                                 (stamp, conversation_id, user)).rowcount
            if not found:
                raise UsageError(f"conversation {conversation_id} does not exist for this user; "
                                 "start one with new_conversation")
            conn.execute("INSERT INTO messages (conversation_id, role, content, time, meta) "
                         "VALUES (?, ?, ?, ?, ?)", (conversation_id, role, content, stamp, meta_text))

    def list(self, user: str) -> list[Conversation]:
        """The user's conversations without their messages, most recently updated first."""
        if not self.enabled:
            return []
        with self._tx() as conn:
            rows = conn.execute("SELECT id, user, title, created, updated FROM conversations "
                                "WHERE user = ? ORDER BY updated DESC, created DESC, id",
                                (user,)).fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, user: str, conversation_id: str) -> Conversation | None:
        """One of the user's conversations with its messages, or None."""
        if not self.enabled:
            return None
        with self._tx() as conn:
            return self._load(conn, user, conversation_id)

    @staticmethod
    def _load(conn: sqlite3.Connection, user: str, conversation_id: str) -> Conversation | None:
        row = conn.execute("SELECT id, user, title, created, updated FROM conversations "
                           "WHERE id = ? AND user = ?", (conversation_id, user)).fetchone()
        if row is None:
            return None
        conversation = Conversation(*row)
        for role, content, time, meta in conn.execute(
                "SELECT role, content, time, meta FROM messages WHERE conversation_id = ? "
                "ORDER BY id", (conversation_id,)):
            conversation.messages.append(Message(role, content, time, json.loads(meta)))
        return conversation

    def _delete_where(self, where: str, params: tuple[str, ...]) -> int:
        with self._tx() as conn:
            ids = [r[0] for r in conn.execute(f"SELECT id FROM conversations WHERE {where}", params)]
            for conversation_id in ids:
                conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
                conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        if ids:
            self._scrub()
        return len(ids)

    def delete(self, user: str, conversation_id: str) -> bool:
        """Delete one of the user's conversations; False if the user has no such conversation."""
        if not self.enabled:
            return False
        return self._delete_where("id = ? AND user = ?", (conversation_id, user)) > 0

    def delete_all(self, user: str) -> int:
        """Delete all the user's conversations; return how many were deleted."""
        if not self.enabled:
            return 0
        return self._delete_where("user = ?", (user,))

    def export_user(self, user: str) -> dict[str, Any]:
        """Everything stored about the user, for access and portability requests."""
        conversations: list[dict[str, Any]] = []
        if self.enabled:
            with self._tx() as conn:
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM conversations WHERE user = ? ORDER BY created, id", (user,))]
                for conversation_id in ids:
                    loaded = self._load(conn, user, conversation_id)
                    if loaded is not None:
                        conversations.append(asdict(loaded))
        return {"user": user, "exported_at": self._clock(), "conversations": conversations}

    def purge(self) -> int:
        """Remove conversations not updated within the retention period; return the count.

        With a retention of 0 days, a history file left from an earlier configuration is
        deleted entirely (after checking that it only holds conversations).
        """
        if not self.enabled:
            return self._remove_leftover()
        return self._delete_where("updated < ?", (self._clock(minus_days=self._retention),))

    def _remove_leftover(self) -> int:
        if not self._path.exists():
            return 0
        try:
            conn = sqlite3.connect(self._path, timeout=30)
            try:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not tables <= _OWN_TABLES:
                    raise KitError(f"{self._path} is not a conversation history; "
                                   "check the configured path")
                count = conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] \
                    if "conversations" in tables else 0
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise KitError(f"cannot read the old conversation history {self._path} ({exc}); "
                           "delete it by hand") from exc
        for suffix in ("-wal", "-shm", ""):
            Path(f"{self._path}{suffix}").unlink(missing_ok=True)
        return int(count)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
