"""Small file helpers used by every part of kit: atomic writes, hashing, free-space checks, verified copies.

Imports nothing of kit but ``kit.errors``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.errors import DiskFullError, IntegrityError

Progress = Callable[[int, int], None]


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


def create_private(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 (created empty when missing), without ever opening an
    existing file: closing any descriptor of a SQLite database drops every POSIX lock this process
    holds on it, after which another process may take the database for unused and remove its
    write-ahead files under a live writer ("disk I/O error")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    except FileExistsError:
        pass
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def bench_report_files(home: Path) -> tuple[Path, Path]:
    """Where `kit bench report` publishes its latest page and Markdown summary, for the browser chat's
    admin tab (through ``GET /v1/admin/bench``) and for `kit report`."""
    folder = home / "reports"
    return folder / "bench-report.html", folder / "bench-summary.md"


def published_bench(home: Path) -> dict[str, Any] | None:
    """The latest published benchmark report: ``{"generated_at", "summary" (Markdown), "html" (its path, or
    None)}``; None when `kit bench report` has published none."""
    html, md = bench_report_files(home)
    if not md.exists():
        return None
    when = datetime.fromtimestamp(md.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return {"generated_at": when, "summary": md.read_text(encoding="utf-8"), "html": html if html.exists() else None}


def running_file(home: Path, service: str) -> Path:
    """Where a running service (``api`` for `kit serve`, ``ui`` for `kit ui`) notes the address it serves."""
    return home / "run" / f"{service}.json"


def note_running(home: Path, service: str, **facts: Any) -> Path:
    """Record that ``service`` serves now from this process (its pid, start time and ``facts``: host, port...);
    `kit report` states what really runs from it. Give the path to ``forget_running`` when the service stops."""
    import json

    path = running_file(home, service)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"), **facts}
    atomic_write_text(path, json.dumps(record, sort_keys=True))
    return path


def forget_running(path: Path) -> None:
    """Remove a record ``note_running`` wrote, if this process wrote it (a newer service keeps its own)."""
    import json

    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running(home: Path, service: str) -> dict[str, Any] | None:
    """What a running ``service`` noted (``note_running``); None when none was noted or its process is gone."""
    import json

    try:
        record = json.loads(running_file(home, service).read_text(encoding="utf-8"))
        pid = int(record["pid"])
        os.kill(pid, 0)
    except PermissionError:  # alive, run by another account
        return dict(record)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(record) if isinstance(record, dict) else None
