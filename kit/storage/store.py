"""Small state of the gateway: acknowledgements, feedback and reports, admin switches.

They live in the installation's database (``kit.storage.db``), so every gateway sharing it sees the same
acknowledgements and the same switches (closing the chat on one closes it on all, at their next request).
Feedback is stored under the user's pseudonym (the caller passes it), kept ``policy.feedback_retention_days``
days, and exported and deleted with the user's data; acknowledgements keep the user name, since the
organisation must be able to show who accepted which charter version. The pseudonymisation key is not here:
see ``kit.storage.keyfiles``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kit.storage.db import Database
from kit.storage.tables import acks, feedback, flags


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


_FEEDBACK = (feedback.c.id, feedback.c.time, feedback.c.user, feedback.c.kind, feedback.c.rating,
             feedback.c.comment, feedback.c.meta, feedback.c.status)


def _item(r: Any) -> FeedbackItem:
    return FeedbackItem(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7])


class Store:
    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._now = now or (lambda: datetime.now(UTC))

    def _time(self) -> str:
        return self._now().isoformat(timespec="seconds")

    # acknowledgements
    def acknowledge(self, user: str, version: str, quiz_passed: bool = True) -> str:
        t = self._time()
        with self._db.begin("written") as conn:
            conn.execute(acks.delete().where(acks.c.user == user, acks.c.version == version))
            conn.execute(acks.insert().values(user=user, version=version, time=t, quiz_passed=int(quiz_passed)))
        return t

    def acknowledged(self, user: str, version: str) -> str | None:
        """When ``user`` acknowledged charter ``version`` (checked by every request: remembered, see
        Database.recall)."""
        def read() -> str | None:
            with self._db.begin("read") as conn:
                row = conn.execute(sa.select(acks.c.time).where(acks.c.user == user, acks.c.version == version)).first()
            return row[0] if row else None

        return self._db.recall(("acknowledged", user, version), read, keep_none=False)  # type: ignore[no-any-return]

    def ack_count(self, version: str) -> int:
        with self._db.begin("read") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(acks)
                                    .where(acks.c.version == version)).scalar_one())

    # feedback and problem reports
    def add_feedback(self, user: str, kind: str, rating: int | None, comment: str, meta: dict[str, Any]) -> int:
        with self._db.begin("written") as conn:
            found = conn.execute(feedback.insert().values(
                time=self._time(), user=user, kind=kind, rating=rating, comment=comment,
                meta=json.dumps(meta, ensure_ascii=False)).returning(feedback.c.id)).scalar_one()
        return int(found)

    def feedback(self, kind: str | None = None, limit: int = 200) -> list[FeedbackItem]:
        query = sa.select(*_FEEDBACK)
        if kind:
            query = query.where(feedback.c.kind == kind)
        with self._db.begin("read") as conn:
            rows = conn.execute(query.order_by(feedback.c.id.desc()).limit(limit)).all()
        return [_item(r) for r in rows]

    def user_feedback(self, user: str) -> list[FeedbackItem]:
        """Everything one user (by pseudonym) sent, oldest first, for their access requests."""
        with self._db.begin("read") as conn:
            rows = conn.execute(sa.select(*_FEEDBACK).where(feedback.c.user == user).order_by(feedback.c.id)).all()
        return [_item(r) for r in rows]

    def delete_user_feedback(self, user: str) -> int:
        with self._db.begin("written") as conn:
            n = int(conn.execute(feedback.delete().where(feedback.c.user == user)).rowcount)
        if n:
            self._db.scrub()
        return n

    def purge_feedback(self, retention_days: int) -> int:
        """Delete feedback and reports older than ``retention_days`` days; return how many."""
        cutoff = (self._now() - timedelta(days=retention_days)).astimezone(UTC).isoformat(timespec="seconds")
        with self._db.begin("written") as conn:
            n = int(conn.execute(feedback.delete().where(feedback.c.time < cutoff)).rowcount)
        if n:
            self._db.scrub()
        return n

    # admin switches
    def set_flag(self, key: str, value: Any) -> None:
        with self._db.begin("written") as conn:
            conn.execute(flags.delete().where(flags.c.key == key))
            conn.execute(flags.insert().values(key=key, value=json.dumps(value)))

    def flag(self, key: str, default: Any = None) -> Any:
        with self._db.begin("read") as conn:
            row = conn.execute(sa.select(flags.c.value).where(flags.c.key == key)).first()
        return json.loads(row[0]) if row else default

    def close(self) -> None:
        """The database's engine is shared by the process; nothing to close here."""
