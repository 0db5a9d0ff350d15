"""Helpers shared by the command modules: the settings, JSON output, a progress printer."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def current_settings() -> Any:
    """The effective configuration (kit.yaml plus environment)."""
    from kit.config import load_settings

    return load_settings()


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def progress_printer() -> Any:
    """A progress callback printing every 10 % on stderr (only the end when stderr is not a terminal)."""
    last = {"pct": -1}

    def show(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct // 10 != last["pct"] // 10 and sys.stderr.isatty() or pct == 100 and last["pct"] != 100:
            click.echo(f"  {pct:3d}% of {total / 2**20:.0f} MiB", err=True)
        last["pct"] = pct

    return show


def apply_server_options(settings: Any, model: str | None = None, **options: Any) -> None:
    """Command-line options of `kit serve` and `kit engine` over the configuration: the model, and each
    ``server.<name>`` option given (None: keep the configuration's)."""
    for key, value in options.items():
        if value is not None:
            setattr(settings.server, key, value)
    if model:
        settings.models.default = model
