"""Writing and reading benchmark results: every run is one JSON file with its machine description.

A result file is ``{"benchmark": KIND, "schema": 1, "machine": {...}, "config": {...}, ...}``; the
report finds files by their ``benchmark`` key, so file names are free (timestamped by default, so
that repeated runs are all kept).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from kit.files import atomic_write_text

SCHEMA = 1
# Progress callbacks: (what is running, done, total).
Progress = Callable[[str, int, int], None]


def data_dir() -> Path:
    """The folder of the shipped benchmark data (prompts, evaluation texts, question-answer set)."""
    import benchmarks

    return Path(next(iter(benchmarks.__path__))) / "data"


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths and enums as plain JSON values (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("internal")}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def default_name(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_result(kind: str, payload: Any, out: Path, machine: dict[str, Any] | None = None) -> Path:
    """Write one result file; ``out`` is a file, or a folder that receives ``KIND-<time>.json``."""
    path = out / default_name(kind) if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    body = to_jsonable(payload)
    data: dict[str, Any] = {"benchmark": kind, "schema": SCHEMA}
    if machine is not None:
        data["machine"] = machine
    if isinstance(body, dict):
        data.update({k: v for k, v in body.items() if k not in ("benchmark", "schema")})
    else:
        data["results"] = body
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def read_results(directory: Path) -> tuple[dict[str, list[tuple[Path, dict[str, Any]]]], list[str]]:
    """Result files under ``directory`` grouped by kind (oldest first), and notes on files skipped."""
    found: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    skipped: list[str] = []
    for path in sorted(directory.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append(f"{path.name}: not readable JSON ({exc})")
            continue
        if not isinstance(data, dict):
            skipped.append(f"{path.name}: not a result object")
            continue
        kind = data.get("benchmark")
        if not isinstance(kind, str):
            kind = "rag" if path.stem.startswith("rag") else ""
        if not kind:
            skipped.append(f"{path.name}: no 'benchmark' key (written by an older script)")
            continue
        found.setdefault(kind, []).append((path, data))
    return found, skipped
