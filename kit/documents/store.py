"""The SQLite side of the document index: ``$KIT_HOME/docs.db``.

Tables:

* ``documents`` — one row per ingested document: the source of truth for what is ingested. Its
  ``generation`` is the set of chunks search may see; ``state`` is ``pending`` until a first
  generation is published.
* ``doc_groups`` — the groups allowed to see each document.
* ``generations`` — every set of chunks written, ``pending`` while being written, ``ready`` once
  published, ``retired`` once replaced or removed. A generation is registered *before* any of its
  chunks is written (here or in Chroma) and forgotten only after they are all deleted, so any chunk
  anywhere belongs to a known generation, and search excludes every generation that is not ready.
* ``partitions`` — the Chroma collections in use, one per kit collection and group (see
  :mod:`kit.documents.vectors`); each generation records the partitions it wrote to.
* ``register`` — every version of every document indexed, kept after it is replaced or removed for the
  audit's retention (see :mod:`kit.documents.register`).
* ``chunks`` and the FTS5 table ``chunks_fts`` (same rowid) — the chunk text and its keyword
  terms (folded French and English stems, see :mod:`kit.documents.text`), ranked with ``bm25()``.

Group and collection filters are part of the SQL of the keyword query itself. Need-to-know goes by
groups only: a collection is a label that groups documents, and whatever its name it never makes a
document visible to someone outside its groups (the group ``public`` is the one everybody reads).

Keyword scores are BM25 computed here, with FTS5's formula and constants, but over the chunks the
caller may read only: their number, their average length and how many of them hold each term. What
a caller is shown (order and scores) is what it would be if the documents they may not read did not
exist; FTS5's own ``bm25()`` counts every row of the index, so it is used only to find the rows.

Sources are stored as ingested: the path relative to the folder given to ``kit docs ingest``, or the
uploaded file's name. A document ingested when sources were absolute paths shows its file name only
(:func:`shown_source`): a server path is never shown.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.documents import register
from kit.documents.bm25 import bm25_scores, occurrences, phrases_of, tokens
from kit.errors import IndexStoreError

PUBLIC = "public"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    collection TEXT NOT NULL,
    sha256 TEXT NOT NULL DEFAULT '',
    groups TEXT NOT NULL DEFAULT '[]',
    generation TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
    chunks INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    ingested_at TEXT NOT NULL DEFAULT '',
    pii TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS documents_source ON documents (source);
CREATE INDEX IF NOT EXISTS documents_generation ON documents (generation);
CREATE TABLE IF NOT EXISTS doc_groups (
    doc_id TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (doc_id, grp)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_groups_grp ON doc_groups (grp, doc_id);
CREATE TABLE IF NOT EXISTS generations (
    generation TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'retired')),
    created_at TEXT NOT NULL,
    partitions TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS partitions (
    name TEXT PRIMARY KEY, collection TEXT NOT NULL, grp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    generation TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL,
    length INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_generation ON chunks (generation, chunk_index);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id, chunk_index);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (terms, tokenize = 'unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab (chunks_fts, 'row');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_instances USING fts5vocab (chunks_fts, 'instance');
"""


@dataclass
class DocumentRow:
    """What the documents table says about one document."""

    id: str
    source: str
    collection: str
    sha256: str
    groups: list[str]
    generation: str | None
    state: str
    chunks: int
    size: int
    ingested_at: str
    pii: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "collection": self.collection, "sha256": self.sha256,
                "groups": self.groups, "state": self.state, "chunks": self.chunks, "size": self.size,
                "ingested_at": self.ingested_at, "pii": self.pii}


@dataclass
class ChunkRow:
    """One stored chunk."""

    rowid: int
    doc_id: str
    generation: str
    chunk_index: int
    page: int | None
    heading: list[str]
    text: str
    source: str = ""
    terms: frozenset[str] = frozenset()


@dataclass
class KeywordHit:
    rowid: int
    doc_id: str
    chunk_index: int
    bm25: float


def shown_source(source: str) -> str:
    """A source as users see it: as stored, or only the file name of an absolute path (ingested by an earlier
    version), never a path of the server."""
    return os.path.basename(source) if os.path.isabs(source) else source


def _document(row: sqlite3.Row) -> DocumentRow:
    return DocumentRow(row["id"], shown_source(row["source"]), row["collection"], row["sha256"],
                       json.loads(row["groups"]), row["generation"], row["state"], row["chunks"], row["size"],
                       row["ingested_at"], json.loads(row["pii"]))


def visibility_sql(collection: str | None, groups: Sequence[str] | None) -> tuple[str, list[Any]]:
    """SQL condition on ``documents d`` for what a caller may see (``groups=None``: no restriction)."""
    clauses, params = ["d.state = 'ready'"], []
    if collection is not None:
        clauses.append("d.collection = ?")
        params.append(collection)
    if groups is not None:
        allowed = sorted({*groups, PUBLIC})
        clauses.append(f"EXISTS (SELECT 1 FROM doc_groups g WHERE g.doc_id = d.id "
                       f"AND g.grp IN ({', '.join('?' * len(allowed))}))")
        params += allowed
    return " AND ".join(clauses), params


def idf(total: int, frequency: int) -> float:
    """BM25's inverse document frequency (a term absent from every chunk gets the highest)."""
    return math.log((total - frequency + 0.5) / (frequency + 0.5) + 1)


class Catalog:
    """The documents table, the chunks and their keyword index, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA + register.SCHEMA)
            self._add_lengths()
            register.fill(self._db)
        except sqlite3.OperationalError as exc:
            raise IndexStoreError(f"Cannot open the document index {path}: {exc}. Check the folder is writable "
                                  "and that this SQLite has FTS5.") from exc
        self.path = path
        self._lock = threading.RLock()

    def _add_lengths(self) -> None:
        """Give an index written before chunk lengths were stored its lengths (once)."""
        columns = [r[1] for r in self._db.execute("PRAGMA table_info(chunks)")]
        if "length" not in columns:
            self._db.execute("ALTER TABLE chunks ADD COLUMN length INTEGER")
        rows = self._db.execute("SELECT c.id, f.terms FROM chunks c JOIN chunks_fts f ON f.rowid = c.id "
                                "WHERE c.length IS NULL").fetchall()
        if rows:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE chunks SET length = ? WHERE id = ?",
                                 [(len(tokens(r[1])), r[0]) for r in rows])
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- meta -----------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        rows = self._all("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- documents ------------------------------------------------------------------------------
    def document(self, doc_id: str) -> DocumentRow | None:
        rows = self._all("SELECT * FROM documents WHERE id = ?", (doc_id,))
        return _document(rows[0]) if rows else None

    def documents(self, collection: str | None = None, groups: Sequence[str] | None = None,
                  source: str | None = None, ready_only: bool = True) -> list[DocumentRow]:
        where, params = visibility_sql(collection, groups)
        if not ready_only:
            where = where.replace("d.state = 'ready'", "1")
        if source is not None:
            where += " AND d.source = ?"
            params.append(source)
        return [_document(r) for r in self._all(f"SELECT * FROM documents d WHERE {where} ORDER BY source, collection",
                                                 params)]

    def begin(self, doc_id: str, source: str, collection: str, generation: str, now: str,
              partitions: Sequence[tuple[str, str, str]]) -> None:
        """Register a pending generation, the partitions ``(name, collection, group)`` it will write to,
        and a pending document row if the document is new."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO partitions (name, collection, grp) VALUES (?, ?, ?)", partitions)
            db.execute("INSERT INTO generations (generation, doc_id, state, created_at, partitions) "
                       "VALUES (?, ?, 'pending', ?, ?)",
                       (generation, doc_id, now, json.dumps([p[0] for p in partitions])))
            db.execute("INSERT OR IGNORE INTO documents (id, source, collection, state) VALUES (?, ?, ?, 'pending')",
                       (doc_id, source, collection))

    def add_chunks(self, generation: str, doc_id: str,
                   rows: Sequence[tuple[int, int | None, list[str], str, str]]) -> None:
        """Store chunks ``(index, page, heading path, text, keyword terms)`` of a pending generation."""
        with self.transaction() as db:
            for index, page, heading, text, terms in rows:
                cursor = db.execute(
                    "INSERT INTO chunks (generation, doc_id, chunk_index, page, heading, text, length) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (generation, doc_id, index, page, json.dumps(heading, ensure_ascii=False), text,
                     len(tokens(terms))))
                db.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (cursor.lastrowid, terms))

    def publish(self, row: DocumentRow) -> str | None:
        """Make ``row.generation`` the one search sees, in one transaction; returns the retired one."""
        with self.transaction() as db:
            old = db.execute("SELECT generation FROM documents WHERE id = ?", (row.id,)).fetchone()
            previous = old["generation"] if old else None
            db.execute("INSERT OR REPLACE INTO documents (id, source, collection, sha256, groups, generation, state, "
                       "chunks, size, ingested_at, pii) VALUES (?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?)",
                       (row.id, row.source, row.collection, row.sha256, json.dumps(row.groups), row.generation,
                        row.chunks, row.size, row.ingested_at, json.dumps(row.pii)))
            db.execute("UPDATE generations SET state = 'ready' WHERE generation = ?", (row.generation,))
            if previous and previous != row.generation:
                db.execute("UPDATE generations SET state = 'retired' WHERE generation = ?", (previous,))
            db.execute("DELETE FROM doc_groups WHERE doc_id = ?", (row.id,))
            db.executemany("INSERT INTO doc_groups (doc_id, grp) VALUES (?, ?)", [(row.id, g) for g in row.groups])
            register.replaced(db, row.id, row.ingested_at)
            register.opened(db, row.id, row.source, row.collection, row.sha256, row.groups, row.size, row.ingested_at)
        return previous if previous != row.generation else None

    def retire_document(self, doc_id: str) -> None:
        """Hide a document from search at once; its chunks are deleted by :meth:`drop_generation`."""
        with self.transaction() as db:
            db.execute("UPDATE generations SET state = 'retired' WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
            db.execute("DELETE FROM doc_groups WHERE doc_id = ?", (doc_id,))
            register.removed(db, doc_id, datetime.now(UTC).isoformat(timespec="seconds"))

    def register_entries(self, retention_days: int) -> list[register.RegisterEntry]:
        """The register of documents (:mod:`kit.documents.register`), less what ended before the retention."""
        with self.transaction() as db:
            register.purge(db, datetime.now(UTC).isoformat(timespec="seconds"), retention_days)
            return register.entries(db)

    def generation_partitions(self, generation: str) -> list[str]:
        rows = self._all("SELECT partitions FROM generations WHERE generation = ?", (generation,))
        return json.loads(rows[0]["partitions"]) if rows else []

    def visible_partitions(self, collection: str | None, groups: Sequence[str] | None) -> list[str]:
        """The partitions a caller may search: of ``collection`` (None: all), of ``groups`` and of ``public``."""
        clauses, params = ["1"], []
        if collection is not None:
            clauses.append("collection = ?")
            params.append(collection)
        if groups is not None:
            allowed = sorted({*groups, PUBLIC})
            clauses.append(f"grp IN ({', '.join('?' * len(allowed))})")
            params += allowed
        return [r["name"] for r in self._all(f"SELECT name FROM partitions WHERE {' AND '.join(clauses)} "
                                              "ORDER BY name", params)]

    def hidden_generations(self) -> list[str]:
        """Generations search must not see: being written, replaced, or removed."""
        return [r["generation"] for r in self._all("SELECT generation FROM generations WHERE state != 'ready'")]

    def drop_generation(self, generation: str) -> None:
        """Delete the keyword rows and chunk rows of a generation that is not ready, then forget it."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE generation = ?)",
                       (generation,))
            db.execute("DELETE FROM chunks WHERE generation = ?", (generation,))
            db.execute("DELETE FROM generations WHERE generation = ? AND state != 'ready'", (generation,))
            db.execute("DELETE FROM documents WHERE state = 'pending' AND NOT EXISTS "
                       "(SELECT 1 FROM generations g WHERE g.doc_id = documents.id)")

    # --- keyword search -------------------------------------------------------------------------
    def keyword_search(self, match: str, limit: int, collection: str | None,
                       groups: Sequence[str] | None) -> list[KeywordHit]:
        """Best chunks by BM25 among the ready documents the caller may see, the statistics of BM25 (chunk
        count, average length, chunks holding each term) taken over those documents only."""
        phrases = phrases_of(match) if match else []
        if not phrases:
            return []
        where, params = visibility_sql(collection, groups)
        visible = f"c.generation IN (SELECT d.generation FROM documents d WHERE {where})"
        found: dict[int, tuple[str, int, int]] = {}  # rowid: document, chunk index, length in tokens
        counts: dict[int, list[int]] = {}  # rowid: occurrences of each phrase
        with self._lock:
            total, length = self._db.execute(f"SELECT count(*), coalesce(sum(c.length), 0) FROM chunks c "
                                             f"WHERE {visible}", params).fetchone()
            if total == self._rows():  # the caller reads every chunk: FTS5's statistics are theirs, and faster
                rows = self._db.execute("SELECT c.id, c.doc_id, c.chunk_index, bm25(chunks_fts) AS rank FROM "
                                        "chunks_fts f JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ? "
                                        "ORDER BY rank, c.id LIMIT ?", [match, limit]).fetchall()
                return [KeywordHit(r[0], r[1], r[2], -float(r[3])) for r in rows]
            single = {p[0]: i for i, p in enumerate(phrases) if len(p) == 1}
            if single:  # one word: its occurrences in each chunk, from FTS5's own index
                rows = self._db.execute(
                    "SELECT c.id, c.doc_id, c.chunk_index, c.length, i.term, count(*) FROM chunks_instances i "
                    f"JOIN chunks c ON c.id = i.doc WHERE i.term IN ({', '.join('?' * len(single))}) AND {visible} "
                    "GROUP BY c.id, i.term", [*single, *params]).fetchall()
                for rowid, doc_id, index, size, term, n in rows:
                    found[rowid] = (doc_id, index, size or 0)
                    counts.setdefault(rowid, [0] * len(phrases))[single[term]] = n
            for i, phrase in enumerate(phrases):  # several tokens (a stem holding "_"): counted here
                if len(phrase) > 1:
                    for r in self._db.execute(
                            "SELECT c.id, c.doc_id, c.chunk_index, c.length, f.terms FROM chunks_fts f JOIN chunks c "
                            f"ON c.id = f.rowid WHERE chunks_fts MATCH ? AND {visible}",
                            ['"' + " ".join(phrase) + '"', *params]):
                        found[r[0]] = (r[1], r[2], r[3] or 0)
                        counts.setdefault(r[0], [0] * len(phrases))[i] = occurrences(tokens(r[4]), phrase)
        rowids = list(counts)
        scores = bm25_scores([counts[r] for r in rowids], [found[r][2] for r in rowids], total, length)
        scored = [KeywordHit(r, found[r][0], found[r][1], score) for r, score in zip(rowids, scores, strict=True)]
        scored.sort(key=lambda h: (-h.bm25, h.rowid))
        return scored[:limit]

    def _rows(self) -> int:
        """Every chunk row, of any generation: what FTS5's own statistics count."""
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def frequencies(self, terms: Sequence[str], collection: str | None = None,
                    groups: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """The number of chunks of ready documents the caller may see (``groups``, None: all; ``collection``,
        None: all), and how many of them hold each term."""
        where, params = visibility_sql(collection, groups)
        visible = f"c.generation IN (SELECT d.generation FROM documents d WHERE {where})"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM chunks c WHERE {visible}", params).fetchone()[0]
            out = {}
            if total == self._rows():  # the caller reads every chunk: FTS5's own counts are theirs
                for term in dict.fromkeys(terms):
                    row = self._db.execute("SELECT doc FROM chunks_vocab WHERE term = ?", (term,)).fetchone()
                    out[term] = row[0] if row else 0
                return int(total), out
            for term in dict.fromkeys(terms):
                phrase = " ".join(tokens(term))
                out[term] = 0 if not phrase else self._db.execute(
                    f"SELECT count(*) FROM chunks_fts f JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ? "
                    f"AND {visible}", ['"' + phrase + '"', *params]).fetchone()[0]
        return int(total), out


    def chunks_by_key(self, keys: Sequence[tuple[str, int]], collection: str | None,
                      groups: Sequence[str] | None) -> dict[tuple[str, int], ChunkRow]:
        """Chunks of ready, visible documents by (document id, chunk index), with source and terms."""
        if not keys:
            return {}
        where, params = visibility_sql(collection, groups)
        values = ", ".join("(?, ?)" for _ in keys)
        sql = (f"WITH k (doc_id, chunk_index) AS (VALUES {values}) "
               "SELECT c.*, d.source, f.terms FROM k CROSS JOIN documents d ON d.id = k.doc_id "
               "CROSS JOIN chunks c ON c.generation = d.generation AND c.chunk_index = k.chunk_index "
               f"JOIN chunks_fts f ON f.rowid = c.id WHERE {where}")
        flat = [v for key in keys for v in key]
        return {(r["doc_id"], r["chunk_index"]): ChunkRow(
            r["id"], r["doc_id"], r["generation"], r["chunk_index"], r["page"], json.loads(r["heading"]), r["text"],
            shown_source(r["source"]), frozenset(r["terms"].split())) for r in self._all(sql, [*flat, *params])}

    def generation_chunks(self, generation: str) -> list[tuple[int, int | None, list[str], str]]:
        """The chunks ``(index, page, heading path, text)`` of a generation, in order."""
        return [(r["chunk_index"], r["page"], json.loads(r["heading"]), r["text"]) for r in self._all(
            "SELECT chunk_index, page, heading, text FROM chunks WHERE generation = ? ORDER BY chunk_index",
            (generation,))]

    def forget_unused_partitions(self) -> list[str]:
        """Forget the partitions no generation writes to any more; returns their names (to drop in Chroma)."""
        with self.transaction() as db:
            used = {name for (value,) in db.execute("SELECT partitions FROM generations") for name in json.loads(value)}
            unused = [r[0] for r in db.execute("SELECT name FROM partitions") if r[0] not in used]
            db.executemany("DELETE FROM partitions WHERE name = ?", [(n,) for n in unused])
        return unused

    def stats(self) -> dict[str, Any]:
        with self._lock:
            docs = self._db.execute("SELECT count(*), coalesce(sum(chunks), 0), coalesce(sum(size), 0) "
                                    "FROM documents WHERE state = 'ready'").fetchone()
            collections = {r[0]: r[1] for r in self._db.execute(
                "SELECT collection, count(*) FROM documents WHERE state = 'ready' GROUP BY collection")}
            groups = {r[0]: r[1] for r in self._db.execute(
                "SELECT grp, count(*) FROM doc_groups GROUP BY grp")}
            pending = self._db.execute("SELECT count(*) FROM generations WHERE state != 'ready'").fetchone()[0]
        return {"documents": docs[0], "chunks": docs[1], "bytes": docs[2], "collections": collections,
                "groups": groups, "unfinished_generations": pending, "path": str(self.path)}
