"""Open the document index: the SQLite catalogue, the Chroma vectors and the embedding model.

:func:`open_index` is cheap: Chroma and the embedding model are opened on first use, so listing
documents never loads torch. Writers (ingest, remove) hold an exclusive lock on
``$KIT_HOME/docs.lock`` (released by the system if the process dies, even by ``kill -9``);
searches take no lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kit.config import Settings
from kit.documents.embed import Embedder, get_embedder
from kit.documents.glossary import load_extra
from kit.documents.store import Catalog
from kit.documents.vectors import VectorIndex
from kit.errors import IndexStoreError

LOCK_WAIT_S = 120.0


class DocIndex:
    """The parts of the document index, opened together from the settings."""

    def __init__(self, settings: Settings, home: Path | None = None) -> None:
        self.settings = settings
        self.home = Path(home) if home is not None else settings.home
        self.catalog = Catalog(self.home / "docs.db")
        self._vectors: VectorIndex | None = None
        self._embedder: Embedder | None = None
        self.glossary = load_extra(self.home)

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            rag = self.settings.rag
            path = Path(rag.chroma_path).expanduser() if rag.chroma_path else self.home / "chroma"
            self._vectors = VectorIndex(None if rag.chroma_url else path, rag.chroma_url)
        return self._vectors

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            rag = self.settings.rag
            embedder = get_embedder(rag.embedding_model, self.home, rag.embedding_threads or None)
            self._check_model(embedder)
            self._embedder = embedder
        return self._embedder

    def _check_model(self, embedder: Embedder) -> None:
        """Vectors of two models cannot be compared: refuse a model change over an existing index."""
        recorded = self.catalog.meta("embedding_model")
        current = f"{embedder.name}|{embedder.dimension}"
        if recorded is None:
            self.catalog.set_meta("embedding_model", current)
        elif recorded != current and self.catalog.documents(ready_only=False):
            name = recorded.split("|")[0]
            raise IndexStoreError(
                f"The document index was built with the embedding model {name!r}, and rag.embedding_model is now "
                f"{embedder.name!r}. Set it back, or remove every document (`kit docs remove`) and ingest them again.")
        elif recorded != current:
            self.catalog.set_meta("embedding_model", current)

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
                            f"Another ingest or removal has held {self.home / 'docs.lock'} for {wait_s:.0f} s; "
                            "wait for it to finish and try again.") from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        self.catalog.close()


def open_index(settings: Settings, home: Path | None = None) -> DocIndex:
    """The document index of ``settings`` under ``home`` (default: ``settings.home``, i.e. ``$KIT_HOME``)."""
    return DocIndex(settings, home)
