"""Add, replace, remove and list documents.

Ingest, per file: hash it; skip it when the same file (same sha256, same groups) is already in;
parse it; scan it for personal data (``rag.pii_action``: report, mask or refuse); cut it into
chunks; then write the chunks under a *new generation*:

1. register the generation as ``pending`` in SQLite (committed before anything else is written);
2. embed the chunks and write them to Chroma and to the keyword index, tagged with the generation;
3. publish: one SQLite transaction makes the new generation the document's, marks the old one
   ``retired``;
4. delete the retired generation's chunks from Chroma and SQLite.

Files are taken in order; while one is embedded and written, the next is parsed and scanned in a worker
thread (:mod:`kit.documents.reading`: the embedding engine leaves the interpreter free while it computes,
so the two share the cores). Every write to the index stays in the calling thread.

Search only ever sees ready generations (both queries exclude the others), so a process killed at
any point (``kill -9`` included) leaves no half-written document visible; the next ingest or
removal first deletes what such a process left (:func:`recover`), then ingests the file anew.

Personal-data categories whose action in ``policy.pii_actions`` is ``allow`` are not counted.

Sources: a file found in a folder given to ingest is recorded by its path relative to that folder
(``rh/conges.md``), a file given by itself by its name, an upload by its file name: no server path
is shown to users. A document's id stays derived from its absolute path on this machine (or its
upload name), so ingesting the same folder again replaces its documents, also those ingested when
sources were absolute paths, and `kit docs remove PATH` finds them by their path.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.config import Settings, load_settings
from kit.documents.chunking import Piece, chunk_sections
from kit.documents.embed import bulk_threads
from kit.documents.index import DocIndex, open_index
from kit.documents.parsers import supported
from kit.documents.reading import DetectorScan, ReadFile, Scanner, default_scan, read_file
from kit.documents.reading import FindingLike as FindingLike  # noqa: F401 - re-exported
from kit.documents.reading import no_scan as no_scan  # noqa: F401 - re-exported
from kit.documents.register import RegisterEntry
from kit.documents.scans import keep_scans
from kit.documents.store import PUBLIC, DocumentRow
from kit.documents.text import index_terms
from kit.documents.vectors import GROUP_PREFIX, chunk_id, partition
from kit.errors import DocumentError, DocumentNotFoundError
from kit.files import sha256_file
from kit.storage.names import check_name

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_COLLECTION = "default"
ProgressFn = Callable[[int, int, str], None]
PathItem = str | Path | tuple[str | Path, str]
HEADING_WEIGHT = 2


@dataclass
class FileIssue:
    """A file not indexed: its name, why (in English, for the command line and the logs) and ``reason``, the
    case named by :class:`kit.errors.DocumentError` (``personal_data`` for a file the policy refused)."""

    source: str
    message: str
    reason: str = "unreadable"


@dataclass
class IngestReport:
    """What an ingest run did."""

    files: int = 0
    chunks: int = 0
    ingested: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[FileIssue] = field(default_factory=list)
    failed: list[FileIssue] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    pii: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False when a file could not be read (the CLI then exits 1)."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def document_id(collection: str, source: str) -> str:
    """Stable id of a document: derived from its collection and source path."""
    return hashlib.sha256(f"{collection}\n{source}".encode()).hexdigest()[:20]


def discover(paths: Iterable[PathItem]) -> tuple[list[tuple[Path, str, str]], list[str], list[FileIssue]]:
    """Files to ingest with their source labels and identity keys (see the module docstring); ignored files
    in folders (by their source label); paths that do not exist."""
    files: list[tuple[Path, str, str]] = []
    ignored: list[str] = []
    missing: list[FileIssue] = []
    for item in paths:
        path, label = (Path(item[0]), item[1]) if isinstance(item, tuple) else (Path(item), None)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    file = Path(root) / name
                    if name.startswith("."):
                        continue
                    shown = Path(os.path.relpath(file, path)).as_posix()
                    if supported(file):
                        files.append((file, shown, os.path.abspath(file)))
                    else:
                        ignored.append(shown)
        elif path.is_file():
            files.append((path, label, label) if label else (path, path.name, os.path.abspath(path)))
        else:
            missing.append(FileIssue(label or str(path), f"{label or path}: no such file or folder.", "missing"))
    return files, ignored, missing


def recover(index: DocIndex) -> int:
    """Delete the chunks of generations left pending or retired by an interrupted run."""
    leftovers = index.catalog.hidden_generations()
    for generation in leftovers:
        index.vectors.delete_generation(generation, index.catalog.generation_partitions(generation))
        index.catalog.drop_generation(generation)
    return len(leftovers)


def _context(piece: Piece, title: str) -> str:
    """Heading path, or the file name when there is none: indexed and embedded with the chunk."""
    return " > ".join(piece.heading) if piece.heading else title


def _terms(context: str, text: str) -> str:
    """Keyword terms of a chunk: its header's count ``HEADING_WEIGHT`` times (a word of a title says
    more about the chunk than a word of its body), then its text's."""
    return " ".join([index_terms(context)] * HEADING_WEIGHT + [index_terms(text)])


def write_document(index: DocIndex, row: DocumentRow, pieces: Sequence[Piece], title: str,
                   vectors: npt.NDArray[np.float32] | None = None) -> DocumentRow:
    """Store ``pieces`` as the new content of document ``row`` (steps 1 to 4 of the module docstring).

    ``title`` stands for the heading of chunks that have none (the file name); ``vectors``, when
    given, are used instead of embedding the chunks (benchmarks). Returns the published row."""
    generation = uuid.uuid4().hex[:16]
    row = replace(row, generation=generation, state="ready", chunks=len(pieces))
    space = index.space
    partitions = [(partition(row.collection, g, space), row.collection, g) for g in row.groups]
    index.catalog.begin(row.id, row.source, row.collection, generation, row.ingested_at, partitions)
    contexts = [_context(p, title) for p in pieces]
    texts = [f"{c}\n{p.text}" for c, p in zip(contexts, pieces, strict=True)]
    if vectors is None:
        threads = bulk_threads(index.settings.rag.ingest_threads)
        vectors = _embed(index, row, texts, [p[0] for p in partitions], title, threads)
        index.lexicon.add([p.text for p in pieces], index.embedder, threads=threads)
    base: dict[str, Any] = {"doc_id": row.id, "generation": generation, "collection": row.collection,
                            "source": row.source, "sha256": row.sha256, "ingested_at": row.ingested_at}
    base.update({GROUP_PREFIX + g: True for g in row.groups})
    metadatas = []
    for i, piece in enumerate(pieces):
        meta = {**base, "chunk": i, "heading": " > ".join(piece.heading)}
        if piece.page is not None:
            meta["page"] = piece.page
        metadatas.append(meta)
    index.vectors.add([p[0] for p in partitions], [chunk_id(generation, i) for i in range(len(pieces))], vectors,
                      metadatas, [p.text for p in pieces])
    index.catalog.add_chunks(generation, row.id, [(i, p.page, list(p.heading), p.text, _terms(c, p.text))
                                                  for i, (p, c) in enumerate(zip(pieces, contexts, strict=True))])
    retired = index.catalog.publish(row)
    if retired:
        index.vectors.delete_generation(retired, index.catalog.generation_partitions(retired))
        index.catalog.drop_generation(retired)
    return row


def _embed(index: DocIndex, row: DocumentRow, texts: list[str], partitions: list[str], title: str,
           threads: int) -> npt.NDArray[np.float32]:
    """The vectors of ``texts`` (a chunk's context and text, as embedded). A text the document's current
    version already holds, embedded by the same model (its partitions are the new version's), keeps its stored
    vector, and a text repeated in the document is embedded once: a file edited in one place re-embeds the
    chunks that changed, not the whole file."""
    import numpy as np

    known: dict[str, npt.NDArray[np.float32]] = {}
    current = index.catalog.document(row.id)
    if current is not None and current.state == "ready" and current.generation:
        shared = [p for p in index.catalog.generation_partitions(current.generation) if p in partitions]
        old_title = re.sub(r"[_\-.]+", " ", Path(current.source).stem)
        chunks = {chunk_id(current.generation, i): f"{' > '.join(heading) if heading else old_title}\n{text}"
                  for i, _page, heading, text in index.catalog.generation_chunks(current.generation)}
        needed = set(texts) if shared and old_title == title else set()
        wanted = {cid: text for cid, text in chunks.items() if text in needed}
        for cid, vector in index.vectors.vectors(list(wanted), shared).items():
            known[wanted[cid]] = vector
    if not texts:
        return np.zeros((0, index.embedder.dimension), dtype=np.float32)
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    known.update(zip(todo, index.embedder.passages(todo, threads), strict=True))
    return np.vstack([known[t] for t in texts]).astype(np.float32)


def new_row(source: str, collection: str, groups: Sequence[str], sha256: str, size: int,
            pii: dict[str, int] | None = None, key: str | None = None) -> DocumentRow:
    """A documents-table row for a document about to be written (see :func:`write_document`); its id comes
    from ``key`` (default: ``source``)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return DocumentRow(document_id(collection, key or source), source, collection, sha256, sorted(groups), None,
                       "pending", 0, size, now, dict(pii or {}))


@dataclass
class _Planned:
    """A file to read and store (its hash and size taken, not already in the index)."""

    path: Path
    source: str
    key: str
    sha256: str
    size: int
    existing: bool


def _plan(index: DocIndex, path: Path, source: str, key: str, groups: list[str], collection: str,
          report: IngestReport) -> _Planned | None:
    """Hash the file; None (and ``skipped``) when the same file with the same groups is already in."""
    try:
        sha256 = sha256_file(path)
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    existing = index.catalog.document(document_id(collection, key))
    if existing and existing.state == "ready" and existing.sha256 == sha256 and existing.groups == groups:
        report.skipped.append(source)
        return None
    return _Planned(path, source, key, sha256, size, existing is not None)


def _store(index: DocIndex, planned: _Planned, read: ReadFile, groups: list[str], collection: str,
           scan: Scanner, report: IngestReport) -> None:
    """Refuse, or chunk the file (masked if so configured) and write it as a new generation."""
    settings, source = index.settings, planned.source
    if read.counts:
        report.pii[source] = read.counts
    action = settings.rag.pii_action
    if read.counts and action == "refuse":
        found = ", ".join(f"{k} ({v})" for k, v in read.counts.items())
        kept = " The version ingested before stays; remove it with `kit docs remove`." if planned.existing else ""
        report.refused.append(FileIssue(source, f"personal data found: {found}.{kept}", "personal_data"))
        return
    pieces = chunk_sections(read.masked if action == "mask" else read.sections, settings.rag.chunk_size,
                            settings.rag.chunk_overlap)
    if isinstance(scan, DetectorScan) and settings.policy.pii_detection:
        keep_scans(index.scans, pieces, source,
                   [] if action == "mask" else list(zip(read.sections, read.findings, strict=True)))
    row = write_document(index, new_row(source, collection, groups, planned.sha256, planned.size, read.counts,
                                        planned.key), pieces, re.sub(r"[_\-.]+", " ", Path(source).stem))
    report.files += 1
    report.chunks += len(pieces)
    report.ingested.append(source)
    report.documents.append(row.id)


def _run(index: DocIndex, files: list[tuple[Path, str, str]], groups: list[str], collection: str, scan: Scanner,
         report: IngestReport, progress: ProgressFn | None) -> None:
    """Ingest ``files`` in order; the next file is read and scanned in a worker thread while the current one is
    embedded and written here (every write to the index stays in this thread)."""
    settings = index.settings
    Ahead = tuple[_Planned | None, Future[ReadFile] | None, DocumentError | None]

    def start(i: int) -> Ahead:
        path, source, key = files[i]
        try:
            planned = _plan(index, path, source, key, groups, collection, report)
        except DocumentError as exc:
            return None, None, exc
        return planned, (pool.submit(read_file, path, scan, settings) if planned else None), None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kit-ingest-read") as pool:
        ahead: Ahead = start(0) if files else (None, None, None)
        for done, (path, source, _key) in enumerate(files):
            if progress:
                progress(done, len(files), source)
            planned, reading, error = ahead
            ahead = start(done + 1) if done + 1 < len(files) else (None, None, None)
            try:
                if error is not None:
                    raise error
                if planned is not None and reading is not None:
                    _store(index, planned, reading.result(), groups, collection, scan, report)
            except DocumentError as exc:  # named by its source: an upload's temporary path never shows
                report.failed.append(FileIssue(source, str(exc).replace(str(path), source), exc.reason))


def ingest(paths: Iterable[PathItem], groups: Sequence[str] = (), collection: str = DEFAULT_COLLECTION,
           settings: Settings | None = None, *, scan: Scanner | None = None, progress: ProgressFn | None = None,
           index: DocIndex | None = None) -> IngestReport:
    """Ingest files and folders (a ``(path, source)`` tuple names the source, e.g. an upload).

    ``groups``: who may see the documents (none: the group ``public``, visible to everyone).
    ``scan``: personal-data detector (default: the one used for prompts).
    ``progress(done, total, source)`` is called before each file and once at the end.
    A file that cannot be read is reported in ``failed`` and the run goes on.
    """
    started = time.perf_counter()
    settings = settings or (index.settings if index else load_settings())
    collection = check_name("collection", collection)
    wanted = sorted({check_name("group", g) for g in groups}) or [PUBLIC]
    own = index is None
    index = index or open_index(settings)
    report = IngestReport()
    try:
        files, report.ignored, report.failed = discover(paths)
        scanner = scan or default_scan
        with index.writing():
            recover(index)
            if files:
                index.check_embedder([collection], writing=True)
            _run(index, files, wanted, collection, scanner, report, progress)
            if progress:
                progress(len(files), len(files), "")
    finally:
        if own:
            index.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _resolve(index: DocIndex, target: str, collection: str | None) -> list[DocumentRow]:
    found = index.catalog.document(target)
    if found and (collection is None or found.collection == collection):
        return [found]
    path = os.path.abspath(target)
    rows = [row for row in index.catalog.documents(collection, ready_only=False)
            if row.id in (document_id(row.collection, path), document_id(row.collection, target))]
    rows = rows or index.catalog.documents(collection, source=target, ready_only=False)
    if not rows:
        raise DocumentNotFoundError(f"No ingested document has the id or path {target!r}; "
                                    "`kit docs list` shows them.")
    return rows


def remove(target: str, settings: Settings | None = None, *, collection: str | None = None,
           index: DocIndex | None = None) -> list[DocumentRow]:
    """Remove a document by id or path: its vectors and keyword rows go too. Returns what was removed."""
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    try:
        with index.writing():
            rows = _resolve(index, target, collection)
            for row in rows:
                index.catalog.retire_document(row.id)
            recover(index)
        return rows
    finally:
        if own:
            index.close()


def list_documents(settings: Settings | None = None, *, collection: str | None = None,
                   groups: Sequence[str] | None = None, index: DocIndex | None = None) -> list[DocumentRow]:
    """Ready documents, optionally of one collection and visible to ``groups``."""
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    try:
        return index.catalog.documents(collection, groups)
    finally:
        if own:
            index.close()


def document_register(settings: Settings | None = None, *, index: DocIndex | None = None) -> list[RegisterEntry]:
    """Every version of every document indexed, those that left the index within the audit's retention
    (``policy.audit_retention_days``) included; older ones are forgotten."""
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    try:
        return index.catalog.register_entries(settings.policy.audit_retention_days)
    finally:
        if own:
            index.close()


def stats(settings: Settings | None = None, *, index: DocIndex | None = None) -> dict[str, Any]:
    """Counts of documents, chunks, bytes, per collection and per group; the embedding model; storage."""
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    try:
        out = index.catalog.stats()
        out["embedding_model"] = settings.rag.embedding_model
        out["chroma"] = settings.rag.chroma_url or settings.rag.chroma_path or str(index.home / "chroma")
        return out
    finally:
        if own:
            index.close()
