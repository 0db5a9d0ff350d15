"""Reference servers started as subprocesses on 127.0.0.1, for the serving benchmark.

- llama.cpp's own ``llama-server`` (built by ``scripts/build-reference.sh`` from the llama.cpp of the
  installed llama-cpp-python), with as many slots as the highest concurrency;
- llama-cpp-python's packaged ``python -m llama_cpp.server``, as shipped (``interrupt_requests`` on:
  a new request cuts off the stream in progress) and with ``interrupt_requests`` off;
- kit's own gateway (``kit serve``) on a model file, in a temporary ``KIT_HOME``.

All get the same model file, threads and context per sequence. Each is a context manager that
yields a ``Target`` once the server answers ``/health`` or ``/v1/models``, and stops it after.
Server logs go to a temporary file named in the error when a server does not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kit.bench.serving import Target
from kit.errors import ServerStartError, UsageError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], paths: tuple[str, ...] = ("/health", "/v1/models"),
               timeout: float = 300, log: Path | None = None, headers: dict[str, str] | None = None) -> None:
    """Poll until one of ``paths`` answers 200; raise with the log's tail if the process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"the server for {url} exited with code {proc.returncode}{_tail(log)}")
        for path in paths:
            try:
                if httpx.get(url + path, timeout=2, headers=headers or {}).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    raise ServerStartError(f"{url} did not become ready in {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.is_file():
        return ""
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
    return f" (log {log}):\n  " + "\n  ".join(lines) if lines else f" (log {log} is empty)"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def running(argv: list[str], name: str, port: int, env: dict[str, str],
            headers: dict[str, str] | None = None) -> contextlib.AbstractContextManager[Target]:
    """A server started for a moment (``argv`` listening on ``port``), stopped when the block ends."""
    return _process(argv, name, port, ("/health",), env=env, headers=headers)


@contextlib.contextmanager
def _process(argv: list[str], name: str, port: int, paths: tuple[str, ...], env: dict[str, str] | None = None,
             timeout: float = 300, note: str = "", headers: dict[str, str] | None = None) -> Iterator[Target]:
    log = Path(tempfile.mkstemp(prefix=f"kit-bench-{name.replace('/', '_')}-", suffix=".log")[1])
    with log.open("wb") as fh:
        try:
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ServerStartError(f"cannot start {argv[0]}: {exc}") from None
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, paths, timeout, log, headers)
            yield Target(name=name, url=url, note=note, headers=dict(headers or {}), pid=proc.pid)
        finally:
            stop(proc)
            kept = os.environ.get("KIT_BENCH_LOGS")  # a folder that keeps each started server's log
            if kept:
                Path(kept).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, Path(kept) / log.name)
    log.unlink(missing_ok=True)


def find_llama_server() -> Path | None:
    """llama-server built by scripts/build-reference.sh for the installed llama-cpp-python, or on PATH."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("llama_cpp_python")
    except PackageNotFoundError:
        ver = ""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kit"
    for flavour in ("cuda", "cpu"):
        candidate = cache / f"llama.cpp-{ver}-{flavour}" / "bin" / "llama-server"
        if ver and candidate.is_file():
            return candidate
    found = shutil.which("llama-server")
    return Path(found) if found else None


def find_llama_perplexity() -> Path | None:
    server = find_llama_server()
    if server is not None and (server.parent / "llama-perplexity").is_file():
        return server.parent / "llama-perplexity"
    found = shutil.which("llama-perplexity")
    return Path(found) if found else None


def _check_model(model: Path) -> None:
    if not model.is_file():
        raise UsageError(f"{model} does not exist: give a GGUF file with --model.")


@contextlib.contextmanager
def llama_server(binary: Path, model: Path, threads: int, slots: int, ctx: int, gpu_layers: int = 0,
                 name: str = "llama-server", args: tuple[str, ...] = (),
                 ready: Callable[[Target], None] | None = None) -> Iterator[Target]:
    """llama.cpp's C++ server: ``slots`` sequences (``-np``), ``ctx`` tokens each (``-c`` = ctx x slots), and
    ``args`` (e.g. ``--cache-reuse 256``); ``ready`` is called with the target once it answers."""
    _check_model(model)
    if not binary.is_file():
        raise UsageError(f"{binary} does not exist: build it with scripts/build-reference.sh.")
    port = free_port()
    argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
            "-tb", str(threads), "-np", str(slots), "-c", str(ctx * slots), "-ngl", str(gpu_layers), *args]
    note = " ".join(["llama.cpp llama-server -np", str(slots), *args])
    with _process(argv, name, port, ("/health",), note=note) as target:
        if ready:
            ready(target)
        yield target


@contextlib.contextmanager
def llama_cpp_server(model: Path, threads: int, ctx: int, interrupt_requests: bool = True,
                     gpu_layers: int = 0, name: str | None = None) -> Iterator[Target]:
    """llama-cpp-python's packaged server (one sequence), with ``interrupt_requests`` as given."""
    _check_model(model)
    port = free_port()
    name = name or ("llama_cpp.server" if interrupt_requests else "llama_cpp.server-no-interrupt")
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_ctx", str(ctx), "--n_gpu_layers", str(gpu_layers),
            "--interrupt_requests", "True" if interrupt_requests else "False"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    note = ("llama-cpp-python server as shipped (interrupt_requests on)" if interrupt_requests
            else "llama-cpp-python server, interrupt_requests off")
    with _process(argv, name, port, ("/v1/models",), env=env, note=note) as target:
        yield target


# The benchmark's one client stands for many users: kit's abuse limits (30 requests a minute and 8 at
# once per user by default) would refuse most of its requests, so the started gateway has none.
NO_LIMITS = {"requests_per_minute": 0, "lookups_per_minute": 0, "tokens_per_minute": 0, "tokens_per_day": 0,
             "concurrent": 0}


@contextlib.contextmanager
def kit_server(model: Path, threads: int, parallel: int, ctx: int, config: dict[str, Any] | None = None,
               gpu_layers: int = 0, name: str = "kit", user: str = "bench",
               command: str = "serve", env: dict[str, str] | None = None,
               prepare: Callable[[dict[str, str]], None] | None = None,
               ready: Callable[[Target], None] | None = None) -> Iterator[Target]:
    """kit on ``model`` in a temporary KIT_HOME: the gateway (``command="serve"``, every usage rule on but
    the abuse limits; the bench user acknowledges the charter first) or the bare engine (``"engine"``,
    `kit engine`, the raw OpenAI API that gateways put in a pool).

    ``config`` is merged into the generated kit.yaml (for example to change the personal-data policy);
    ``env`` is added to the server's environment (for example llama.cpp's or OpenMP's thread settings).
    ``prepare`` is called with that environment (``KIT_HOME`` and ``KIT_CONFIG`` set) before the server starts
    (to ingest documents, say), ``ready`` with the target once it answers and the charter is acknowledged.
    """
    import yaml

    from kit.files import sha256_file
    from kit.models.lock import LockEntry, write_lock_entry

    _check_model(model)
    tmp = Path(tempfile.mkdtemp(prefix="kit-bench-home-"))
    try:
        home = tmp / "home"
        (home / "models" / "bench").mkdir(parents=True)
        (home / "models" / "bench" / model.name).symlink_to(model.resolve())
        write_lock_entry(home, LockEntry(name="bench", file=f"bench/{model.name}", sha256=sha256_file(model),
                                         size=model.stat().st_size, source={"kind": "local", "path": str(model)},
                                         quant="", licence=""))
        data: dict[str, Any] = {"deployment": {"purpose": "benchmark"}, "models": {"default": "bench"},
                                "limits": {"user": dict(NO_LIMITS), "admin": dict(NO_LIMITS)}}
        for section, values in (config or {}).items():
            if isinstance(values, dict):
                data.setdefault(section, {}).update(values)
            else:
                data[section] = values
        cfg = tmp / "kit.yaml"
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        port = free_port()
        environ = {**os.environ, **(env or {}), "KIT_HOME": str(home), "KIT_CONFIG": str(cfg)}
        if prepare:
            prepare(environ)
        argv = [sys.executable, "-m", "kit.cli", command, "--port", str(port),
                "--parallel", str(parallel), "--ctx", str(ctx), "--threads", str(threads),
                "--gpu-layers", str(gpu_layers)]
        headers = {"X-Kit-User": user} if command == "serve" else {}
        note = f"kit {command} --parallel {parallel}"
        if data.get("policy", {}).get("pii_detection") is False:
            note += "; personal-data scan off (policy.pii_detection: false)"
        if env:
            note += "; environment " + " ".join(f"{k}={v}" for k, v in env.items())
        with _process(argv, name, port, ("/health",), env=environ, note=note,
                      headers=headers) as target:
            if command == "serve":
                acknowledge(target.url, headers, cfg)
            if ready:
                ready(target)
            yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def acknowledge(url: str, headers: dict[str, str], cfg: Path) -> None:
    import httpx

    from kit.config import load_settings

    charter = httpx.get(url + "/v1/charter", headers=headers, timeout=30).json()
    answers = [q.answer for q in load_settings(cfg).policy.quiz]
    r = httpx.post(url + "/v1/charter/acknowledge", headers=headers, timeout=30,
                   json={"version": charter["version"], "quiz_answers": answers})
    if r.status_code >= 400:
        raise ServerStartError(f"kit's charter acknowledgement failed: HTTP {r.status_code} {r.text[:200]}")
