"""`kit ui`: the browser chat, in front of a running gateway (started by `kit serve` or `kit up`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click

from kit.errors import ConfigError, UsageError

UI_KEY_FILE = "ui-service.key"


def ui_settings() -> Any:
    from kit.config import load_settings

    return load_settings()


def _gateway_url(settings: Any) -> str:
    if settings.ui.server_url:
        return str(settings.ui.server_url).rstrip("/")
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def _service_key(settings: Any, gateway_url: str) -> str | None:
    """The key the UI presents to the gateway: $KIT_UI_API_KEY, ui.service_key_file, else
    $KIT_HOME/ui-service.key, created there (role service) for a gateway on this machine."""
    from kit.config import is_loopback_url
    from kit.storage.keys import create_key, find_key, list_keys, revoke_key

    env = os.environ.get("KIT_UI_API_KEY", "").strip()
    if env:
        return env
    if settings.ui.service_key_file:
        given = Path(settings.ui.service_key_file)
        try:
            key = given.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"ui.service_key_file {given} cannot be read ({exc.strerror}): create the key with "
                              "`kit keys create kit-ui --role service --no-acknowledge` and write it there.") from None
        if not key:
            raise ConfigError(f"ui.service_key_file {given} is empty: write the chat's service key in it.")
        return key
    path = Path(settings.home) / UI_KEY_FILE
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key and find_key(list_keys(settings), key) is not None:
            return key
    if not is_loopback_url(gateway_url):
        raise ConfigError(
            f"the gateway {gateway_url} needs an API key: create one there with `kit keys create ui --role service "
            f"--no-acknowledge` and give it to the UI in KIT_UI_API_KEY or {path}."
        )
    # The gateway honours identity headers only from a service key, loopback included: make one, and make
    # sure a key written earlier under the same name stops working.
    if any(k.name == "ui" for k in list_keys(settings)):
        revoke_key(settings, "ui")
    key, _ = create_key(settings, "ui", "service", acknowledge=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    click.echo(f"created the service key 'ui' for the browser chat (kept in {path}).", err=True)
    return key


def probe(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(url + "/health", timeout=timeout, trust_env=False)
        return {"status_code": r.status_code, **(r.json() if r.content else {})}
    except (httpx.HTTPError, ValueError):
        return None


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def serve_ui(settings: Any, url: str, host: str | None, port: int | None) -> None:
    from kit.files import forget_running, note_running
    from ui.app import launch_ui

    host = host or settings.ui.host
    port = port or settings.ui.port
    settings.check_ui(host)
    if not port_free(host, port):
        raise UsageError(f"port {port} on {host} is in use: pass --port or set ui.port.")
    key = _service_key(settings, url)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"browser chat on http://{shown}:{port} (gateway {url}, sign-in: {settings.ui.auth}); Ctrl+C stops it.",
        err=True,
    )
    noted = note_running(settings.home, "ui", host=host, port=port, auth=settings.ui.auth, gateway=url)
    try:
        launch_ui(settings, url, host=host, port=port, api_key=key, quiet=True)
    finally:
        forget_running(noted)


@click.command("ui")
@click.option("--host", default=None, help="Bind address (default: ui.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (default: ui.port, 7860).")
@click.option("--server-url", default=None, help="Gateway API (default: ui.server_url, else this machine's server).")
def ui_command(host: str | None, port: int | None, server_url: str | None) -> None:
    """Serve the browser chat, a client of a running gateway (`kit serve`)."""
    settings = ui_settings()
    settings.require_purpose()
    url = (server_url or _gateway_url(settings)).rstrip("/")
    if probe(url) is None:
        click.echo(
            f"warning: the gateway {url} does not answer yet (start it with `kit serve`); "
            "the page says so until it does.",
            err=True,
        )
    serve_ui(settings, url, host, port)


def register(cli: click.Group) -> None:
    """Add `ui` to the kit command line."""
    cli.add_command(ui_command)
