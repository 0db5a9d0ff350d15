"""The Chroma side of the document index: chunk vectors with their metadata.

Embedded by default (``chromadb.PersistentClient`` under ``rag.chroma_path`` or
``$KIT_HOME/chroma``); a Chroma server when ``rag.chroma_url`` is set (``chromadb.HttpClient``).
Telemetry is off in both. Collections have no embedding function: vectors are computed by
:mod:`kit.documents.embed` and passed in, so Chroma never loads or downloads a model.

Need-to-know is built into the layout: there is one Chroma collection (a *partition*) per kit
collection and group, and a chunk is written to the partition of each of its document's groups. A
search queries only the partitions of the caller's groups (and the public ones), so another
group's vectors are never even compared. This also keeps searches fast: Chroma's metadata filter
(``where``) costs 100–250 ms over 10k chunks on a small machine, a plain nearest-neighbour query
about 20 ms. The ``where`` filter is used only to exclude generations that are not ready, while an
ingest is running or after one was interrupted.

Each chunk's metadata holds its document id, generation, collection, source, page, heading, chunk
index, file sha256, ingest time and one ``group:<name>`` key per group.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kit.errors import IndexStoreError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

GROUP_PREFIX = "group:"


@dataclass
class VectorHit:
    doc_id: str
    chunk_index: int
    similarity: float
    metadata: dict[str, Any]


def partition(collection: str, group: str, space: str = "") -> str:
    """Name of the Chroma collection holding the chunks of one kit collection visible to one group, embedded
    by the embedder of ``space`` (see :func:`kit.documents.index.space_of`; "" in indexes written before)."""
    key = f"{collection}\n{group}" + (f"\n{space}" if space else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"kit-docs-{digest}"


def chunk_id(generation: str, index: int) -> str:
    """Chroma id of chunk ``index`` of a generation (the same in every partition holding it)."""
    return f"{generation}-{index}"


def _client(path: Path | None, url: str | None) -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
    except ImportError as exc:
        raise IndexStoreError("chromadb is not installed: pip install 'kit[rag]'") from exc
    settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IndexStoreError(f"rag.chroma_url {url!r} is not an http(s) URL such as http://chroma:8000.")
        try:
            default_port = 443 if parts.scheme == "https" else 8000
            return chromadb.HttpClient(host=parts.hostname, port=parts.port or default_port,
                                       ssl=parts.scheme == "https", settings=settings)
        except (ValueError, ConnectionError, OSError) as exc:
            raise IndexStoreError(f"Cannot reach the Chroma server at {url}: {exc}. Check that it runs and that "
                                  "rag.chroma_url is right.") from exc
    if path is None:
        raise IndexStoreError("No Chroma location: set rag.chroma_path or rag.chroma_url.")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class VectorIndex:
    """The partitions (Chroma collections) holding the chunk vectors."""

    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        self.location = url or str(path)
        self._client = _client(path, url)
        self._collections: dict[str, Any] = {}
        self._sums: dict[str, tuple[int, dict[str, tuple[Any, int]]]] = {}
        max_batch = getattr(self._client, "get_max_batch_size", None)
        self._batch = min(int(max_batch()), 5000) if callable(max_batch) else 1000

    def _collection(self, name: str) -> Any:
        if name not in self._collections:
            try:
                self._collections[name] = self._client.get_or_create_collection(
                    name=name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
            except Exception as exc:  # chromadb raises its own types for server and storage errors
                raise IndexStoreError(f"Cannot open the Chroma collection {name} at {self.location}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        return self._collections[name]

    def add(self, partitions: Sequence[str], ids: list[str], vectors: npt.NDArray[np.float32],
            metadatas: list[dict[str, Any]], documents: list[str]) -> None:
        """Write the chunks to every partition given (one per group of their document)."""
        for name in partitions:
            collection = self._collection(name)
            for start in range(0, len(ids), self._batch):
                end = start + self._batch
                collection.add(ids=ids[start:end], embeddings=vectors[start:end], metadatas=metadatas[start:end],
                               documents=documents[start:end])

    def query(self, vector: npt.NDArray[np.float32], limit: int, partitions: Sequence[str],
              hidden: Sequence[str] = ()) -> list[VectorHit]:
        """Nearest chunks in ``partitions`` only, excluding the ``hidden`` generations; best first."""
        where = {"generation": {"$nin": list(hidden)}} if hidden else None
        best: dict[str, VectorHit] = {}
        for name in partitions:
            result = self._collection(name).query(query_embeddings=[vector], n_results=limit, where=where,
                                                  include=["metadatas", "distances"])
            for cid, metadata, distance in zip(result["ids"][0], result["metadatas"][0], result["distances"][0],
                                               strict=True):
                hit = VectorHit(str(metadata["doc_id"]), int(metadata["chunk"]), 1.0 - float(distance),
                                dict(metadata))
                if cid not in best or best[cid].similarity < hit.similarity:
                    best[cid] = hit
        return sorted(best.values(), key=lambda h: -h.similarity)[:limit]

    def vectors(self, ids: Sequence[str], partitions: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of chunks ``ids``, looked up in ``partitions`` in turn until all are found."""
        import numpy as np

        found: dict[str, npt.NDArray[np.float32]] = {}
        for name in partitions:
            missing = [i for i in ids if i not in found]
            if not missing:
                break
            result = self._collection(name).get(ids=missing, include=["embeddings"])
            for cid, vector in zip(result["ids"], result["embeddings"], strict=True):
                found[cid] = np.asarray(vector, dtype=np.float32)
        return found

    def centroids(self, partitions: Sequence[str]) -> dict[str, tuple[npt.NDArray[np.float32], int]]:
        """Per language of the chunks ("fr", "en", "?"), the sum of their vectors in ``partitions`` and their
        number: the background a question's cosines are measured from (see kit.documents.retrieve). Each
        partition's sums are computed once and kept while its chunk count stays the same."""
        import numpy as np

        from kit.documents.text import guess_language

        total: dict[str, tuple[npt.NDArray[np.float32], int]] = {}
        for name in partitions:
            collection = self._collection(name)
            count = int(collection.count())
            cached = self._sums.get(name)
            if cached is None or cached[0] != count:
                sums: dict[str, tuple[npt.NDArray[np.float32], int]] = {}
                for start in range(0, count, self._batch):
                    got = collection.get(include=["embeddings", "documents"], limit=self._batch, offset=start)
                    for vector, text in zip(got["embeddings"], got["documents"], strict=True):
                        lang = guess_language(text or "") or "?"
                        acc, n = sums.get(lang, (np.zeros(len(vector), dtype=np.float32), 0))
                        sums[lang] = (acc + np.asarray(vector, dtype=np.float32), n + 1)
                cached = (count, sums)
                self._sums[name] = cached
            for lang, (acc, n) in cached[1].items():
                have, m = total.get(lang, (np.zeros_like(acc), 0))
                total[lang] = (have + acc, m + n)
        return total

    def delete_generation(self, generation: str, partitions: Sequence[str]) -> None:
        for name in partitions:
            self._collection(name).delete(where={"generation": generation})

    def drop(self, partitions: Sequence[str]) -> None:
        """Delete whole partitions (those no generation uses any more)."""
        for name in partitions:
            self._collections.pop(name, None)
            try:
                self._client.delete_collection(name)
            except Exception:  # noqa: BLE001 - already gone, or never created: nothing to delete
                continue

    def count(self, partitions: Sequence[str]) -> int:
        """Chunk vectors stored in these partitions (a chunk of a two-group document counts twice)."""
        return sum(int(self._collection(name).count()) for name in partitions)
