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


def ask_gateway(settings: Any, path: str, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any] | None:
    """``POST path`` to this machine's running gateway (``server.port`` on loopback), whose models are loaded
    already: a command answers in a fraction of a second instead of loading them. The key in ``$KIT_API_KEY`` is
    sent where there is one. None when no gateway answers, or it refuses or fails: the caller then does the work
    itself. A gateway bound to another address than loopback or every address is not asked."""
    import os

    import httpx

    from kit.config import is_loopback_host

    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if not is_loopback_host(host):
        return None
    url = f"http://[{host}]:{settings.server.port}" if ":" in host else f"http://{host}:{settings.server.port}"
    key = os.environ.get("KIT_API_KEY", "").strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=0.5), trust_env=False) as client:
            r = client.post(url + path, json=body, headers=headers)
        data = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None
