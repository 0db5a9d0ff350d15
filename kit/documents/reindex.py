"""Embed the stored chunks again with the configured embedding model, without reading the files again.

``kit docs reindex [--collection C]`` follows a change of ``rag.embedding_model``. Each document is
rewritten as a new *generation* from its chunks stored in SQLite (text, page, heading path): the
same crash-safe steps as an ingest (:func:`kit.documents.ingest.write_document`), the new vectors
going to the Chroma partitions of the new embedder (its *space* is part of their names). A document
whose generation already lives in those partitions is done, so a run killed at any point
(``kill -9`` included) resumes where it stopped: the next run first deletes the unfinished
generation, then goes on with the documents not done yet. Once every document of a collection is
done, the collection records its new embedder and searches work again; partitions left empty are
dropped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.config import Settings, load_settings
from kit.documents.chunking import Piece
from kit.documents.index import DocIndex, open_index
from kit.documents.ingest import recover, write_document
from kit.documents.store import DocumentRow
from kit.documents.vectors import partition

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ReindexReport:
    """What a reindex run did."""

    embedder: str = ""
    documents: int = 0
    chunks: int = 0
    already_done: int = 0
    collections: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _done(index: DocIndex, row: DocumentRow, space: str) -> bool:
    wanted = {partition(row.collection, g, space) for g in row.groups}
    return row.generation is not None and set(index.catalog.generation_partitions(row.generation)) == wanted


def _rewrite(index: DocIndex, row: DocumentRow) -> int:
    chunks = index.catalog.generation_chunks(row.generation or "")
    pieces = [Piece(text, page, tuple(heading)) for _, page, heading, text in chunks]
    write_document(index, row, pieces, re.sub(r"[_\-.]+", " ", Path(row.source).stem))
    return len(pieces)


def reindex(settings: Settings | None = None, *, collection: str | None = None, progress: ProgressFn | None = None,
            index: DocIndex | None = None) -> ReindexReport:
    """Embed every ready document of ``collection`` (None: all) again with ``rag.embedding_model``.

    ``progress(done, total, source)`` is called before each document and once at the end."""
    started = time.perf_counter()
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    report = ReindexReport()
    try:
        with index.writing():
            recover(index)
            embedder, space = index.embedder, index.space
            report.embedder = embedder.identity.label()
            rows = index.catalog.documents(collection)
            todo = [r for r in rows if not _done(index, r, space)]
            report.already_done = len(rows) - len(todo)
            for n, row in enumerate(todo):
                if progress:
                    progress(n, len(todo), row.source)
                report.chunks += _rewrite(index, row)
                report.documents += 1
            if progress:
                progress(len(todo), len(todo), "")
            report.collections = sorted({r.collection for r in rows})
            for name in report.collections:
                index.record(name, embedder.identity)
            index.vectors.drop(index.catalog.forget_unused_partitions())
    finally:
        if own:
            index.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report
