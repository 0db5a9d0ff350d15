"""The gateway against hostile pages: DNS rebinding (Host), cross-site requests (Origin, Sec-Fetch-Site)
and bodies a page may send without asking (Content-Type). Real gateway, real engine, real HTTP on
127.0.0.1, in the single local operator's mode (no key), the one a page could abuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServerHandle, install_model, serve_app, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def bare(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A gateway with no key at all: the single local operator's mode."""
    base = tmp_path_factory.mktemp("bare")
    home = install_model(model_store, base / "home")
    handle, stop = start_server(home, base / "kit.yaml", parallel=2, service_key=False)
    yield handle
    stop()


# --- host names, bodies, origins ---------------------------------------------------------------------------

def test_gateway_host_must_be_a_real_loopback_address(bare: ServerHandle) -> None:
    port = bare.url.rsplit(":", 1)[1]
    for host in ("127.attacker.example", f"127.0.0.1.attacker.example:{port}", "127.evil", "0x7f.1"):
        r = httpx.get(bare.url + "/v1/me/export", headers={"Host": host})
        assert r.status_code == 421, (host, r.status_code)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2", f"[::1]:{port}"):
        assert httpx.get(bare.url + "/v1/me/export", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("path,body", [
    ("/v1/charter/acknowledge", {"version": "x", "quiz_answers": []}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
    ("/v1/conversations", {"title": "t"}),
    ("/v1/feedback", {"kind": "report", "comment": "x"}),
    ("/v1/privacy/scan", {"text": "x"}),
])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_gateway_json_routes_refuse_other_bodies(bare: ServerHandle, path: str, body: dict[str, Any],
                                                 content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(bare.url + path, content=json.dumps(body).encode(), headers=headers, timeout=60)
    assert r.status_code == 415, (r.status_code, r.text[:200])
    message = r.json()["error"]["message"]
    assert "application/json" in message and "Content-Type" in message and " / " in message  # English / French


def test_gateway_json_routes_take_json(bare: ServerHandle) -> None:
    r = httpx.post(bare.url + "/v1/privacy/scan", json={"text": "Bonjour"}, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.post(bare.url + "/v1/privacy/scan", content=b'{"text": "x"}', timeout=60,
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Origin": "http://localhost:7860"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_gateway_refuses_state_changes_from_other_sites(bare: ServerHandle, headers: dict[str, str]) -> None:
    calls = [("POST", "/v1/conversations", {"title": "t"}),
             ("POST", "/v1/feedback", {"kind": "report", "comment": "x"}),
             ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
             ("DELETE", "/v1/conversations", None), ("PUT", "/v1/conversations", {}), ("PATCH", "/v1/feedback", {})]
    for method, path, body in calls:
        r = httpx.request(method, bare.url + path, json=body, headers=headers, timeout=60)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
        assert "server.allowed_origins" in r.json()["error"]["message"]
    files = {"file": ("a.txt", b"hello", "text/plain")}
    assert httpx.post(bare.url + "/v1/documents", files=files, headers=headers).status_code == 403


def test_gateway_keeps_serving_programs_and_its_own_origin(bare: ServerHandle) -> None:
    # no Origin: curl, the OpenAI SDK, the chat's own backend
    r = httpx.post(bare.url + "/v1/conversations", json={"title": "from a program"}, timeout=60)
    assert r.status_code == 200, r.text
    own = httpx.post(bare.url + "/v1/conversations", json={"title": "own"}, timeout=60,
                     headers={"Origin": bare.url, "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200, own.text
    # reading stays open to a GET from anywhere (no CORS header: the browser hides the answer from the page)
    read = httpx.get(bare.url + "/v1/conversations", headers={"Origin": EVIL})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
    # multipart upload routes keep taking multipart (here: the local operator is no admin, hence 403 for that)
    files = {"file": ("a.txt", b"hello", "text/plain")}
    up = httpx.post(bare.url + "/v1/documents", files=files, timeout=60)
    assert up.status_code != 415 and up.json()["error"]["type"] != "cross_origin_refused"


def test_gateway_allowed_origins() -> None:
    from starlette.datastructures import Headers

    from kit.config import Settings
    from kit.gateway.guard import origin_allowed

    settings = Settings.model_validate({"server": {"allowed_origins": ["https://app.example.org"]}})
    ok = Headers({"host": "127.0.0.1:8000", "origin": "https://app.example.org"})
    assert origin_allowed(settings, ok)
    for origin in ("https://app.example.org.evil.example", "http://app.example.org", "https://evil.example"):
        assert not origin_allowed(settings, Headers({"host": "127.0.0.1:8000", "origin": origin})), origin
    assert origin_allowed(settings, Headers({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}))
    assert origin_allowed(settings, Headers({"host": "127.0.0.1:8000"}))


def test_host_rules_for_each_bind() -> None:
    from kit.config import host_allowed

    assert host_allowed("127.0.0.1:8000", "127.0.0.1", [])
    assert host_allowed("[::1]:8000", "::1", [])
    assert not host_allowed("127.attacker.example", "127.0.0.1", [])
    assert not host_allowed("127.0.0.1.nip.io:8000", "localhost", [])
    assert host_allowed("Chat.Example.org:443", "127.0.0.1", ["chat.example.org"])
    assert host_allowed("10.0.0.5:8000", "10.0.0.5", []) and not host_allowed("127.0.0.2", "10.0.0.5", [])
    assert not host_allowed("evil.example", "10.0.0.5", [])
    # bound to every address: any name until names are listed; the machine's addresses always (probes)
    assert host_allowed("anything.example", "0.0.0.0", [])
    assert not host_allowed("evil.example", "0.0.0.0", ["chat.example.org"])
    assert host_allowed("10.1.2.3:7860", "0.0.0.0", ["chat.example.org"])
    assert host_allowed("chat.example.org", "::", ["chat.example.org"])


def test_refused_host_names_the_key_to_set(bare: ServerHandle) -> None:
    r = httpx.get(bare.url + "/v1/me/export", headers={"Host": "rebound.attacker.example"})
    assert r.status_code == 421
    message = r.json()["error"]["message"]
    assert message.count("server.allowed_hosts") == 2 and "allowed_config" not in message, message


def test_engine_on_loopback_answers_only_loopback_names() -> None:
    """`kit engine` serves the model with no usage rules, keyless on loopback: a page whose name rebinds to
    127.0.0.1 must not reach it either."""
    from echo_engine import EchoEngine

    from kit.gateway.engine_api import create_engine_app

    engine = EchoEngine()
    url, stop = serve_app(create_engine_app(engine, api_key=None, name="t", host="127.0.0.1"))  # type: ignore[arg-type]
    port = url.rsplit(":", 1)[1]
    body = {"messages": [{"role": "user", "content": "bonjour"}], "max_tokens": 2}
    try:
        for host in ("rebound.attacker.example", f"127.0.0.1.attacker.example:{port}"):
            r = httpx.post(url + "/v1/chat/completions", json=body, headers={"Host": host})
            assert r.status_code == 421 and "error" in r.json(), (host, r.status_code)
            assert httpx.get(url + "/v1/models", headers={"Host": host}).status_code == 421
        assert engine.received == []
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 200
        assert httpx.get(url + "/health", headers={"Host": f"localhost:{port}"}).status_code == 200
    finally:
        stop()
