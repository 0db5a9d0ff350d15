"""Minimised, tamper-evident audit log of processing (ANSSI R29, CNIL logging recommendation).

Each event is one row: who (a keyed pseudonym, never the raw user id), what action, which model, token
counts, latency, categories of personal data detected and what was done about them, the documents used
and a status. Prompt and answer text is dropped unless the log was opened with ``log_text=True``.

Rows form a SHA-256 hash chain (``hash = sha256(prev_hash + canonical JSON of the row)``): altering,
removing or reordering a row makes ``verify()`` fail. Purging rows older than the retention period keeps
the chain verifiable through an anchor (id and hash of the last purged row) that the purge event records
in the chain itself. Storage is SQLite (WAL mode, file mode 0600) or PostgreSQL through ``psycopg`` v3.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from kit.errors import AuditError, KitError, UsageError

ACTIONS = (
    "chat", "completion", "acknowledge", "login", "login_failed", "key_created", "key_revoked",
    "document_ingested", "document_removed", "admin", "feedback", "report", "purge", "export",
    "delete_user_data",
)
ZERO_HASH = "0" * 64
_PAGE = 500
_COLUMNS = ("id, ts, pseudonym, action, model, prompt_tokens, completion_tokens, latency_ms, "
            "pii_categories, pii_action, doc_ids, status, detail, body, prev_hash, hash")
_HEAD = "SELECT last_id, last_hash FROM audit_head WHERE slot = 1"
_ANCHOR = "SELECT last_id, last_hash FROM audit_anchor WHERE slot = 1"
_CSV_RISKY = ("=", "+", "-", "@", "\t", "\r")
_logger = logging.getLogger(__name__)

DetailValue = str | int | float | bool


def pseudonymize(user: str, key: bytes) -> str:
    """Keyed pseudonym of a user id: HMAC-SHA256(key, user) in hex, first 16 characters."""
    if user == "":
        return ""
    if not key:
        raise UsageError("the audit pseudonymisation key is empty; configure a secret key")
    return hmac.new(key, user.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass
class AuditEvent:
    """One processing event as given by the caller; ``user`` is the raw user id."""

    action: str
    user: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    pii_categories: list[str] = field(default_factory=list)
    pii_action: str = ""
    doc_ids: list[str] = field(default_factory=list)
    status: str = "ok"
    detail: dict[str, DetailValue] = field(default_factory=dict)
    text: str | None = None


@dataclass
class AuditRow:
    """One stored row: ``user`` is the pseudonym, ``time`` is ISO 8601 UTC."""

    id: int
    time: str
    user: str
    action: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    pii_categories: list[str]
    pii_action: str
    doc_ids: list[str]
    status: str
    detail: dict[str, DetailValue]
    text: str | None
    prev_hash: str
    hash: str


@dataclass
class VerifyResult:
    ok: bool
    rows_checked: int
    first_bad_id: int | None
    reason: str


@dataclass
class AuditStats:
    total: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
    users: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    pii_categories: dict[str, int] = field(default_factory=dict)
    pii_actions: dict[str, int] = field(default_factory=dict)
    mean_latency_ms: dict[str, float] = field(default_factory=dict)


def _canon(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise UsageError("datetimes given to the audit log must be timezone-aware (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _row_hash(row: AuditRow) -> str:
    payload = {k: v for k, v in asdict(row).items() if k not in ("prev_hash", "hash")}
    return hashlib.sha256((row.prev_hash + _canon(payload)).encode("utf-8")).hexdigest()


def _from_db(t: tuple[Any, ...]) -> AuditRow:
    try:
        return AuditRow(
            int(t[0]), str(t[1]), str(t[2]), str(t[3]), str(t[4]), int(t[5]), int(t[6]), int(t[7]),
            json.loads(t[8]), str(t[9]), json.loads(t[10]), str(t[11]), json.loads(t[12]),
            None if t[13] is None else str(t[13]), str(t[14]), str(t[15]),
        )
    except (ValueError, TypeError) as exc:
        raise AuditError(f"audit row {t[0]} is damaged ({exc}); run the audit verification") from exc


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise UsageError("the audit retention must be a whole number of days, 0 or more")


def _check_event(event: AuditEvent) -> None:
    if event.action not in ACTIONS:
        raise UsageError(f"unknown audit action {event.action!r}; use one of: {', '.join(ACTIONS)}")
    counts = (event.prompt_tokens, event.completion_tokens, event.latency_ms)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts):
        raise UsageError(f"audit token counts and latency must be non-negative integers, got {counts}")
    if not all(isinstance(item, str) for item in [*event.pii_categories, *event.doc_ids]):
        raise UsageError("audit pii_categories and doc_ids must be lists of strings")
    for key, value in event.detail.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise UsageError(f"audit detail {key!r} must map a string to a str, int, bool or finite float")
    if {"anchor_id", "anchor_hash"} & event.detail.keys():
        raise UsageError("audit detail keys anchor_id and anchor_hash are reserved for the log's own purges")


class _Database:
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
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
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


class AuditLog:
    """Append-only, hash-chained audit log; safe to share between threads and processes."""

    def __init__(self, url: str | Path, key: bytes, *, log_text: bool = False,
                 now: Callable[[], datetime] | None = None) -> None:
        if not key:
            raise UsageError("the audit pseudonymisation key is empty; configure a secret key")
        self._key = bytes(key)
        self._log_text = log_text
        self._now = now or (lambda: datetime.now(UTC))
        self._db = _Database(url)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._db.conn is None

    def pseudonym(self, user: str) -> str:
        """The pseudonym under which this log stores ``user``."""
        return pseudonymize(user, self._key)

    def _clock(self) -> datetime:
        moment = self._now()
        if moment.tzinfo is None:
            raise AuditError("the audit clock returned a naive datetime; give a timezone-aware UTC clock")
        return moment.astimezone(UTC)

    def record(self, event: AuditEvent) -> AuditRow:
        """Append one event and return the stored row."""
        _check_event(event)
        with self._db.write() as conn:
            return self._append(conn, event)

    def _append(self, conn: Any, event: AuditEvent) -> AuditRow:
        last_id, prev = self._db.slot(conn, _HEAD) or (0, ZERO_HASH)
        row = AuditRow(
            last_id + 1, _iso(self._clock()), pseudonymize(event.user, self._key), event.action,
            event.model, event.prompt_tokens, event.completion_tokens, event.latency_ms,
            list(event.pii_categories), event.pii_action, list(event.doc_ids), event.status,
            dict(event.detail), event.text if self._log_text else None, prev, "",
        )
        row.hash = _row_hash(row)
        self._db.run(conn, f"INSERT INTO audit_log ({_COLUMNS}) VALUES ({', '.join('?' * 16)})", (
            row.id, row.time, row.user, row.action, row.model, row.prompt_tokens, row.completion_tokens,
            row.latency_ms, _canon(row.pii_categories), row.pii_action, _canon(row.doc_ids), row.status,
            _canon(row.detail), row.text, row.prev_hash, row.hash,
        ))
        self._db.set_slot(conn, "audit_head", row.id, row.hash)
        return row

    def head(self) -> tuple[int, str]:
        """Id and hash of the newest row (0 and zeros when empty), to copy outside the server."""
        with self._db.read() as conn:
            return self._db.slot(conn, _HEAD) or (0, ZERO_HASH)

    def verify(self) -> VerifyResult:
        """Check the chain from the purge anchor (or the first row) to the recorded head."""
        with self._db.read() as conn:
            return self._verify(conn)

    def _verify(self, conn: Any) -> VerifyResult:
        anchor, head = self._db.slot(conn, _ANCHOR), self._db.slot(conn, _HEAD)
        start, prev = anchor or (0, ZERO_HASH)
        expected, checked = start + 1, 0

        def bad(row_id: int | None, reason: str) -> VerifyResult:
            return VerifyResult(False, checked, row_id, reason)

        for t in self._scan(conn, "", ()):
            rid = int(t[0])
            if rid < expected:
                return bad(rid, f"row {rid} lies before the purge anchor (row {start})")
            if rid > expected:
                gap = f"row {expected} is" if rid == expected + 1 else f"rows {expected} to {rid - 1} are"
                return bad(expected, f"{gap} missing (ids jump from {expected - 1} to {rid})")
            try:
                row = _from_db(t)
                intact = _row_hash(row) == row.hash
            except (AuditError, ValueError):
                return bad(rid, f"row {rid} was altered (unreadable)")
            if row.prev_hash != prev or not intact:
                first = bool(anchor) and not checked
                return bad(rid, self._explain(conn, row, prev, first_after_anchor=first))
            prev, expected, checked = row.hash, expected + 1, checked + 1
        last = expected - 1
        if anchor:
            problem = self._check_anchor(conn, anchor)
            if problem:
                return bad(start + 1, problem)
        if head is None:
            return bad(last, "the recorded head of the log is missing") if checked else \
                VerifyResult(True, 0, None, "the log is empty")
        if last < head[0]:
            return bad(last + 1, f"rows after {last} are missing (the log ends before row {head[0]})")
        if last > head[0]:
            return bad(head[0] + 1, f"row {head[0] + 1} was added outside the audit log")
        if prev != head[1]:
            return bad(last, f"row {last} differs from the recorded head of the log")
        return VerifyResult(True, checked, None, f"{checked} rows verified")

    def _check_anchor(self, conn: Any, anchor: tuple[int, str]) -> str:
        for row_id, text in self._db.run(conn, "SELECT id, detail FROM audit_log WHERE action = 'purge' "
                                               "ORDER BY id DESC"):
            try:
                detail = json.loads(text)
            except ValueError:
                return f"row {row_id} was altered (unreadable)"
            if isinstance(detail, dict) and "anchor_hash" in detail:  # the newest purge of this log
                if (detail.get("anchor_id"), detail["anchor_hash"]) != anchor:
                    return f"the purge anchor differs from the one recorded by purge row {row_id}: altered"
                return ""
        return "the purge anchor is not recorded by any purge event: the anchor was altered"

    def _explain(self, conn: Any, row: AuditRow, prev: str, *, first_after_anchor: bool) -> str:
        if row.prev_hash == prev:
            return f"row {row.id} was altered"
        if first_after_anchor:
            return f"row {row.id} does not match the purge anchor: the anchor or the row was altered"
        if self._db.run(conn, "SELECT id FROM audit_log WHERE hash = ? AND id <> ?",
                        (row.prev_hash, row.id - 1)):
            return f"rows out of order at {row.id}"
        return f"row {row.id} was altered (its link to row {row.id - 1} is broken)"

    def purge(self, retention_days: int) -> int:
        """Delete rows older than ``retention_days`` days, record a "purge" event, return the count.

        Only a prefix of the chain is removed (up to the first row inside the retention period), so
        the remaining rows stay verifiable from the anchor.
        """
        _check_days(retention_days)
        run = self._db.run
        with self._db.write() as conn:
            cutoff = _iso(self._clock() - timedelta(days=retention_days))
            first_kept = run(conn, "SELECT MIN(id) FROM audit_log WHERE ts >= ?", (cutoff,))[0][0]
            if first_kept is None:
                first_kept = int(run(conn, "SELECT COALESCE(MAX(id), 0) FROM audit_log")[0][0]) + 1
            count, last_id = run(conn, "SELECT COUNT(*), MAX(id) FROM audit_log WHERE id < ?",
                                 (first_kept,))[0]
            if count:
                last_hash = run(conn, "SELECT hash FROM audit_log WHERE id = ?", (last_id,))[0][0]
                run(conn, "DELETE FROM audit_log WHERE id < ?", (first_kept,))
                self._db.set_slot(conn, "audit_anchor", int(last_id), str(last_hash))
            anchor_id, anchor_hash = self._db.slot(conn, _ANCHOR) or (0, ZERO_HASH)
            self._append(conn, AuditEvent(action="purge", detail={
                "retention_days": retention_days, "deleted": int(count),
                "anchor_id": anchor_id, "anchor_hash": anchor_hash,
            }))
        if count:
            self._db.checkpoint()
        return int(count)

    def _filters(self, since: datetime | None, until: datetime | None,
                 action: str | None) -> tuple[str, tuple[str, ...]]:
        where, params = "", ()  # type: str, tuple[str, ...]
        if since is not None:
            where, params = where + " AND ts >= ?", params + (_iso(since),)
        if until is not None:
            where, params = where + " AND ts < ?", params + (_iso(until),)
        if action is not None:
            if action not in ACTIONS:
                raise UsageError(f"unknown audit action {action!r}; use one of: {', '.join(ACTIONS)}")
            where, params = where + " AND action = ?", params + (action,)
        return where, params

    def _scan(self, conn: Any, where: str, params: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
        last = -1
        while True:
            batch = self._db.run(conn, f"SELECT {_COLUMNS} FROM audit_log WHERE id > ?{where} "
                                       f"ORDER BY id LIMIT {_PAGE}", (last, *params))
            yield from batch
            if len(batch) < _PAGE:
                return
            last = int(batch[-1][0])

    def rows(self, since: datetime | None = None, until: datetime | None = None,
             action: str | None = None) -> Iterator[AuditRow]:
        """Rows in id order, ``since`` inclusive and ``until`` exclusive."""
        where, params = self._filters(since, until, action)
        return self._iter_rows(where, params)

    def _iter_rows(self, where: str, params: tuple[str, ...]) -> Iterator[AuditRow]:
        with self._db.read() as conn:
            for t in self._scan(conn, where, params):
                yield _from_db(t)

    def export(self, out: TextIO, fmt: Literal["csv", "jsonl"], since: datetime | None = None) -> int:
        """Write rows to ``out`` as CSV (with a header) or JSON lines; return the number of rows.

        In CSV, lists and dicts are JSON text and text cells that a spreadsheet would run as a
        formula are prefixed with a quote.
        """
        if fmt not in ("csv", "jsonl"):
            raise UsageError(f"unknown export format {fmt!r}; use 'csv' or 'jsonl'")
        names = [f.name for f in fields(AuditRow)]
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(names)
        count = 0
        for row in self.rows(since=since):
            data = asdict(row)
            if writer is not None:
                writer.writerow([_csv_cell(data[name]) for name in names])
            else:
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
            count += 1
        return count

    def stats(self, since: datetime | None = None) -> AuditStats:
        """Aggregated figures for the activity report (days are UTC dates)."""
        where, params = self._filters(since, None, None)
        base = f"FROM audit_log WHERE 1 = 1{where}"
        result, run = AuditStats(), self._db.run
        with self._db.read() as conn:
            for action, n, p_tok, c_tok, lat in run(conn, "SELECT action, COUNT(*), SUM(prompt_tokens), "
                                                    f"SUM(completion_tokens), AVG(latency_ms) {base} "
                                                    "GROUP BY action ORDER BY action", params):
                result.by_action[str(action)] = int(n)
                result.total += int(n)
                result.prompt_tokens += int(p_tok or 0)
                result.completion_tokens += int(c_tok or 0)
                result.mean_latency_ms[str(action)] = float(lat or 0)
            for day, n in run(conn, f"SELECT substr(ts, 1, 10), COUNT(*) {base} "
                                    "GROUP BY substr(ts, 1, 10) ORDER BY 1", params):
                result.by_day[str(day)] = int(n)
            result.users = int(run(conn, f"SELECT COUNT(DISTINCT pseudonym) {base} AND pseudonym <> ''",
                                   params)[0][0])
            for pii_action, n in run(conn, f"SELECT pii_action, COUNT(*) {base} AND pii_action <> '' "
                                           "GROUP BY pii_action", params):
                result.pii_actions[str(pii_action)] = int(n)
            for cats, n in run(conn, f"SELECT pii_categories, COUNT(*) {base} AND pii_categories <> '[]' "
                                     "GROUP BY pii_categories", params):
                try:
                    names = {str(name) for name in json.loads(cats)}
                except (ValueError, TypeError) as exc:
                    raise AuditError("an audit row is damaged; run the audit verification") from exc
                for name in names:
                    result.pii_categories[name] = result.pii_categories.get(name, 0) + int(n)
        return result

    def close(self) -> None:
        self._db.close()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return _canon(value)
    if isinstance(value, str) and value.startswith(_CSV_RISKY):
        return "'" + value
    return str(value)


def start_daily_purge(log: AuditLog, retention_days: int, *, interval_s: float = 86400) -> threading.Event:
    """Purge now, then every ``interval_s`` seconds, in a daemon thread; set the returned Event to stop."""
    _check_days(retention_days)
    if interval_s <= 0:
        raise UsageError("the audit purge interval must be a positive number of seconds")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set() and not log.closed:
            try:
                log.purge(retention_days)
            except KitError as exc:
                _logger.warning("audit purge failed: %s", exc)
            stop.wait(interval_s)

    threading.Thread(target=loop, name="kit-audit-purge", daemon=True).start()
    return stop
