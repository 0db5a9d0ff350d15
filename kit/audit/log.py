"""Minimised, tamper-evident audit log of processing (ANSSI R29, CNIL logging recommendation).

Each event is one row: who (a keyed pseudonym, never the raw user id), what action, which model, token
counts, latency, categories of personal data detected and what was done about them, the documents used
and a status. Prompt and answer text is dropped unless the log was opened with ``log_text=True``.

Rows form a keyed hash chain (``hash = HMAC-SHA256(chain key, prev_hash + canonical JSON of the row)``,
the key kept apart from the database; see ``chain``): altering, removing or reordering a row makes
``verify()`` fail, and nobody without the key can recompute the chain after an edit. A tail cut together
with the recorded head shows against a head noted earlier (``verify(head=...)``; ``head`` publishes it).
Purging rows older than the retention period keeps the chain verifiable through an anchor (id and hash of
the last purged row) that the purge event records in the chain itself. Storage is SQLite (WAL mode, file
mode 0600) or PostgreSQL through ``psycopg`` v3.
"""

from __future__ import annotations

import csv
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from kit.audit.chain import Chain, open_chain, read_chain
from kit.audit.database import Database
from kit.audit.records import (
    ACTIONS,
    ANCHOR_SQL,
    COLUMNS,
    HEAD_SQL,
    PAGE,
    ZERO_HASH,
    AuditEvent,
    AuditRow,
    AuditStats,
    VerifyResult,
    canon,
    check_days,
    check_event,
    csv_cell,
    from_db,
    iso,
    pseudonymize,
    row_hash,
)
from kit.errors import AuditError, KitError, UsageError

_logger = logging.getLogger(__name__)


class AuditLog:
    """Append-only, hash-chained audit log; safe to share between threads and processes.

    ``key`` keys the users' pseudonyms, ``chain_key`` the hash chain (``key`` when not given; the gateway
    passes the separate ``policy.audit_key_file``). ``adopt_plain`` accepts a log written before keyed
    chains (rows but no chain record): see ``kit.audit.chain``.
    """

    def __init__(self, url: str | Path, key: bytes, *, chain_key: bytes | None = None, log_text: bool = False,
                 now: Callable[[], datetime] | None = None, adopt_plain: bool = False) -> None:
        if not key or chain_key == b"":
            raise UsageError("the audit pseudonymisation or chain key is empty; configure a secret key")
        self._key = bytes(key)
        self._chain_key = bytes(key if chain_key is None else chain_key)
        self._log_text = log_text
        self._now = now or (lambda: datetime.now(UTC))
        self._db = Database(url)
        try:
            open_chain(self._db, self._chain_key, adopt_plain=adopt_plain)
        except KitError:
            self._db.close()
            raise

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
        check_event(event)
        with self._db.write() as conn:
            return self._append(conn, event)

    def _append(self, conn: Any, event: AuditEvent) -> AuditRow:
        last_id, prev = self._db.slot(conn, HEAD_SQL) or (0, ZERO_HASH)
        row = AuditRow(
            last_id + 1, iso(self._clock()), pseudonymize(event.user, self._key), event.action,
            event.model, event.prompt_tokens, event.completion_tokens, event.latency_ms,
            list(event.pii_categories), event.pii_action, list(event.doc_ids), event.status,
            dict(event.detail), event.text if self._log_text else None, prev, "",
        )
        row.hash = row_hash(row, self._chain_key)
        self._db.run(conn, f"INSERT INTO audit_log ({COLUMNS}) VALUES ({', '.join('?' * 16)})", (
            row.id, row.time, row.user, row.action, row.model, row.prompt_tokens, row.completion_tokens,
            row.latency_ms, canon(row.pii_categories), row.pii_action, canon(row.doc_ids), row.status,
            canon(row.detail), row.text, row.prev_hash, row.hash,
        ))
        self._db.set_slot(conn, "audit_head", row.id, row.hash)
        return row

    def head(self) -> tuple[int, str]:
        """Id and hash of the newest row (0 and zeros when empty), to copy outside the server."""
        with self._db.read() as conn:
            return self._db.slot(conn, HEAD_SQL) or (0, ZERO_HASH)

    def verify(self, head: tuple[int, str] | None = None) -> VerifyResult:
        """Check the chain from the purge anchor (or the first row) to the recorded head, and, given a head
        noted earlier (row id and hash, as ``head()`` returned it), that the log still holds it."""
        with self._db.read() as conn:
            result = self._verify(conn)
            if result.ok and head is not None:
                return self._check_noted_head(conn, head, result)
            return result

    def _verify(self, conn: Any) -> VerifyResult:
        anchor, head = self._db.slot(conn, ANCHOR_SQL), self._db.slot(conn, HEAD_SQL)
        start, prev = anchor or (0, ZERO_HASH)
        expected, checked = start + 1, 0

        def bad(row_id: int | None, reason: str) -> VerifyResult:
            return VerifyResult(False, checked, row_id, reason)

        chain = read_chain(self._db, conn)
        if chain is None or not chain.sealed_by(self._chain_key):
            what = "is missing" if chain is None else "does not match the audit key"
            return bad(None, f"the chain record of the log (table audit_chain) {what}: it was altered, or the "
                             "audit key is not the one this log was written with (restore the original key)")
        for t in self._scan(conn, "", ()):
            rid = int(t[0])
            if rid == chain.keyed_from and rid == expected and prev != chain.legacy_hash:
                return bad(rid - 1, self._legacy_altered(chain))
            if rid < expected:
                return bad(rid, f"row {rid} lies before the purge anchor (row {start})")
            if rid > expected:
                gap = f"row {expected} is" if rid == expected + 1 else f"rows {expected} to {rid - 1} are"
                return bad(expected, f"{gap} missing (ids jump from {expected - 1} to {rid})")
            try:
                row = from_db(t)
                intact = row_hash(row, self._chain_key if rid >= chain.keyed_from else None) == row.hash
            except (AuditError, ValueError):
                return bad(rid, f"row {rid} was altered (unreadable)")
            if row.prev_hash != prev or not intact:
                first = bool(anchor) and not checked
                return bad(rid, self._explain(conn, row, prev, first_after_anchor=first))
            prev, expected, checked = row.hash, expected + 1, checked + 1
        last = expected - 1
        if last < chain.keyed_from - 1:
            return bad(last + 1, f"rows {last + 1} to {chain.keyed_from - 1} are missing (the log held them when "
                                 "its keyed chain began)")
        if last == chain.keyed_from - 1 and prev != chain.legacy_hash:
            return bad(last, self._legacy_altered(chain))
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

    @staticmethod
    def _legacy_altered(chain: Chain) -> str:
        last = chain.keyed_from - 1
        return (f"rows up to {last} (chained with plain SHA-256, before the keyed chain) were altered, removed or "
                f"added: row {last} no longer has the hash sealed when the keyed chain began")

    def _check_noted_head(self, conn: Any, noted: tuple[int, str], result: VerifyResult) -> VerifyResult:
        row_id, digest = noted
        start, anchor_hash = self._db.slot(conn, ANCHOR_SQL) or (0, ZERO_HASH)
        last, _ = self._db.slot(conn, HEAD_SQL) or (0, ZERO_HASH)
        checked = result.rows_checked
        if row_id > last:
            return VerifyResult(False, checked, last + 1, f"the log ends at row {last} but the head noted earlier "
                                f"is row {row_id}: rows {last + 1} to {row_id} were cut from the log")
        if row_id < start:
            return VerifyResult(True, checked, None, f"the head noted earlier (row {row_id}) was purged by "
                                f"retention (rows up to {start}): note a newer head")
        found = anchor_hash if row_id == start else self._db.run(
            conn, "SELECT hash FROM audit_log WHERE id = ?", (row_id,))[0][0]
        if not hmac.compare_digest(str(found), digest):
            return VerifyResult(False, checked, row_id, f"row {row_id} differs from the head noted earlier: "
                                "the log was rewritten up to there (or the head was copied wrong)")
        return VerifyResult(True, checked, None, f"the head noted earlier (row {row_id}) is intact")

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
        check_days(retention_days)
        run = self._db.run
        with self._db.write() as conn:
            cutoff = iso(self._clock() - timedelta(days=retention_days))
            first_kept = run(conn, "SELECT MIN(id) FROM audit_log WHERE ts >= ?", (cutoff,))[0][0]
            if first_kept is None:
                first_kept = int(run(conn, "SELECT COALESCE(MAX(id), 0) FROM audit_log")[0][0]) + 1
            count, last_id = run(conn, "SELECT COUNT(*), MAX(id) FROM audit_log WHERE id < ?",
                                 (first_kept,))[0]
            if count:
                last_hash = run(conn, "SELECT hash FROM audit_log WHERE id = ?", (last_id,))[0][0]
                run(conn, "DELETE FROM audit_log WHERE id < ?", (first_kept,))
                self._db.set_slot(conn, "audit_anchor", int(last_id), str(last_hash))
            anchor_id, anchor_hash = self._db.slot(conn, ANCHOR_SQL) or (0, ZERO_HASH)
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
            where, params = where + " AND ts >= ?", params + (iso(since),)
        if until is not None:
            where, params = where + " AND ts < ?", params + (iso(until),)
        if action is not None:
            if action not in ACTIONS:
                raise UsageError(f"unknown audit action {action!r}; use one of: {', '.join(ACTIONS)}")
            where, params = where + " AND action = ?", params + (action,)
        return where, params

    def _scan(self, conn: Any, where: str, params: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
        last = -1
        while True:
            batch = self._db.run(conn, f"SELECT {COLUMNS} FROM audit_log WHERE id > ?{where} "
                                       f"ORDER BY id LIMIT {PAGE}", (last, *params))
            yield from batch
            if len(batch) < PAGE:
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
                yield from_db(t)

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
                writer.writerow([csv_cell(data[name]) for name in names])
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


def start_daily_purge(log: AuditLog, retention_days: int, *, interval_s: float = 86400) -> threading.Event:
    """Purge now, then every ``interval_s`` seconds, in a daemon thread; set the returned Event to stop."""
    check_days(retention_days)
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
