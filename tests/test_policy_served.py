"""Usage rules with the real model behind them: the marks on an answer name the model that wrote it, what
`kit serve` keeps of a prompt (nothing under retention 0, neither in files nor in its output), and the
gateway in front of another kit server as a remote engine. Real model, real SQLite, real HTTP on 127.0.0.1;
the rules that do not need the model are in test_policy.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import KIT, ServerHandle, free_port, install_model, start_server, write_config

from kit.config import load_settings

pytestmark = pytest.mark.slow
EMAIL = "claire.martin@exemple.fr"


@pytest.fixture(scope="module")
def gw(gateway: ServerHandle) -> ServerHandle:
    gateway.acknowledge("alice")
    return gateway


def chat(gw: ServerHandle, text: str, user: str = "alice", **extra: object) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(user), json=body, timeout=120)


def test_warned_data_passes_and_is_flagged(gw: ServerHandle) -> None:
    r = chat(gw, f"Rédige une réponse courte à {EMAIL} pour confirmer la réunion.")
    assert r.status_code == 200
    meta = r.json()["kit"]
    assert meta["ai_generated"] is True and meta["model"] == "smollm2-135m-instruct" and len(meta["model_sha256"]) == 64
    assert meta["personal_data"]["warned"] == ["EMAIL_ADDRESS"]
    row = list(gw.state.audit.rows(action="chat"))[-1]
    assert row.pii_categories == ["EMAIL_ADDRESS"] and row.pii_action == "warn"
    assert row.user != "alice" and row.completion_tokens > 0 and row.model == "smollm2-135m-instruct"


def _serve(home: Path, cfg: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([KIT, "serve", "--port", str(port), "--ctx", "512", "--parallel", "2"], text=True,
                            env={**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(cfg)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "server exited")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("server did not start")


def _chat_with_marker(url: str, cfg: Path, marker: str) -> None:
    h = {"X-Kit-User": "zoe"}
    version = httpx.get(url + "/v1/charter", headers=h).json()["version"]
    answers = [q.answer for q in load_settings(cfg).policy.quiz]
    httpx.post(url + "/v1/charter/acknowledge", headers=h, json={"version": version, "quiz_answers": answers})
    cid = httpx.post(url + "/v1/conversations", headers=h, json={"title": "t"}).json()["id"]
    r = httpx.post(url + "/v1/chat/completions", headers=h, timeout=120, json={
        "messages": [{"role": "user", "content": f"Résume ce mémo {marker} en une phrase."}],
        "max_tokens": 8, "conversation_id": cid})
    assert r.status_code == 200, r.text


def _files_containing(root: Path, marker: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and marker.encode() in p.read_bytes()]


def _served_chat_with_marker(model_store: Path, tmp_path: Path, **policy: object) -> tuple[Path, str, str]:
    """Run `kit serve` with this policy, send one chat holding a unique marker, stop the server.
    Returns $KIT_HOME, the marker and everything the server printed."""
    home = install_model(model_store, tmp_path / "home")
    cfg = write_config(tmp_path / "kit.yaml", policy=policy)
    marker = "ZQX" + uuid.uuid4().hex[:10].upper()
    proc, url = _serve(home, cfg)
    try:
        _chat_with_marker(url, cfg, marker)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    return home, marker, output


@pytest.mark.parametrize("retention", [0, 30])
def test_prompt_text_kept_only_where_policy_says(model_store: Path, tmp_path: Path, retention: int) -> None:
    """Default audit has no prompt text; retention 0 leaves no prompt text anywhere under $KIT_HOME or in logs."""
    home, marker, output = _served_chat_with_marker(model_store, tmp_path, conversation_retention_days=retention)
    assert marker not in output
    found = _files_containing(home, marker)
    with sqlite3.connect(home / "kit.db") as con:  # audit and history share the installation's database
        audit_rows = " ".join(str(r) for r in con.execute("SELECT * FROM audit_log"))
        kept = con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert audit_rows and marker not in audit_rows
    if retention == 0:
        assert found == [] and kept == 0
    else:  # the history keeps it (as it should), the audit log does not
        assert kept >= 1 and any(f.endswith("kit.db") or "kit.db-" in f for f in found), found


def test_log_prompt_text_when_enabled(model_store: Path, tmp_path: Path) -> None:
    home, marker, _ = _served_chat_with_marker(model_store, tmp_path, log_prompt_text=True,
                                               conversation_retention_days=0)
    with sqlite3.connect(home / "kit.db") as con:
        bodies = [r[0] for r in con.execute("SELECT body FROM audit_log WHERE action = 'chat'")]
    assert any(marker in (b or "") for b in bodies), bodies


def test_remote_engine_behind_the_gateway(model_store: Path, tmp_path: Path) -> None:
    """The gateway in front of another OpenAI-compatible engine (here: a second kit server on loopback)."""
    engine_home = install_model(model_store, tmp_path / "engine")
    engine_cfg = write_config(tmp_path / "engine.yaml", server={"parallel": 2, "ctx": 512})
    proc, engine_url = _serve(engine_home, engine_cfg)
    try:
        h: dict[str, str] = {}  # the front gateway calls as the engine's local operator
        version = httpx.get(engine_url + "/v1/charter", headers=h).json()["version"]
        answers = [q.answer for q in load_settings(engine_cfg).policy.quiz]
        httpx.post(engine_url + "/v1/charter/acknowledge", headers=h,
                   json={"version": version, "quiz_answers": answers}).raise_for_status()
        front, stop = start_server(tmp_path / "front", tmp_path / "front.yaml",
                                   server={"engine_url": engine_url + "/v1"})
        try:
            front.acknowledge("alice")
            os.environ["KIT_HOME"] = str(tmp_path / "front")
            r = httpx.post(front.url + "/v1/chat/completions", headers=front.headers("alice"), timeout=120,
                           json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": True})
            assert r.status_code == 200 and "data: [DONE]" in r.text
            blocked = httpx.post(front.url + "/v1/chat/completions", headers=front.headers("alice"), timeout=60,
                                 json={"messages": [{"role": "user", "content": "carte 4970 1012 3456 7893"}]})
            assert blocked.status_code == 422  # the rules hold whatever the engine
        finally:
            stop()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    cfg = yaml.safe_load((tmp_path / "front.yaml").read_text())
    assert cfg["server"]["engine_url"].startswith("http://127.0.0.1")

