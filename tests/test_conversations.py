"""Tests of the per-user conversation history."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kit.errors import KitError, UsageError
from kit.storage.conversations import Conversation, ConversationStore, Message
from kit.storage.db import Database, open_database

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def raw_bytes(db: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            data += part.read_bytes()
    return data


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(db: Path) -> Database:
    """The installation database whose SQLite file is ``db`` (KIT_DATABASE_URL is unset in the tests)."""
    return open_database(db.parent)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history" / "kit.db"


@pytest.fixture
def store(db: Path, clock: Clock) -> Iterator[ConversationStore]:
    with ConversationStore(opened(db), 30, now=clock) as history:
        yield history


def test_retention_zero_keeps_nothing(db: Path) -> None:
    store = ConversationStore(opened(db), 0)
    assert not store.enabled
    cid = store.new_conversation("alice", "Titre")
    assert len(cid) == 32 and int(cid, 16) >= 0
    store.add_message("alice", cid, "user", "bonjour-gardé-nulle-part")
    assert store.list("alice") == []
    assert store.get("alice", cid) is None
    assert store.delete("alice", cid) is False
    assert store.delete_all("alice") == 0
    assert store.export_user("alice")["conversations"] == []
    assert store.purge() == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone() == (0,)
    assert "bonjour-gardé-nulle-part".encode() not in raw_bytes(db)


def test_retention_zero_purge_removes_old_history(db: Path, clock: Clock) -> None:
    with ConversationStore(opened(db), 30, now=clock) as old:
        cid = old.new_conversation("alice", "t")
        old.add_message("alice", cid, "user", "texte-de-l-ancienne-configuration")
    store = ConversationStore(opened(db), 0, now=clock)
    assert store.list("alice") == []
    assert store.purge() == 1
    assert b"texte-de-l-ancienne-configuration" not in raw_bytes(db)


def test_roundtrip_and_listing(store: ConversationStore, db: Path, clock: Clock) -> None:
    assert store.enabled
    assert (db.stat().st_mode & 0o777) == 0o600
    first = store.new_conversation("alice", "Courrier")
    clock.advance(minutes=1)
    second = store.new_conversation("alice", "Note")
    clock.advance(minutes=1)
    store.add_message("alice", first, "user", "Rédige un courrier")
    store.add_message("alice", first, "assistant", "Voici un courrier",
                      {"model": "mistral-7b", "ai_generated": True})
    listed = store.list("alice")
    assert [c.id for c in listed] == [first, second]  # first was updated last
    assert all(c.messages == [] for c in listed)
    assert listed[0].updated == "2025-03-01T09:02:00.000000+00:00"
    assert listed[0].created == "2025-03-01T09:00:00.000000+00:00"
    got = store.get("alice", first)
    assert isinstance(got, Conversation) and got.title == "Courrier" and got.user == "alice"
    assert got.messages == [
        Message("user", "Rédige un courrier", "2025-03-01T09:02:00.000000+00:00", {}),
        Message("assistant", "Voici un courrier", "2025-03-01T09:02:00.000000+00:00",
                {"model": "mistral-7b", "ai_generated": True}),
    ]
    with pytest.raises(UsageError):
        store.add_message("alice", first, "system", "x")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        store.add_message("alice", "unknown", "user", "x")
    with pytest.raises(UsageError):
        store.add_message("alice", first, "user", "x", {"bad": object()})
    with pytest.raises(UsageError):
        ConversationStore(opened(db), -1)


def test_owner_isolation(store: ConversationStore) -> None:
    cid = store.new_conversation("alice", "privé")
    store.add_message("alice", cid, "user", "secret")
    assert store.list("bob") == []
    assert store.get("bob", cid) is None
    with pytest.raises(UsageError):
        store.add_message("bob", cid, "user", "intrusion")
    assert store.delete("bob", cid) is False
    assert store.delete_all("bob") == 0
    assert store.export_user("bob")["conversations"] == []
    got = store.get("alice", cid)
    assert got is not None and [m.content for m in got.messages] == ["secret"]


def test_delete_and_delete_all(store: ConversationStore, db: Path) -> None:
    marker = f"MARK-{uuid.uuid4().hex}"
    title_marker = f"TITLE-{uuid.uuid4().hex}"
    one = store.new_conversation("alice", title_marker)
    store.add_message("alice", one, "user", f"texte {marker}")
    two = store.new_conversation("alice", "deux")
    store.add_message("alice", two, "user", "autre")
    three = store.new_conversation("alice", "trois")
    kept = store.new_conversation("bob", "bob")
    assert marker.encode() in raw_bytes(db)
    assert store.delete("alice", one) is True
    assert store.delete("alice", one) is False
    assert store.get("alice", one) is None
    assert marker.encode() not in raw_bytes(db)
    assert title_marker.encode() not in raw_bytes(db)
    assert store.delete_all("alice") == 2
    assert store.list("alice") == [] and store.get("alice", three) is None
    assert [c.id for c in store.list("bob")] == [kept]
    assert b"autre" not in raw_bytes(db)


def test_export_user(store: ConversationStore, clock: Clock) -> None:
    cid = store.new_conversation("alice", "Export")
    store.add_message("alice", cid, "user", "question", {"k": 1})
    store.add_message("alice", cid, "assistant", "réponse")
    store.new_conversation("bob", "autre")
    clock.advance(hours=1)
    data = store.export_user("alice")
    assert data["user"] == "alice"
    assert data["exported_at"] == "2025-03-01T10:00:00.000000+00:00"
    assert len(data["conversations"]) == 1
    exported = data["conversations"][0]
    assert exported["id"] == cid and exported["title"] == "Export"
    assert [m["content"] for m in exported["messages"]] == ["question", "réponse"]
    assert exported["messages"][0]["meta"] == {"k": 1}


def test_purge_with_clock(store: ConversationStore, db: Path, clock: Clock) -> None:
    marker = f"OLD-{uuid.uuid4().hex}"
    old = store.new_conversation("alice", "ancienne")
    store.add_message("alice", old, "user", marker)
    clock.advance(days=20)
    active = store.new_conversation("alice", "récente")
    store.add_message("alice", active, "user", "récent")
    clock.advance(days=15)  # old: 35 days, active: 15 days
    assert store.purge() == 1
    assert [c.id for c in store.list("alice")] == [active]
    assert marker.encode() not in raw_bytes(db)
    clock.advance(days=10)
    store.add_message("alice", active, "user", "encore")  # refreshes the conversation
    clock.advance(days=29)
    assert store.purge() == 0
    clock.advance(days=2)
    assert store.purge() == 1
    assert store.list("alice") == []


def test_reopen_keeps_history(db: Path, clock: Clock) -> None:
    with ConversationStore(opened(db), 30, now=clock) as first:
        cid = first.new_conversation("alice", "t")
        first.add_message("alice", cid, "user", "persisté")
    with ConversationStore(opened(db), 30, now=clock) as second:
        got = second.get("alice", cid)
        assert got is not None and got.messages[0].content == "persisté"


def test_concurrent_writes(store: ConversationStore) -> None:
    cid = store.new_conversation("alice", "t")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                store.add_message("alice", cid, "user", f"{n}-{i}")
        except KitError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    got = store.get("alice", cid)
    assert got is not None and len(got.messages) == 160


