"""Shared fixtures. Every test gets its own $KIT_HOME and configuration under a temporary folder;
caches and hub settings point there too, so tests never touch the user's data or the network.
The functions the tests share are in helpers.py."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ServerHandle, free_port, install_model, redis_running, start_server, write_config


@pytest.fixture(autouse=True)
def kit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kit-home"
    home.mkdir()
    monkeypatch.setenv("KIT_HOME", str(home))
    monkeypatch.setenv("KIT_CONFIG", str(write_config(tmp_path / "kit.yaml")))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # key files when no config file is in force
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    for name in list(os.environ):
        if name.startswith("KIT_") and "__" in name:
            monkeypatch.delenv(name)
    return home


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KIT_HOME holding the installed default model, pulled once per session."""
    from kit.models.catalog import load_catalog
    from kit.models.fetch import pull

    home = tmp_path_factory.mktemp("model-store")
    entry = load_catalog().get("smollm2-135m-instruct")
    pull(entry, home)
    return home


@pytest.fixture
def installed_home(model_store: Path, kit_env: Path) -> Path:
    return install_model(model_store, kit_env)


@pytest.fixture(scope="session")
def detector() -> Any:
    """The process-wide personal-data detector (spaCy loaded once), the one the gateways use."""
    from kit.rules.privacy import get_detector

    return get_detector()


@pytest.fixture(scope="module")
def gateway(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One running gateway per test module (loopback, no API keys: single-operator mode)."""
    base = tmp_path_factory.mktemp("gateway")
    home = install_model(model_store, base / "home")
    old = os.environ.get("KIT_HOME")
    handle, stop = start_server(home, base / "kit.yaml")
    yield handle
    stop()
    if old is not None:
        os.environ["KIT_HOME"] = old


@pytest.fixture(scope="module")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One running gateway per test module around the echo engine (echo_engine.py), for tests where the model is
    not the subject: real stores, detector, document index and HTTP on 127.0.0.1."""
    from echo_engine import start_echo_gateway

    base = tmp_path_factory.mktemp("echo-gateway")
    old = os.environ.get("KIT_HOME")
    handle, stop = start_echo_gateway(base / "home", base / "kit.yaml")
    yield handle
    stop()
    if old is not None:
        os.environ["KIT_HOME"] = old


# --- throwaway database servers on loopback (the several-gateways tests) -------------------------------------

@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = os.environ.get("KIT_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pytest.importorskip("psycopg", reason="psycopg is not installed (optional PostgreSQL support)")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no local PostgreSQL server (initdb/pg_ctl not found) and "
                    "KIT_TEST_POSTGRES_URL is not set")
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="kit-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the postgres account
        runuser = shutil.which("runuser")
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        if not runuser or account is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root without runuser or a postgres account")
        prefix = [runuser, "-u", "postgres", "--"]
        os.chown(base, account.pw_uid, account.pw_gid)
    data, port = base / "data", free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-U", "kit", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                        f"-p {port} -k {base} -c listen_addresses=''", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a local PostgreSQL server: {exc}")
    try:
        yield f"postgresql://kit@/postgres?host={base}&port={port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server on a free loopback port: (URL, process)."""
    with redis_running(tmp_path) as found:
        yield found
