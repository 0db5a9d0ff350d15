"""History of the staff chat interface, kept per user and only for the configured retention.

With a retention of 0 days nothing is kept and every read is empty (conversations left from an earlier
configuration are deleted by ``purge()``). Otherwise conversations live in the installation's database
(``kit.storage.db``), and those not updated within the retention period are removed by ``purge()``. In
SQLite, deleted text is overwritten in the file (``secure_delete``) and the write-ahead log is emptied after
each deletion, so it cannot be recovered from the disk.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from kit.errors import UsageError
from kit.storage.db import Database
from kit.storage.tables import conversations, messages

Role = Literal["user", "assistant"]
_ROLES = ("user", "assistant")
_HEAD = (conversations.c.id, conversations.c.user, conversations.c.title, conversations.c.created,
         conversations.c.updated)


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
    """Per-user conversation history; safe to share between threads and between gateways."""

    def __init__(self, db: Database, retention_days: int, *,
                 now: Callable[[], datetime] | None = None) -> None:
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) \
                or retention_days < 0:
            raise UsageError("the conversation retention must be a whole number of days, 0 or more")
        self._db = db
        self._retention = retention_days
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def enabled(self) -> bool:
        return self._retention > 0

    def _clock(self, minus_days: int = 0) -> str:
        moment = self._now()
        if moment.tzinfo is None:
            raise UsageError("the conversation clock returned a naive datetime; give a UTC clock")
        return _iso(moment - timedelta(days=minus_days))

    def new_conversation(self, user: str, title: str) -> str:
        """Start a conversation and return its id (nothing is stored when disabled)."""
        conversation_id = uuid.uuid4().hex
        if not self.enabled:
            return conversation_id
        stamp = self._clock()
        with self._db.begin("written") as conn:
            conn.execute(conversations.insert().values(id=conversation_id, user=user, title=title, created=stamp,
                                                       updated=stamp))
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
        with self._db.begin("written") as conn:
            found = conn.execute(conversations.update().where(conversations.c.id == conversation_id,
                                                              conversations.c.user == user)
                                 .values(updated=stamp)).rowcount
            if not found:
                raise UsageError(f"conversation {conversation_id} does not exist for this user; "
                                 "start one with new_conversation")
            conn.execute(messages.insert().values(conversation_id=conversation_id, role=role, content=content,
                                                  time=stamp, meta=meta_text))

    def list(self, user: str) -> list[Conversation]:
        """The user's conversations without their messages, most recently updated first."""
        if not self.enabled:
            return []
        with self._db.begin("read") as conn:
            rows = conn.execute(sa.select(*_HEAD).where(conversations.c.user == user).order_by(
                conversations.c.updated.desc(), conversations.c.created.desc(), conversations.c.id)).all()
        return [Conversation(*row) for row in rows]

    def get(self, user: str, conversation_id: str) -> Conversation | None:
        """One of the user's conversations with its messages, or None."""
        if not self.enabled:
            return None
        with self._db.begin("read") as conn:
            return self._load(conn, user, conversation_id)

    @staticmethod
    def _load(conn: sa.Connection, user: str, conversation_id: str) -> Conversation | None:
        row = conn.execute(sa.select(*_HEAD).where(conversations.c.id == conversation_id,
                                                   conversations.c.user == user)).first()
        if row is None:
            return None
        conversation = Conversation(*row)
        for role, content, time, meta in conn.execute(
                sa.select(messages.c.role, messages.c.content, messages.c.time, messages.c.meta)
                .where(messages.c.conversation_id == conversation_id).order_by(messages.c.id)):
            conversation.messages.append(Message(role, content, time, json.loads(meta)))
        return conversation

    def _delete_where(self, *where: sa.ColumnElement[bool]) -> int:
        with self._db.begin("written") as conn:
            ids = [r[0] for r in conn.execute(sa.select(conversations.c.id).where(*where))]
            for conversation_id in ids:
                conn.execute(messages.delete().where(messages.c.conversation_id == conversation_id))
                conn.execute(conversations.delete().where(conversations.c.id == conversation_id))
        if ids:
            self._db.scrub()
        return len(ids)

    def delete(self, user: str, conversation_id: str) -> bool:
        """Delete one of the user's conversations; False if the user has no such conversation."""
        if not self.enabled:
            return False
        return self._delete_where(conversations.c.id == conversation_id, conversations.c.user == user) > 0

    def delete_all(self, user: str) -> int:
        """Delete all the user's conversations; return how many were deleted."""
        if not self.enabled:
            return 0
        return self._delete_where(conversations.c.user == user)

    def export_user(self, user: str) -> dict[str, Any]:
        """Everything stored about the user, for access and portability requests."""
        found: list[dict[str, Any]] = []
        if self.enabled:
            with self._db.begin("read") as conn:
                ids = [r[0] for r in conn.execute(sa.select(conversations.c.id).where(
                    conversations.c.user == user).order_by(conversations.c.created, conversations.c.id))]
                for conversation_id in ids:
                    loaded = self._load(conn, user, conversation_id)
                    if loaded is not None:
                        found.append(asdict(loaded))
        return {"user": user, "exported_at": self._clock(), "conversations": found}

    def purge(self) -> int:
        """Remove conversations not updated within the retention period; return the count. With a retention
        of 0 days, every conversation left from an earlier configuration is removed."""
        if not self.enabled:
            return self._delete_where(sa.true())
        return self._delete_where(conversations.c.updated < self._clock(minus_days=self._retention))

    def close(self) -> None:
        """The database's engine is shared by the process; nothing to close here."""

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
