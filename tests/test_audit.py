"""Tests of the audit log: storage, minimisation, hash chain, purge, export and statistics."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kit.audit import (
    ACTIONS,
    ZERO_HASH,
    AuditEvent,
    AuditLog,
    AuditRow,
    pseudonymize,
    start_daily_purge,
)
from kit.errors import AuditError, UsageError

KEY = b"k" * 32
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A settable UTC clock."""

    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

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


def chat(user: str = "alice", **kw: object) -> AuditEvent:
    return AuditEvent(action="chat", user=user, model="mistral-7b", prompt_tokens=10,
                      completion_tokens=20, latency_ms=300, **kw)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "audit.db"


@pytest.fixture
def log(db: Path, clock: Clock) -> Iterator[AuditLog]:
    with AuditLog(db, KEY, now=clock) as opened:
        yield opened


def fill(log: AuditLog, clock: Clock, n: int) -> None:
    for i in range(n):
        log.record(chat(user=f"user{i % 3}", detail={"i": i}))
        clock.advance(minutes=1)


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def test_record_rows_roundtrip(log: AuditLog, db: Path) -> None:
    row = log.record(AuditEvent(
        action="chat", user="alice", model="m", prompt_tokens=5, completion_tokens=7,
        latency_ms=120, pii_categories=["EMAIL", "PHONE"], pii_action="masked",
        doc_ids=["d1", "d2"], status="ok", detail={"a": "x", "b": 2, "c": 1.5, "d": True}))
    assert row.id == 1 and row.prev_hash == ZERO_HASH and len(row.hash) == 64
    assert row.time == "2025-01-01T12:00:00.000000+00:00"
    assert row.text is None
    stored = list(log.rows())
    assert stored == [row]
    assert stored[0].detail == {"a": "x", "b": 2, "c": 1.5, "d": True}
    assert stored[0].pii_categories == ["EMAIL", "PHONE"] and stored[0].doc_ids == ["d1", "d2"]
    assert db.exists() and (db.stat().st_mode & 0o777) == 0o600
    assert raw(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_url_and_filters(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "a" / "b.db"
    with AuditLog(f"sqlite:///{path}", KEY, now=clock) as log:
        log.record(AuditEvent(action="login", user="bob"))
        clock.advance(days=1)
        log.record(chat())
        assert [r.action for r in log.rows(action="chat")] == ["chat"]
        assert [r.action for r in log.rows(since=START + timedelta(hours=1))] == ["chat"]
        assert [r.action for r in log.rows(until=START + timedelta(hours=1))] == ["login"]
        with pytest.raises(UsageError):
            log.rows(action="nope")
        with pytest.raises(UsageError):
            log.record(AuditEvent(action="nope"))
        with pytest.raises(UsageError):
            log.record(AuditEvent(action="chat", prompt_tokens=-1))
        with pytest.raises(UsageError):
            log.rows(since=datetime(2025, 1, 1))
    assert path.exists()
    with pytest.raises(UsageError):
        AuditLog(path, b"")


def test_text_dropped_by_default(db: Path, clock: Clock) -> None:
    marker = f"SECRET-{uuid.uuid4().hex}"
    with AuditLog(db, KEY, now=clock) as log:
        row = log.record(chat(text=f"prompt {marker}"))
        assert row.text is None
        assert marker.encode() not in raw_bytes(db)
    assert marker.encode() not in raw_bytes(db)


def test_text_kept_when_enabled(db: Path, clock: Clock) -> None:
    marker = f"SECRET-{uuid.uuid4().hex}"
    with AuditLog(db, KEY, log_text=True, now=clock) as log:
        log.record(chat(text=f"prompt {marker}"))
        assert marker.encode() in raw_bytes(db)
        assert next(log.rows()).text == f"prompt {marker}"


def test_pseudonym(log: AuditLog, db: Path) -> None:
    first = log.record(chat(user="alice.martin@mairie.fr"))
    second = log.record(chat(user="alice.martin@mairie.fr"))
    other = log.record(chat(user="bob"))
    assert first.user == second.user == pseudonymize("alice.martin@mairie.fr", KEY)
    assert first.user == log.pseudonym("alice.martin@mairie.fr")
    assert len(first.user) == 16 and first.user != "alice.martin@mairie.fr"
    assert other.user != first.user
    assert pseudonymize("alice.martin@mairie.fr", b"another key") != first.user
    assert pseudonymize("", KEY) == ""
    assert log.record(AuditEvent(action="admin")).user == ""
    assert b"alice.martin" not in raw_bytes(db)


def test_verify_ok(log: AuditLog, clock: Clock) -> None:
    assert log.verify().ok
    fill(log, clock, 5)
    result = log.verify()
    assert result.ok and result.rows_checked == 5 and result.first_bad_id is None
    assert log.head() == (5, list(log.rows())[-1].hash)


@pytest.mark.parametrize("column, value", [
    ("model", "'other'"), ("prompt_tokens", "999"), ("ts", "'2024-01-01T00:00:00.000000+00:00'"),
    ("pseudonym", "'0000000000000000'"), ("detail", "'{\"i\":99}'"), ("status", "'error'"),
    ("hash", "'" + "a" * 64 + "'"), ("body", "'injected'"), ("detail", "'not json'"),
])
def test_verify_detects_edit(log: AuditLog, clock: Clock, db: Path, column: str,
                             value: str) -> None:
    fill(log, clock, 6)
    raw(db).execute(f"UPDATE audit_log SET {column} = {value} WHERE id = 3")
    result = log.verify()
    assert not result.ok and result.first_bad_id == 3
    assert "row 3" in result.reason and "altered" in result.reason


def test_verify_detects_deleted_row(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 6)
    raw(db).execute("DELETE FROM audit_log WHERE id = 4")
    result = log.verify()
    assert not result.ok and result.first_bad_id == 4
    assert result.reason == "row 4 is missing (ids jump from 3 to 5)"


def test_verify_detects_truncated_tail(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 6)
    raw(db).execute("DELETE FROM audit_log WHERE id >= 5")
    result = log.verify()
    assert not result.ok and result.first_bad_id == 5 and "missing" in result.reason


def test_verify_detects_deleted_first_row(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 3)
    raw(db).execute("DELETE FROM audit_log WHERE id = 1")
    result = log.verify()
    assert not result.ok and result.first_bad_id == 1


def test_verify_detects_swapped_rows(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 6)
    conn = raw(db)
    conn.execute("UPDATE audit_log SET id = -1 WHERE id = 2")
    conn.execute("UPDATE audit_log SET id = 2 WHERE id = 5")
    conn.execute("UPDATE audit_log SET id = 5 WHERE id = -1")
    result = log.verify()
    assert not result.ok and result.first_bad_id == 2
    assert result.reason == "rows out of order at 2"


def test_verify_detects_swapped_contents(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 6)
    conn = raw(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(audit_log)") if r[1] != "id"]
    a = conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = 3").fetchone()
    b = conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = 4").fetchone()
    assign = ", ".join(f"{c} = ?" for c in cols)
    conn.execute(f"UPDATE audit_log SET {assign} WHERE id = 3", b)
    conn.execute(f"UPDATE audit_log SET {assign} WHERE id = 4", a)
    result = log.verify()
    assert not result.ok and result.first_bad_id == 3 and "out of order" in result.reason


def test_purge_keeps_recent_rows_and_chain(log: AuditLog, clock: Clock) -> None:
    fill(log, clock, 4)                     # day 0
    clock.advance(days=100)
    fill(log, clock, 3)                     # day 100
    clock.advance(days=100)                 # day 200: retention 180 keeps day-100 rows
    assert log.purge(180) == 4
    remaining = list(log.rows())
    assert [r.id for r in remaining] == [5, 6, 7, 8]
    purge_row = remaining[-1]
    assert purge_row.action == "purge"
    assert purge_row.detail["deleted"] == 4 and purge_row.detail["anchor_id"] == 4
    assert purge_row.detail["anchor_hash"] == remaining[0].prev_hash
    result = log.verify()
    assert result.ok, result.reason
    assert result.rows_checked == 4
    # Appending and purging again keeps the chain verifiable.
    log.record(chat())
    assert log.purge(180) == 0
    assert log.verify().ok
    clock.advance(days=365)
    assert log.purge(180) == 6
    assert [r.action for r in log.rows()] == ["purge"]
    assert log.verify().ok


def test_other_purge_events_keep_chain_valid(log: AuditLog, clock: Clock) -> None:
    fill(log, clock, 3)
    clock.advance(days=10)
    assert log.purge(5) == 3
    log.record(AuditEvent(action="purge", detail={"scope": "conversations", "deleted": 2}))
    assert log.verify().ok
    with pytest.raises(UsageError):
        log.record(AuditEvent(action="purge", detail={"anchor_hash": "x"}))


def test_purge_removes_old_text(db: Path, clock: Clock) -> None:
    marker = f"OLD-{uuid.uuid4().hex}"
    with AuditLog(db, KEY, log_text=True, now=clock) as log:
        log.record(chat(text=marker))
        clock.advance(days=400)
        log.record(chat(text="recent"))
        assert log.purge(365) == 1
        assert marker.encode() not in raw_bytes(db)
        assert log.verify().ok


def test_verify_detects_anchor_tampering(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 4)
    clock.advance(days=30)
    fill(log, clock, 2)
    assert log.purge(10) == 4
    assert log.verify().ok
    conn = raw(db)
    conn.execute("UPDATE audit_anchor SET last_hash = ?", ("b" * 64,))
    result = log.verify()
    assert not result.ok and "anchor" in result.reason
    conn.execute("UPDATE audit_anchor SET last_hash = (SELECT prev_hash FROM audit_log "
                 "WHERE id = 6), last_id = 5")
    result = log.verify()
    assert not result.ok and "anchor" in result.reason


def test_verify_detects_forged_purge(log: AuditLog, clock: Clock, db: Path) -> None:
    fill(log, clock, 6)
    conn = raw(db)
    kept = conn.execute("SELECT prev_hash FROM audit_log WHERE id = 4").fetchone()[0]
    conn.execute("DELETE FROM audit_log WHERE id < 4")
    conn.execute("INSERT INTO audit_anchor (slot, last_id, last_hash) VALUES (1, 3, ?)", (kept,))
    result = log.verify()
    assert not result.ok and "anchor" in result.reason
    conn.execute("DELETE FROM audit_anchor")
    result = log.verify()
    assert not result.ok and result.reason == "rows 1 to 3 are missing (ids jump from 0 to 4)"


def test_export_csv_and_jsonl(log: AuditLog, clock: Clock) -> None:
    log.record(chat(pii_categories=["EMAIL"], pii_action="masked", detail={"k": "v"},
                    status="=cmd()"))
    clock.advance(days=2)
    log.record(AuditEvent(action="login", user="bob"))
    out = io.StringIO()
    assert log.export(out, "csv") == 2
    out.seek(0)
    records = list(csv.DictReader(out))
    assert [r["action"] for r in records] == ["chat", "login"]
    assert json.loads(records[0]["pii_categories"]) == ["EMAIL"]
    assert json.loads(records[0]["detail"]) == {"k": "v"}
    assert records[0]["status"] == "'=cmd()"
    assert records[0]["text"] == "" and records[0]["id"] == "1"
    assert set(records[0]) == set(AuditRow.__dataclass_fields__)
    out = io.StringIO()
    assert log.export(out, "jsonl", since=START + timedelta(days=1)) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    item = json.loads(lines[0])
    assert item["action"] == "login" and item["user"] == pseudonymize("bob", KEY)
    assert item["hash"] and item["prev_hash"]
    with pytest.raises(UsageError):
        log.export(io.StringIO(), "xml")  # type: ignore[arg-type]


def test_stats(log: AuditLog, clock: Clock) -> None:
    log.record(chat(user="alice", pii_categories=["EMAIL", "PHONE"], pii_action="masked"))
    log.record(AuditEvent(action="chat", user="bob", prompt_tokens=1, completion_tokens=2,
                          latency_ms=100, pii_categories=["EMAIL"], pii_action="blocked"))
    clock.advance(days=1)
    log.record(AuditEvent(action="login", user="alice", latency_ms=5))
    log.record(AuditEvent(action="completion", user="carol", prompt_tokens=4,
                          completion_tokens=6, latency_ms=50, pii_categories=["EMAIL"],
                          pii_action="masked"))
    stats = log.stats()
    assert stats.total == 4
    assert stats.by_action == {"chat": 2, "completion": 1, "login": 1}
    assert stats.by_day == {"2025-01-01": 2, "2025-01-02": 2}
    assert stats.users == 3
    assert stats.prompt_tokens == 15 and stats.completion_tokens == 28
    assert stats.pii_categories == {"EMAIL": 3, "PHONE": 1}
    assert stats.pii_actions == {"masked": 2, "blocked": 1}
    assert stats.mean_latency_ms == {"chat": 200.0, "completion": 50.0, "login": 5.0}
    recent = log.stats(since=START + timedelta(hours=12))
    assert recent.total == 2 and recent.users == 2 and recent.by_day == {"2025-01-02": 2}


def test_concurrent_records(log: AuditLog) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                log.record(chat(user=f"u{n}", detail={"i": i}))
        except AuditError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = log.verify()
    assert result.ok, result.reason
    assert result.rows_checked == 200
    assert [r.id for r in log.rows()] == list(range(1, 201))


def test_two_logs_on_same_file(db: Path, clock: Clock) -> None:
    with AuditLog(db, KEY, now=clock) as one, AuditLog(db, KEY, now=clock) as two:
        one.record(chat())
        two.record(chat())
        one.record(chat())
        assert two.verify().ok and two.verify().rows_checked == 3


def test_start_daily_purge_runs_and_stops(log: AuditLog, clock: Clock) -> None:
    fill(log, clock, 3)
    clock.advance(days=400)
    stop = start_daily_purge(log, 365, interval_s=3600)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not list(log.rows(action="purge")):
        time.sleep(0.02)
    stop.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            t.name == "kit-audit-purge" and t.is_alive() for t in threading.enumerate()):
        time.sleep(0.02)
    assert not any(t.name == "kit-audit-purge" and t.is_alive() for t in threading.enumerate())
    purges = list(log.rows(action="purge"))
    assert len(purges) == 1 and purges[0].detail["deleted"] == 3
    assert log.verify().ok


def test_closed_log_raises(db: Path) -> None:
    log = AuditLog(db, KEY)
    log.close()
    assert log.closed
    with pytest.raises(AuditError):
        log.record(chat())
    with pytest.raises(AuditError):
        log.verify()


def test_actions_listed() -> None:
    assert "delete_user_data" in ACTIONS and "purge" in ACTIONS and len(set(ACTIONS)) == len(ACTIONS) == 21
    assert {"document_search", "document_list", "privacy_scan", "logout", "file_upload", "file_delete"} <= set(ACTIONS)


# --- PostgreSQL (optional) -----------------------------------------------------------------

def test_postgresql_backend(pg_url: str, clock: Clock) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("audit_log", "audit_anchor", "audit_head", "audit_chain"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    with AuditLog(pg_url, KEY, now=clock) as log:
        fill(log, clock, 4)
        clock.advance(days=30)
        log.record(chat(pii_categories=["EMAIL"], pii_action="masked", detail={"f": 0.5}))
        assert log.verify().ok
        assert log.purge(10) == 4
        result = log.verify()
        assert result.ok and result.rows_checked == 2, result.reason
        stats = log.stats()
        assert stats.total == 2 and stats.pii_categories == {"EMAIL": 1}
        assert stats.mean_latency_ms["chat"] == 300.0
        threads = [threading.Thread(target=lambda: [log.record(chat()) for _ in range(10)])
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.verify().rows_checked == 42
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE audit_log SET model = 'x' WHERE id = 10")
        result = log.verify()
        assert not result.ok and result.first_bad_id == 10
