"""Holes found by trying the gateway as an attacker or a new user would (issue: hardening before
production). Each test failed on the code before the fix. Real gateway, real engine, real HTTP on
127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ServerHandle, install_model, start_server

pytestmark = pytest.mark.slow


def _chat(text: str = "Say hello.") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def bare(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    """A gateway with no key at all: the single local operator's mode."""
    base = tmp_path_factory.mktemp("bare")
    home = install_model(model_store, base / "home")
    handle, stop = start_server(home, base / "kit.yaml", parallel=2, service_key=False)
    yield handle
    stop()


# --- identity and roles --------------------------------------------------------------------------

def test_without_keys_identity_headers_are_ignored(bare: ServerHandle) -> None:
    # any local process (or a DNS-rebinding page) used to become the admin by saying so
    forged = {"X-Kit-User": "mallory", "X-Kit-Role": "admin"}
    assert httpx.get(bare.url + "/v1/admin/stats", headers=forged).status_code == 403
    me = httpx.get(bare.url + "/v1/me", headers=forged).json()
    assert me["user"] == "local" and me["role"] == "user"


def test_local_operator_may_be_named_admin(model_store: Path, tmp_path: Path) -> None:
    home = install_model(model_store, tmp_path / "h")
    handle, stop = start_server(home, tmp_path / "k.yaml", parallel=1, service_key=False,
                                server={"local_operator_role": "admin"})
    try:
        assert httpx.get(handle.url + "/v1/admin/stats").status_code == 200
    finally:
        stop()


def test_host_header_must_name_the_bound_address(bare: ServerHandle) -> None:
    # a page on evil.example resolving to 127.0.0.1 sends its own host name
    r = httpx.get(bare.url + "/v1/charter", headers={"Host": "evil.example:8000"})
    assert r.status_code == 421 and "host" in r.json()["error"]["message"].lower()
    assert httpx.get(bare.url + "/v1/charter", headers={"Host": "localhost"}).status_code == 200
    assert httpx.get(bare.url + "/health", headers={"Host": "evil.example"}).status_code == 421


def test_service_key_cannot_claim_a_role_the_user_does_not_have(gateway: ServerHandle) -> None:
    from kit.storage.users import add_user

    add_user(gateway.settings.home, "carol", "auditor", "a long enough password")
    front = gateway.headers(None)  # the service key alone
    claim = {**front, "X-Kit-User": "carol", "X-Kit-Role": "admin"}  # more than the user store says
    r = httpx.get(gateway.url + "/v1/admin/stats", headers=claim)
    assert r.status_code == 403 and "auditor" in r.json()["error"]["message"]
    ok = {**front, "X-Kit-User": "carol", "X-Kit-Role": "auditor"}
    assert httpx.get(gateway.url + "/v1/admin/stats", headers=ok).status_code == 200
    # someone unknown to the user store is a plain user, whatever is claimed
    nobody = {**front, "X-Kit-User": "nobody", "X-Kit-Role": "admin"}
    assert httpx.get(gateway.url + "/v1/admin/stats", headers=nobody).status_code == 403


def test_emptied_key_set_closes_a_network_bind(model_store: Path, tmp_path: Path) -> None:
    from kit.storage.keys import create_key, revoke_key

    home = install_model(model_store, tmp_path / "h")
    handle, stop = start_server(home, tmp_path / "k.yaml", parallel=1, service_key=False)
    try:
        settings = handle.settings
        key, _ = create_key(settings, "app", "user")
        settings.server.host = "0.0.0.0"  # as if bound to the network (the check reads the bound address)
        auth = {"Authorization": f"Bearer {key}", "Host": "127.0.0.1"}
        assert httpx.get(handle.url + "/v1/models", headers=auth).status_code == 200
        revoke_key(settings, "app")
        r = httpx.get(handle.url + "/v1/models", headers={"Host": "127.0.0.1"})
        assert r.status_code == 503 and "no API key" in r.json()["error"]["message"]
    finally:
        stop()


def test_a_key_revoked_by_another_process_stops_working_within_a_second(model_store: Path, tmp_path: Path) -> None:
    """The gateway remembers the keys for a second (every request reads them): `kit keys revoke` run
    elsewhere applies within that second; a revocation through the gateway itself applies at once, and so
    does a key created elsewhere."""
    from kit.storage.db import RECALL_S
    from kit.storage.keys import create_key, revoke_key

    home = install_model(model_store, tmp_path / "h")
    handle, stop = start_server(home, tmp_path / "k.yaml", parallel=1, service_key=False)
    try:
        first, _ = create_key(handle.settings, "app", "user")
        second, _ = create_key(handle.settings, "other-app", "user")
        for key in (first, second):
            assert httpx.get(handle.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        env = {**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(tmp_path / "k.yaml")}
        done = subprocess.run([sys.executable, "-m", "kit.cli", "keys", "revoke", "app"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        time.sleep(RECALL_S)
        r = httpx.get(handle.url + "/v1/models", headers={"Authorization": f"Bearer {first}"})
        assert r.status_code == 401 and "not valid" in r.json()["error"]["message"]
        revoke_key(handle.settings, "other-app")  # in this process: no wait
        made = subprocess.run([sys.executable, "-m", "kit.cli", "keys", "create", "third-app"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        r = httpx.get(handle.url + "/v1/models", headers={"Authorization": f"Bearer {second}"})
        assert r.status_code == 401
        # a key made by another process a moment ago works at once (an unknown key is looked up afresh)
        third = {"Authorization": f"Bearer {made.stdout.strip()}"}
        assert httpx.get(handle.url + "/v1/models", headers=third).status_code == 200
    finally:
        stop()


def test_key_creation_and_revocation_are_audited(gateway: ServerHandle) -> None:
    from kit.storage.keys import create_key, revoke_key

    create_key(gateway.settings, "audited-app", "user")
    revoke_key(gateway.settings, "audited-app")
    actions = [r.action for r in gateway.state.audit.rows()]
    assert "key_created" in actions and "key_revoked" in actions


def test_failed_sign_ins_are_audited_and_throttled(gateway: ServerHandle) -> None:
    from kit.storage.users import add_user

    add_user(gateway.settings.home, "dave", "user", "the right password 1")
    url = gateway.url + "/v1/auth/login"
    h = {**gateway.headers(None), "X-Kit-Client-Address": "192.0.2.7"}
    codes = [httpx.post(url, headers=h, json={"user": "dave", "password": f"wrong {i}"}).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    # even the right password waits once throttled, and the 429 says when to retry
    r = httpx.post(url, headers=h, json={"user": "dave", "password": "the right password 1"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    actions = [r.action for r in gateway.state.audit.rows()]
    assert actions.count("login_failed") >= 5


# --- bad input that gave a 500 ---------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}",
    b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 4}',
])
def test_hostile_json_gets_a_400(gateway: ServerHandle, raw: bytes) -> None:
    h = {**gateway.headers("alice"), "Content-Type": "application/json"}
    r = httpx.post(gateway.url + "/v1/chat/completions", headers=h, content=raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


def test_lone_surrogate_in_titles_and_scans_gets_a_400(gateway: ServerHandle) -> None:
    h = {**gateway.headers("alice"), "Content-Type": "application/json"}
    for path, raw in (("/v1/conversations", b'{"title": "x\\udfff"}'), ("/v1/privacy/scan", b'{"text": "\\ud800"}')):
        r = httpx.post(gateway.url + path, headers=h, content=raw)
        assert r.status_code == 400, (path, r.text)


def test_unknown_field_in_acknowledge_is_named(gateway: ServerHandle) -> None:
    charter = httpx.get(gateway.url + "/v1/charter", headers=gateway.headers("erin")).json()
    r = httpx.post(gateway.url + "/v1/charter/acknowledge", headers=gateway.headers("erin"),
                   json={"version": charter["version"], "answers": [0, 1, 1]})
    assert r.status_code == 422 and "answers" in r.json()["error"]["message"]
    r = httpx.post(gateway.url + "/v1/chat/completions", headers=gateway.headers("erin"), json=_chat())
    assert r.status_code == 403 and "quiz_answers" in r.json()["error"]["message"]


def test_another_users_conversation_is_not_found(gateway: ServerHandle) -> None:
    cid = httpx.post(gateway.url + "/v1/conversations", headers=gateway.headers("frank"),
                     json={"title": "mine"}).json()["id"]
    r = httpx.get(gateway.url + f"/v1/conversations/{cid}", headers=gateway.headers("grace"))
    assert r.status_code == 404


# --- exposure ----------------------------------------------------------------------------------

def test_metrics_are_for_loopback_or_a_key(gateway: ServerHandle) -> None:
    assert gateway.settings.server.metrics_access == "loopback"
    assert httpx.get(gateway.url + "/metrics").status_code == 200  # the test client is on loopback


def test_remote_engine_ignores_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts and the engine key must not leave through a proxy named in the environment."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from conftest import free_port

    from kit.engine.remote import RemoteEngine

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = json.dumps({"data": [{"id": "local-model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a request through it fails
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{server.server_port}", model_name="m")
        assert engine.is_ready()
        engine.close()
    finally:
        server.shutdown()


def test_kit_up_options_default_to_the_configuration(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`KIT_UI__PORT=7999 kit up` used to serve on 7860: the options default to the configuration now."""
    import socket

    from click.testing import CliRunner

    from kit.cli.main import cli

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    monkeypatch.setenv("KIT_UI__PORT", str(port))  # kit up must try this port, find it taken, and say so
    try:
        r = CliRunner().invoke(cli, ["up"])
    finally:
        busy.close()
    assert r.exit_code != 0 and f"port {port}" in str(r.exception), r.output
