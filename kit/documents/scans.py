"""The personal-data findings of the excerpts, kept with the index: ``excerpt_scans`` in ``docs.db``.

Every excerpt a chat quotes goes through the personal-data policy (:mod:`kit.gateway.excerpts`), and scanning six
excerpts of a thousand characters costs the detector a tenth of a second or more, at every question, on a parser
that concurrent requests share one piece at a time. An excerpt's text does not change between two questions: the
ingest scans each chunk it writes (its text, its heading path and its document's name) and keeps the result here,
and a chat reads it instead of scanning again. A text is scanned at most once per detector: the key is the sha256
of the text with the detector's fingerprint (its rules' code and its spaCy pipeline), so a kit upgrade that changes
the rules scans again, on first use, what the new rules have not seen.

What is kept: the key and each finding's category, span and score; never the text, never the value found. The
chunks' text is in the ``chunks`` table already; removing a document leaves its keys (they name nothing without the
text, and an ingest of the same text again finds them).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.errors import IndexStoreError

if TYPE_CHECKING:
    from kit.documents.chunking import Piece
    from kit.documents.parsers import Section
    from kit.rules.privacy.detector import Spans

SCHEMA = """
CREATE TABLE IF NOT EXISTS excerpt_scans (
    detector TEXT NOT NULL, key BLOB NOT NULL, findings TEXT NOT NULL, PRIMARY KEY (detector, key)) WITHOUT ROWID;
"""


class ScanStore:
    """The findings of texts scanned before, by the detector's fingerprint and the text's sha256 (the detector's
    memo key): what :meth:`kit.rules.privacy.Detector.scan_cached_many` consults before scanning."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:
            raise IndexStoreError(f"Cannot open the document index {path}: {exc}. "
                                  "Check the folder is writable.") from exc
        self._lock = threading.Lock()

    def recall(self, detector: str, keys: Sequence[bytes]) -> dict[bytes, Spans]:
        """The findings kept for those of ``keys`` scanned before by ``detector``."""
        wanted = list(dict.fromkeys(keys))
        out: dict[bytes, Spans] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound on a statement's parameters
            part = wanted[start:start + 500]
            marks = ", ".join("?" for _ in part)
            with self._lock:
                rows = self._db.execute("SELECT key, findings FROM excerpt_scans "
                                        f"WHERE detector = ? AND key IN ({marks})", [detector, *part]).fetchall()
            for key, findings in rows:
                out[bytes(key)] = [(str(t), int(s), int(e), float(sc)) for t, s, e, sc in json.loads(findings)]
        return out

    def keep(self, detector: str, found: dict[bytes, Spans]) -> None:
        """Remember the findings of texts ``detector`` has just scanned."""
        if not found:
            return
        rows = [(detector, key, json.dumps(spans)) for key, spans in found.items()]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO excerpt_scans (detector, key, findings) VALUES (?, ?, ?)",
                                     rows)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:  # a read-only or busy index: the scan stands, only not remembered
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


def keep_scans(store: ScanStore, pieces: Sequence[Piece], source: str,
               scanned: Sequence[tuple[Section, Sequence[Any]]]) -> None:
    """Keep the findings of what a chat will scan in each chunk of a document being ingested: its text, its heading
    path, its document's name as shown. ``scanned``: the sections as the ingest scanned them, with their findings
    (none when the ingest masked them: the chunks' text then differs). A chunk whose text stands whole in a scanned
    section, no finding crossing its edges, takes that section's findings (the detector read it there, with more
    context around it); the others, the headings and the name are scanned, together, once."""
    from kit.documents.store import shown_source
    from kit.rules.privacy import get_detector
    from kit.rules.privacy.detector import memo_key

    detector = get_detector()
    mapped: dict[bytes, Spans] = {}
    todo: list[str] = [shown_source(source)]
    cursor = 0  # chunks come in the order of the sections
    for piece in pieces:
        todo.append(" > ".join(piece.heading))
        spans, cursor = _within(piece.text, scanned, cursor)
        if spans is None:
            todo.append(piece.text)
        else:
            mapped[memo_key(piece.text)] = spans
    texts = [t for t in dict.fromkeys(todo) if t and memo_key(t) not in mapped]
    for text, findings in zip(texts, detector.scan_cached_many(texts), strict=True):  # the memo may know some
        mapped[memo_key(text)] = [(f.type, f.start, f.end, f.score) for f in findings]
    store.keep(detector.fingerprint, mapped)


def _within(text: str, scanned: Sequence[tuple[Section, Sequence[Any]]], cursor: int) -> tuple[Spans | None, int]:
    """The findings of ``text`` from the first scanned section, from ``cursor`` on, that holds it whole (and that
    section's index), or None when none does or a finding crosses its edges."""
    for n in range(cursor, len(scanned)):
        section, findings = scanned[n]
        at = section.text.find(text)
        if at < 0:
            continue
        end = at + len(text)
        if any(f.start < at < f.end or f.start < end < f.end for f in findings):
            return None, n
        return [(f.type, f.start - at, f.end - at, float(getattr(f, "score", 1.0)))
                for f in findings if at <= f.start and f.end <= end], n
    return None, cursor
