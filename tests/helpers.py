"""What the tests share besides fixtures: the configuration they write, running `kit`, serving a gateway on
127.0.0.1 in a thread (real engine or none), throwaway Redis, `kit engine` processes. Fixtures live in
conftest.py; tests import these by name (``from helpers import start_server``)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
KIT = str(VENV_BIN / "kit")
PURPOSE = "Aider les agents à rédiger et résumer des textes de travail non sensibles."


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    data: dict[str, Any] = {"deployment": {"organisation": "Test org", "purpose": PURPOSE,
                                           "contacts": {"dpo": "dpo@example.org", "ciso": "rssi@example.org",
                                                        "business_owner": "Direction"}}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def install_model(model_store: Path, home: Path) -> Path:
    """Make the session's installed model available in `home` (symlinked file, copied lock)."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    for item in (model_store / "models").iterdir():
        target = home / "models" / item.name
        if not target.exists():
            target.symlink_to(item, target_is_directory=True)
    shutil.copy(model_store / "models.lock", home / "models.lock")
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[Any], log: Path, what: str, timeout: float = 180) -> None:
    """Wait until a started process answers 200 on /health; fail with the end of its log if it exits or
    does not answer in time."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what} did not answer /health in {timeout:.0f} s: {log.read_text()[-2000:]}")


def run_kit(*args: str, input: str | None = None, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KIT, *args], capture_output=True, text=True, input=input, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


class ServerHandle:
    """A running gateway; requests go as a front end (its service key) speaking for a user, as the browser
    chat does. A role other than user is granted to that user in the user store first."""

    def __init__(self, url: str, app: Any, engine: Any, state: Any, settings: Any,
                 service_key: str | None = None) -> None:
        self.url, self.app, self.engine, self.state, self.settings = url, app, engine, state, settings
        self.service_key = service_key

    def headers(self, user: str | None = "alice", role: str = "user") -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.service_key}"} if self.service_key else {}
        if user is None:
            return out
        if role != "user" and self.service_key:
            from kit.storage.users import add_user, get_role, set_role

            if get_role(self.settings.home, user) is None:
                add_user(self.settings.home, user, role, secrets.token_urlsafe(16))
            elif get_role(self.settings.home, user) != role:
                set_role(self.settings.home, user, role)
        return {**out, "X-Kit-User": user, "X-Kit-Role": role}

    def acknowledge(self, user: str = "alice", role: str = "user") -> None:
        import httpx

        charter = httpx.get(self.url + "/v1/charter", headers=self.headers(user, role)).json()
        answers = [self.settings.policy.quiz[i].answer for i in range(len(charter["quiz"]))]
        r = httpx.post(self.url + "/v1/charter/acknowledge", headers=self.headers(user, role),
                       json={"version": charter["version"], "quiz_answers": answers})
        r.raise_for_status()


def serve_app(app: Any, timeout: float = 60, engine: Any = None) -> tuple[str, Callable[[], None]]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread: its URL and a stop function
    (``engine``: the in-process engine that new connections are announced to, as `kit serve` does)."""
    import uvicorn

    port = free_port()
    from kit.gateway.local import http_protocol

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           http=http_protocol(engine)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started and time.time() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    return f"http://127.0.0.1:{port}", stop


def start_server(home: Path, config: Path, parallel: int = 4, ctx: int = 1024, service_key: bool = True,
                 **overrides: dict[str, Any]) -> tuple[ServerHandle, Any]:
    """A real gateway with the real engine, served by uvicorn on 127.0.0.1 in a thread; with a service key
    for the tests' requests (as the browser chat has), unless service_key is false."""
    from kit.config import load_settings
    from kit.gateway.app import create_app
    from kit.models.runtime import load_engine
    from kit.storage.state import open_state

    os.environ["KIT_HOME"] = str(home)
    write_config(config, server={"parallel": parallel, "ctx": ctx, **overrides.pop("server", {})}, **overrides)
    settings = load_settings(config)
    state = open_state(settings)
    engine = load_engine(settings)
    app = create_app(settings, engine, state)
    from kit.rules.privacy import get_detector

    get_detector().scan("warm-up")  # as `kit serve` does: the personal-data models load before the first request
    url, stop_http = serve_app(app, engine=engine)
    key = None
    if service_key:
        from kit.storage.keys import create_key

        key, _ = create_key(settings, "test-front-end", "service", acknowledge=False)
    handle = ServerHandle(url, app, engine, state, settings, key)

    def stop() -> None:
        stop_http()
        engine.close()
        state.close()

    return handle, stop


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    from kit import sse

    yield from sse.events(lines)


@contextlib.contextmanager
def redis_running(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """redis-server on a free loopback port, answering, nothing saved to disk; stopped after."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); the shared-counter "
                    "tests need a throwaway one")
    pytest.importorskip("redis", reason="the Redis client is not installed: pip install 'kit[redis]'")
    import redis

    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.time() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


class EngineProcess:
    def __init__(self, name: str, home: Path, config: Path, log: Path) -> None:
        self.name, self.home, self.config, self.log = name, home, config, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KIT_HOME": str(self.home), "KIT_CONFIG": str(self.config)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([KIT, "engine", "--port", str(self.port), "--name", self.name,
                                          "--parallel", "2", "--ctx", "1024", "--threads", "1"],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_healthy(self.url, self.proc, self.log, f"kit engine {self.name}")

    def metrics(self) -> dict[str, float]:
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=10).text
        return {m[0]: float(m[1]) for m in re.findall(r"^kit_engine_(\w+)\{[^}]*\} (\S+)$", text, re.M)}

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
