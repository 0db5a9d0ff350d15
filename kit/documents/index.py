"""Open the document index: the SQLite catalogue, the Chroma vectors and the embedding model.

:func:`open_index` is cheap: Chroma and the embedding model are opened on first use, so listing
documents never loads a model. Writers (ingest, remove, reindex) hold an exclusive lock on
``$KIT_HOME/docs.lock`` (released by the system if the process dies, even by ``kill -9``);
searches take no lock.

The index knows its embedder: each collection records the name, dimensions and weights
fingerprint of the model that embedded its chunks (``embedder:<collection>`` in the ``meta`` table,
written by its first ingest). Vectors of two models cannot be compared, so a search or an ingest
with another model configured stops with :class:`~kit.errors.EmbedderMismatchError`, naming both
and ``kit docs reindex``. Vectors of each embedder live in their own Chroma partitions (the
embedder's *space* is part of the partition name), so a reindex writes beside the old ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kit.config import Settings
from kit.documents.embed import Embedder, Identity, get_embedder
from kit.documents.embedders import EmbedderEntry, find_embedder
from kit.documents.lexicon import Lexicon
from kit.documents.scans import ScanStore
from kit.documents.store import Catalog
from kit.documents.synonyms import load_synonyms, synonyms_path
from kit.documents.vectors import VectorIndex
from kit.errors import EmbedderMismatchError, IndexStoreError

LOCK_WAIT_S = 120.0
DEFAULT_MARGIN = 0.25
LEGACY_KEY = "embedding_model"  # "name|dimensions", written by versions that recorded one model per index


def space_of(identity: Identity) -> str:
    """Short key of an embedder, part of its Chroma partition names and of its lexicon rows."""
    return hashlib.sha256(f"{identity.name}|{identity.dimensions}|{identity.fingerprint}".encode()).hexdigest()[:10]


def _same(recorded: Identity, current: Identity) -> bool:
    if recorded.fingerprint == "":  # recorded before fingerprints: name and dimensions only
        same_name = recorded.name.lower().rsplit("/", 1)[-1] == current.name.lower().rsplit("/", 1)[-1]
        return same_name and recorded.dimensions == current.dimensions
    return recorded == current


class DocIndex:
    """The parts of the document index, opened together from the settings."""

    def __init__(self, settings: Settings, home: Path | None = None) -> None:
        self.settings = settings
        self.home = Path(home) if home is not None else settings.home
        self.catalog = Catalog(self.home / "docs.db")
        self.scans = ScanStore(self.home / "docs.db")  # the excerpts' personal-data findings (kit.documents.scans)
        self._vectors: VectorIndex | None = None
        self._embedder: Embedder | None = None
        self._lexicon: Lexicon | None = None
        # the parts open on first use, once: concurrent first requests must not open two Chroma clients on one
        # store (they break each other) or load the model twice
        self._opening = threading.RLock()
        self.synonyms = load_synonyms(synonyms_path(self.home, settings.rag.synonyms_file))

    @property
    def vectors(self) -> VectorIndex:
        with self._opening:
            if self._vectors is None:
                rag = self.settings.rag
                path = Path(rag.chroma_path).expanduser() if rag.chroma_path else self.home / "chroma"
                self._vectors = VectorIndex(None if rag.chroma_url else path, rag.chroma_url)
            return self._vectors

    @property
    def embedder(self) -> Embedder:
        """The configured embedder (not checked against the index: see :meth:`check_embedder`)."""
        with self._opening:
            if self._embedder is None:
                rag = self.settings.rag
                self._embedder = get_embedder(rag.embedding_model, self.home, rag.embedding_threads or None,
                                              self.settings.models.catalog)
            return self._embedder

    @property
    def embedder_entry(self) -> EmbedderEntry | None:
        """The catalogue entry of the configured embedder (None: a site's own folder)."""
        return find_embedder(self.settings.rag.embedding_model, self.settings.models.catalog)

    @property
    def relevance_margin(self) -> float:
        """How much closer than the average chunk of its language an answering passage is (catalogue entry)."""
        entry = self.embedder_entry
        return entry.relevance_margin if entry else DEFAULT_MARGIN

    @property
    def space(self) -> str:
        return space_of(self.embedder.identity)

    @property
    def lexicon(self) -> Lexicon:
        with self._opening:
            if self._lexicon is None:
                self._lexicon = Lexicon(self.catalog.path, self.space)
            return self._lexicon

    def recorded(self, collection: str) -> Identity | None:
        """The embedder that made the vectors of ``collection`` (None: nothing recorded)."""
        value = self.catalog.meta(f"embedder:{collection}")
        if value is not None:
            data = json.loads(value)
            return Identity(data["name"], int(data["dimensions"]), data["fingerprint"])
        legacy = self.catalog.meta(LEGACY_KEY)
        if legacy is not None:
            name, _, dims = legacy.partition("|")
            return Identity(name, int(dims or 0), "")
        return None

    def record(self, collection: str, identity: Identity) -> None:
        self.catalog.set_meta(f"embedder:{collection}", json.dumps(
            {"name": identity.name, "dimensions": identity.dimensions, "fingerprint": identity.fingerprint}))

    def check_embedder(self, collections: Sequence[str] | None = None, *, writing: bool = False) -> Embedder:
        """The configured embedder, once sure it made the vectors of ``collections`` (None: every collection
        holding documents). ``writing``: an empty collection records it."""
        embedder = self.embedder
        current = embedder.identity
        holding = self.catalog.stats()["collections"]
        for collection in (list(holding) if collections is None else collections):
            recorded = self.recorded(collection)
            if collection not in holding:
                if writing and (recorded is None or not _same(recorded, current)):
                    self.record(collection, current)
                continue
            if recorded is None:
                self.record(collection, current)
            elif not _same(recorded, current):
                raise EmbedderMismatchError(
                    f"The documents of the collection {collection!r} were embedded with {recorded.label()}, and "
                    f"rag.embedding_model is now {current.label()}: their vectors cannot be compared. Run "
                    f"`kit docs reindex --collection {collection}` (or `kit docs reindex` for every collection), "
                    f"or set rag.embedding_model back to {recorded.name!r}. / Les documents de la collection "
                    f"{collection!r} ont été indexés avec {recorded.name} et le modèle configuré est "
                    f"{current.name} : lancez `kit docs reindex`.")
        return embedder

    @contextmanager
    def writing(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """Exclusive right to change the index, across processes on this machine."""
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "docs.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise IndexStoreError(
                            f"Another ingest, removal or reindex has held {self.home / 'docs.lock'} for "
                            f"{wait_s:.0f} s; wait for it to finish and try again.") from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._lexicon is not None:
            self._lexicon.close()
        self.scans.close()
        self.catalog.close()


def open_index(settings: Settings, home: Path | None = None) -> DocIndex:
    """The document index of ``settings`` under ``home`` (default: ``settings.home``, i.e. ``$KIT_HOME``)."""
    return DocIndex(settings, home)
