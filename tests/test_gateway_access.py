"""Who the gateway lets in, as an attacker or a new user would try it: identity headers without keys, the
local operator, the Host header, what a service key may claim, API keys revoked or created by another
process, audited and throttled sign-ins, who reads the metrics. Each test failed on the code before its
fix. Real gateway with the echo engine (the model is not the subject here), real stores, real HTTP on
127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from echo_engine import start_echo_gateway
from helpers import ServerHandle


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A gateway with no key at all: the single local operator's mode."""
    base = tmp_path_factory.mktemp("bare")
    old = os.environ.get("KIT_HOME")
    handle, stop = start_echo_gateway(base / "home", base / "kit.yaml", service_key=False)
    yield handle
    stop()
    if old is not None:
        os.environ["KIT_HOME"] = old


# --- identity and roles --------------------------------------------------------------------------

def test_without_keys_identity_headers_are_ignored(bare: ServerHandle) -> None:
    # any local process (or a DNS-rebinding page) used to become the admin by saying so
    forged = {"X-Kit-User": "mallory", "X-Kit-Role": "admin"}
    assert httpx.get(bare.url + "/v1/admin/stats", headers=forged).status_code == 403
    me = httpx.get(bare.url + "/v1/me", headers=forged).json()
    assert me["user"] == "local" and me["role"] == "user"


def test_local_operator_may_be_named_admin(tmp_path: Path) -> None:
    handle, stop = start_echo_gateway(tmp_path / "h", tmp_path / "k.yaml", service_key=False,
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


def test_service_key_cannot_claim_a_role_the_user_does_not_have(echo_gateway: ServerHandle) -> None:
    from kit.storage.users import add_user

    add_user(echo_gateway.settings.home, "carol", "auditor", "a long enough password")
    front = echo_gateway.headers(None)  # the service key alone
    claim = {**front, "X-Kit-User": "carol", "X-Kit-Role": "admin"}  # more than the user store says
    r = httpx.get(echo_gateway.url + "/v1/admin/stats", headers=claim)
    assert r.status_code == 403 and "auditor" in r.json()["error"]["message"]
    ok = {**front, "X-Kit-User": "carol", "X-Kit-Role": "auditor"}
    assert httpx.get(echo_gateway.url + "/v1/admin/stats", headers=ok).status_code == 200
    # someone unknown to the user store is a plain user, whatever is claimed
    nobody = {**front, "X-Kit-User": "nobody", "X-Kit-Role": "admin"}
    assert httpx.get(echo_gateway.url + "/v1/admin/stats", headers=nobody).status_code == 403


def test_emptied_key_set_closes_a_network_bind(tmp_path: Path) -> None:
    from kit.storage.keys import create_key, revoke_key

    handle, stop = start_echo_gateway(tmp_path / "h", tmp_path / "k.yaml", service_key=False)
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


def test_a_key_revoked_by_another_process_stops_working_within_a_second(tmp_path: Path) -> None:
    """The gateway remembers the keys for a second (every request reads them): `kit keys revoke` run
    elsewhere applies within that second; a revocation through the gateway itself applies at once, and so
    does a key created elsewhere."""
    from kit.storage.db import RECALL_S
    from kit.storage.keys import create_key, revoke_key

    home = tmp_path / "h"
    handle, stop = start_echo_gateway(home, tmp_path / "k.yaml", service_key=False)
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


def test_key_creation_and_revocation_are_audited(echo_gateway: ServerHandle) -> None:
    from kit.storage.keys import create_key, revoke_key

    create_key(echo_gateway.settings, "audited-app", "user")
    revoke_key(echo_gateway.settings, "audited-app")
    actions = [r.action for r in echo_gateway.state.audit.rows()]
    assert "key_created" in actions and "key_revoked" in actions


def test_failed_sign_ins_are_audited_and_throttled(echo_gateway: ServerHandle) -> None:
    from kit.storage.users import add_user

    add_user(echo_gateway.settings.home, "dave", "user", "the right password 1")
    url = echo_gateway.url + "/v1/auth/login"
    h = {**echo_gateway.headers(None), "X-Kit-Client-Address": "192.0.2.7"}
    codes = [httpx.post(url, headers=h, json={"user": "dave", "password": f"wrong {i}"}).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    # even the right password waits once throttled, and the 429 says when to retry
    r = httpx.post(url, headers=h, json={"user": "dave", "password": "the right password 1"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    actions = [r.action for r in echo_gateway.state.audit.rows()]
    assert actions.count("login_failed") >= 5


def test_another_users_conversation_is_not_found(echo_gateway: ServerHandle) -> None:
    cid = httpx.post(echo_gateway.url + "/v1/conversations", headers=echo_gateway.headers("frank"),
                     json={"title": "mine"}).json()["id"]
    r = httpx.get(echo_gateway.url + f"/v1/conversations/{cid}", headers=echo_gateway.headers("grace"))
    assert r.status_code == 404


# --- exposure ----------------------------------------------------------------------------------

def test_metrics_are_for_loopback_or_a_key(echo_gateway: ServerHandle) -> None:
    assert echo_gateway.settings.server.metrics_access == "loopback"
    assert httpx.get(echo_gateway.url + "/metrics").status_code == 200  # the test client is on loopback
