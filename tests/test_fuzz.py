"""Hypothesis-driven hostile requests against the real gateway: whatever the body, headers or path,
the answer is a clear 4xx (or a success), never a 5xx. Bounded: a fixed number of examples."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import ServerHandle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=False), st.text(max_size=40))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    "/v1/completions": {"prompt": "Hi", "max_tokens": 2},
    "/v1/charter/acknowledge": {"version": "x", "quiz_answers": [0, 1, 1]},
    "/v1/privacy/scan": {"text": "Jean Dupont, 06 12 34 56 78"},
    "/v1/feedback": {"kind": "rating", "rating": 1, "comment": ""},
    "/v1/conversations": {"title": "t"},
    "/v1/auth/login": {"user": "u", "password": "p"},
    "/v1/admin/chat": {"open": True, "message": ""},
    "/v1/documents/search": {"query": "congés", "k": 3},
}
RAW = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"", b"{", b"[]", b"null", b'"x"', b"1e999999", b"-" + b"9" * 5000, b'{"messages": "\\ud800"}',
    b'{"messages": [' * 2000, b"\xff\xfe\x00", b'{"a": 1, "a": 2}',
]))


@pytest.fixture(scope="module")
def gw(gateway: ServerHandle) -> ServerHandle:
    gateway.acknowledge("fuzz")
    return gateway


def _mutate(body: dict[str, Any], key: str | None, value: Any, drop: bool) -> dict[str, Any]:
    out = dict(body)
    if key is None:
        return out
    if drop:
        out.pop(key, None)
    else:
        out[key] = value
    if isinstance(out.get("max_tokens"), int) and out["max_tokens"] > 4:
        out["max_tokens"] = 4  # keep each example short: the fuzz is about the input, not long answers
    out.pop("n", None) if isinstance(out.get("n"), int) and out["n"] > 2 else None
    return out


def _check(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what} -> {r.status_code}: {r.text[:300]}"
    if r.status_code >= 400:
        assert r.json()["error"]["message"], what


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(VALID)), key=st.one_of(st.none(), st.text(max_size=12),
       st.sampled_from(["messages", "max_tokens", "temperature", "stop", "n", "stream", "text", "version",
                        "quiz_answers", "rating", "kind", "title", "open", "k", "query", "group", "kit", "seed"])),
       value=VALUES, drop=st.booleans())
def test_mutated_bodies_never_give_a_5xx(gw: ServerHandle, path: str, key: str | None, value: Any,
                                         drop: bool) -> None:
    body = _mutate(VALID[path], key, value, drop)
    with httpx.Client(timeout=120) as client:
        r = client.post(gw.url + path, headers={**gw.headers("fuzz"), "Content-Type": "application/json"},
                        content=json.dumps(body))
    _check(r, f"POST {path} {body!r}"[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(VALID)), raw=RAW,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_raw_bodies_never_give_a_5xx(gw: ServerHandle, path: str, raw: bytes, content_type: str) -> None:
    headers = {**gw.headers("fuzz"), "Content-Type": content_type}
    with httpx.Client(timeout=60) as client:
        r = client.post(gw.url + path, headers=headers, content=raw)
    _check(r, f"POST {path} {raw[:60]!r}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.text(max_size=60), method=st.sampled_from(["GET", "DELETE"]),
       user=st.text(max_size=40), role=st.text(max_size=12))
def test_paths_and_identity_headers_never_give_a_5xx(gw: ServerHandle, segment: str, method: str, user: str,
                                                      role: str) -> None:
    headers = gw.headers(None)
    try:
        headers.update({"X-Kit-User": user, "X-Kit-Role": role})
        httpx.Headers(headers).raw  # noqa: B018 - headers httpx cannot send are not a server question
    except (UnicodeEncodeError, ValueError, TypeError):
        headers = gw.headers(None)
    with httpx.Client(timeout=60) as client:
        try:
            r = client.request(method, gw.url + "/v1/conversations/" + segment, headers=headers)
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
            return  # not a request a client can send
    _check(r, f"{method} /v1/conversations/{segment!r}")


def test_a_request_the_http_parser_refuses_gets_a_json_error(gw: ServerHandle) -> None:
    """A control character in a header value never reaches the app: the HTTP layer refuses the request,
    and says so in JSON, in both languages, like every other error."""
    import socket

    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Kit-Role: \x08\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    message = json.loads(body)["error"]["message"]
    assert "Invalid HTTP request" in message and "Requête HTTP invalide" in message
