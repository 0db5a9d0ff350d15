"""Abuse limits per user and per key: requests per minute, generated tokens per minute, running generations
(each of the n choices counts), 429 with Retry-After and the limit named; Redis shares the counters."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from echo_engine import start_echo_gateway
from helpers import ServerHandle, free_port, install_model, serve_app, start_server, write_config

from kit.config import Limits, RoleLimits, load_settings
from kit.errors import ConfigError, LimitExceededError, UsageError
from kit.rules.limits import Limiter, storage_uri

CHAT = "/v1/chat/completions"


def body(text: str = "Say hello.", **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0, **extra}


def _user_keys(tmp: Path, home: Path, names: list[str],
               **user: int) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The limits of the user role (the given ones, the others off) and an acknowledged user key per name."""
    from kit.storage.keys import create_key

    limits = {"user": {"requests_per_minute": 0, "tokens_per_minute": 0, "tokens_per_day": 0, "concurrent": 0,
                       **user}}
    os.environ["KIT_HOME"] = str(home)
    settings = load_settings(write_config(tmp / "kit.yaml", limits=limits))
    return limits, {n: {"Authorization": f"Bearer {create_key(settings, n, 'user')[0]}"} for n in names}


def limited_server(model_store: Path, tmp: Path, names: list[str], parallel: int = 4,
                   server: dict[str, Any] | None = None, **user: int) -> tuple[ServerHandle, Any,
                                                                               dict[str, dict[str, str]]]:
    """A real gateway with the real model whose user role has the given limits, and an acknowledged user key
    per name (for the limits on running generations, which need generations that take time)."""
    home = install_model(model_store, tmp / "home")
    limits, auth = _user_keys(tmp, home, names, **user)
    threads = max(1, (os.cpu_count() or 2) - 1)  # one core left to the gateway: llama.cpp's threads spin-wait
    handle, stop = start_server(home, tmp / "kit.yaml", parallel=parallel, ctx=512,
                                server={"threads": threads, **(server or {})}, limits=limits)
    return handle, stop, auth


def echo_limited_server(tmp: Path, names: list[str], **user: int) -> tuple[ServerHandle, Any,
                                                                           dict[str, dict[str, str]]]:
    """The same with the echo engine, for the limits that count requests, not what the model does."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    limits, auth = _user_keys(tmp, home, names, **user)
    handle, stop = start_echo_gateway(home, tmp / "kit.yaml", limits=limits)
    return handle, stop, auth


def retry_after(r: httpx.Response) -> int:
    value = int(r.headers["retry-after"])
    assert 1 <= value <= 86400, value
    return value


# --- the limiter alone (fast) ------------------------------------------------------------------------------

def test_limiter_counts_per_subject_and_role() -> None:
    lim = Limiter(Limits(user=RoleLimits(requests_per_minute=2, tokens_per_minute=0, tokens_per_day=0,
                                         concurrent=4)))
    for _ in range(2):
        lim.finish(lim.admit("alice", "key", "user"), 3)
    with pytest.raises(LimitExceededError, match=r"3 requests in the last minute.*limits\.user\.requests_per_minute"):
        lim.admit("alice", "key", "user")
    lim.finish(lim.admit("alice", "service", "user"), 0)  # another subject: the browser chat's alice
    lim.finish(lim.admit("alice", "key", "admin"), 0)  # admin limits are higher by default
    with pytest.raises(UsageError, match=r"asks for 5 choices.*limits\.user\.concurrent"):
        lim.admit("bob", "key", "user", n=5)
    held = lim.admit("bob", "key", "user", n=4)
    with pytest.raises(LimitExceededError) as refused:
        lim.admit("bob", "key", "user", n=1)
    assert refused.value.retry_after >= 1 and refused.value.limit == "concurrent"
    assert lim.counts().running == 4
    lim.finish(held, 10)
    lim.finish(held, 10)  # only the first finish counts
    assert lim.counts().running == 0 and lim.counts().refused == {"requests_per_minute": 1, "concurrent": 1}


def test_default_concurrent_cap_is_below_the_engines_width() -> None:
    """Unless set, each role may run one generation fewer than the engine decodes at once: one user never
    holds every sequence (with --parallel 4, a request of n=4 is refused; three run, a fourth waits)."""
    assert Limits().user.concurrent is None and Limits().admin.concurrent is None
    lim = Limiter(Limits(), width=4)
    with pytest.raises(UsageError, match=r"asks for 4 choices.*may run 3 generations at once.*limits\.user\."
                                         r"concurrent.*server\.parallel"):
        lim.admit("alice", "key", "user", n=4)
    held = lim.admit("alice", "key", "user", n=3)
    with pytest.raises(LimitExceededError, match=r"the limit for your role is 3") as refused:
        lim.admit("alice", "key", "user")
    assert refused.value.limit == "concurrent"
    lim.finish(lim.admit("bob", "key", "user"), 0)  # another user still gets the engine's last sequence
    with pytest.raises(LimitExceededError):
        lim.admit("alice", "key", "admin")  # same subject: the admin role's derived cap is 3 too
    lim.finish(held, 0)
    assert Limiter(Limits(), width=1).cap("user") == 1  # one sequence: at least one generation
    assert Limiter(Limits(), width=8).cap("admin") == 7


def test_an_explicit_concurrent_cap_is_kept() -> None:
    lim = Limiter(Limits(user=RoleLimits(concurrent=8), admin=RoleLimits(concurrent=0)), width=4)
    assert lim.cap("user") == 8 and lim.cap("admin") == 0 and lim.cap("auditor") == 3
    lim.admit("alice", "key", "user", n=8)
    lim.admit("root", "key", "admin", n=8)  # 0: unlimited
    from kit.config import template

    assert "concurrent: null" in template()  # `kit config init` writes the derived default, not a number


def test_searches_and_scans_count_against_lookups_per_minute() -> None:
    lim = Limiter(Limits(user=RoleLimits(requests_per_minute=1, lookups_per_minute=2, tokens_per_minute=0,
                                         tokens_per_day=0)))
    lim.request("dan", "key", "user")
    lim.request("dan", "key", "user")
    with pytest.raises(LimitExceededError, match=r"3 lookups in the last minute.*limits\.user\.lookups_per_minute"):
        lim.request("dan", "key", "user")
    # a chat's requests are counted apart: the browser chat checks each message before sending it
    lim.finish(lim.admit("dan", "key", "user"), 0)
    lim.request("dan", "service", "user")  # another subject
    assert lim.counts().running == 0 and lim.counts().refused == {"lookups_per_minute": 1}


def test_token_windows_refuse_once_spent() -> None:
    lim = Limiter(Limits(user=RoleLimits(requests_per_minute=0, tokens_per_minute=0, tokens_per_day=50,
                                         concurrent=0)))
    lim.finish(lim.admit("carol", "key", "user"), 49)
    lim.finish(lim.admit("carol", "key", "user"), 30)  # admitted below the limit; charged past it
    with pytest.raises(LimitExceededError, match=r"used 79 generated tokens in the current 24-hour window.*"
                                            r"limits\.user\.tokens_per_day") as exc:
        lim.admit("carol", "key", "user")
    assert 80000 < exc.value.retry_after <= 86400


def test_storage_uri_from_environment() -> None:
    assert storage_uri({}) == "memory://"
    assert storage_uri({"KIT_REDIS_URL": "redis://127.0.0.1:6390/0"}) == "redis://127.0.0.1:6390/0"
    with pytest.raises(ConfigError, match=r"KIT_REDIS_URL is http://u:\*\*\*@h"):
        storage_uri({"KIT_REDIS_URL": "http://u:secret@h"})


# --- the real gateway -------------------------------------------------------------------------------------

def test_requests_per_minute_gives_429_naming_the_limit(tmp_path: Path) -> None:
    handle, stop, auth = echo_limited_server(tmp_path, ["alice", "bob"], requests_per_minute=3)
    try:
        for _ in range(3):
            r = httpx.post(handle.url + CHAT, headers=auth["alice"], json=body(), timeout=60)
            assert r.status_code == 200, r.text
        r = httpx.post(handle.url + CHAT, headers=auth["alice"], json=body(), timeout=60)
        assert r.status_code == 429
        assert 1 <= retry_after(r) <= 60
        message = r.json()["error"]["message"]
        assert "you sent 4 requests in the last minute" in message
        assert "the limit for your role is 3 (limits.user.requests_per_minute)" in message
        assert f"retry in {r.headers['retry-after']} s" in message
        assert httpx.post(handle.url + CHAT, headers=auth["bob"], json=body(), timeout=60).status_code == 200
        metrics = httpx.get(handle.url + "/metrics").text
        assert 'kit_limit_refusals{limit="requests_per_minute"} 1.0' in metrics
        refused = [row for row in handle.state.audit.rows() if row.status == "limited"]
        assert len(refused) == 1 and refused[0].detail["limit"] == "requests_per_minute"
        assert refused[0].user not in ("alice", "") and handle.state.audit.verify().ok
    finally:
        stop()


@pytest.mark.slow
def test_concurrent_cap_counts_choices_and_spares_other_users(model_store: Path, tmp_path: Path) -> None:
    # 9 requests of n=8 would take 72 places; the engine has 9 sequences and 4 queue places (429 beyond):
    # without the cap, alice alone would fill it and bob would get 429
    handle, stop, auth = limited_server(model_store, tmp_path, ["alice", "bob"], parallel=9,
                                        server={"max_queue": 4}, concurrent=8)
    release = threading.Event()
    opened = threading.Barrier(10, timeout=90)  # alice's 9 requests and this test

    def alice(_: int) -> tuple[int, str, str | None]:
        big = body("Count from 1 to 500, one number per line.", n=8, max_tokens=200, stream=True)
        with httpx.stream("POST", handle.url + CHAT, headers=auth["alice"], json=big, timeout=120) as r:
            text = "" if r.status_code == 200 else r.read().decode()
            opened.wait()
            if r.status_code == 200:
                release.wait(120)  # hold the stream open (n=8 generations) until the others are checked
            return r.status_code, text, r.headers.get("retry-after")

    try:
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            futures = [pool.submit(alice, i) for i in range(9)]
            opened.wait()  # every answer's status is known; the admitted stream is held open
            # alice holds 8 generations: bob is still served, at once (the ninth sequence)
            t0 = time.perf_counter()
            r = httpx.post(handle.url + CHAT, headers=auth["bob"], json=body(), timeout=120)
            assert r.status_code == 200, r.text
            bob_s = time.perf_counter() - t0
            metrics = httpx.get(handle.url + "/metrics").text
            release.set()
            results = [f.result() for f in futures]
        statuses = sorted(s for s, _, _ in results)
        assert statuses == [200] + [429] * 8, statuses
        for status, text, retry in results:
            if status == 429:
                assert retry is not None and int(retry) >= 1
                assert "limits.user.concurrent" in text and "asks for 8 more" in text
        assert 'kit_limit_refusals{limit="concurrent"} 8.0' in metrics
        assert "kit_limit_running_generations 8.0" in metrics
        print(f"bob served in {bob_s:.1f} s while alice held 8 generations")
        # the closed stream released alice's generations: her next request of n=8 is admitted
        deadline = time.time() + 20
        while True:
            r = httpx.post(handle.url + CHAT, headers=auth["alice"], json=body(n=8), timeout=120)
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert "kit_limit_running_generations 0.0" in httpx.get(handle.url + "/metrics").text
    finally:
        release.set()
        stop()


@pytest.mark.slow
def test_by_default_one_user_cannot_hold_every_sequence(model_store: Path, tmp_path: Path) -> None:
    """With --parallel 4 and no concurrent cap set, a request of n=4 long generations is refused (400, naming
    the cap); three run, and another user's short request is served at once beside them."""
    handle, stop, auth = limited_server(model_store, tmp_path, ["alice", "bob"], parallel=4,
                                        concurrent=None)  # type: ignore[arg-type]
    try:
        big = body("Write a very long story about a lighthouse keeper.", n=4, max_tokens=1500, ignore_eos=True,
                   stream=True)
        r = httpx.post(handle.url + CHAT, headers=auth["alice"], json=big, timeout=60)
        assert r.status_code == 400, r.text
        assert "limits.user.concurrent" in r.json()["error"]["message"]
        assert "server.parallel" in r.json()["error"]["message"]
        big["n"] = 3
        with httpx.stream("POST", handle.url + CHAT, headers=auth["alice"], json=big, timeout=300) as held:
            assert held.status_code == 200
            lines = held.iter_lines()
            for _ in range(6):
                next(lines)  # alice's generations are running
            t0 = time.perf_counter()
            r = httpx.post(handle.url + CHAT, headers=auth["bob"], json=body(max_tokens=3), timeout=60)
            bob_s = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            assert handle.engine.stats.active == 3  # alice's three are still generating
        assert bob_s < 20, bob_s
        print(f"bob served in {bob_s:.1f} s beside alice's three long generations")
    finally:
        stop()


@pytest.mark.slow
def test_tokens_per_minute_charged_after_the_answer(model_store: Path, tmp_path: Path) -> None:
    handle, stop, auth = limited_server(model_store, tmp_path, ["carol", "dave"], tokens_per_minute=20)
    long = body("Count from 1 to 100, separated by commas.", max_tokens=12)
    try:
        used = 0
        for _ in range(6):  # streamed: charged when the stream ends
            with httpx.stream("POST", handle.url + CHAT, headers=auth["carol"], timeout=60,
                              json={**long, "stream": True, "stream_options": {"include_usage": True}}) as r:
                if r.status_code == 429:
                    r.read()
                    break
                assert r.status_code == 200
                for line in r.iter_lines():
                    if '"usage"' in line and '"choices": []' in line:
                        used += json.loads(line[6:])["usage"]["completion_tokens"]
        else:
            pytest.fail("carol was never refused")
        assert used >= 20
        retry = retry_after(r)
        message = r.json()["error"]["message"]
        assert f"your answers used {used} generated tokens" in message
        assert "limits.user.tokens_per_minute" in message and retry <= 60
        assert httpx.post(handle.url + CHAT, headers=auth["dave"], json=long, timeout=60).status_code == 200
    finally:
        stop()


# --- Redis: counters shared by two gateways --------------------------------------------------------------

def test_redis_shares_the_counters_between_gateways(tmp_path: Path,
                                                     redis_server: tuple[str, subprocess.Popen[bytes]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.gateway.app import create_app

    redis_url, proc = redis_server
    monkeypatch.setenv("KIT_REDIS_URL", redis_url)
    handle, stop, auth = echo_limited_server(tmp_path, ["erin"], requests_per_minute=3)
    second = create_app(handle.settings, handle.engine, handle.state)  # another gateway, same Redis
    assert handle.app.state.context.limiter.shared and second.state.context.limiter.shared
    url_b, stop_b = serve_app(second)
    try:
        for url in (handle.url, url_b, handle.url):
            r = httpx.post(url + CHAT, headers=auth["erin"], json=body(), timeout=60)
            assert r.status_code == 200, r.text
        r = httpx.post(url_b + CHAT, headers=auth["erin"], json=body(), timeout=60)
        assert r.status_code == 429 and "limits.user.requests_per_minute" in r.json()["error"]["message"]
        retry_after(r)
        # the shared store goes away: a clear 503 that says when to retry, not a 500 nor an unlimited service
        proc.terminate()
        proc.wait(timeout=10)
        r = httpx.post(handle.url + CHAT, headers=auth["erin"], json=body(), timeout=60)
        assert r.status_code == 503 and "does not answer" in r.json()["error"]["message"], r.text
        retry_after(r)
    finally:
        stop_b()
        stop()


def test_unreachable_redis_is_a_clear_error() -> None:
    pytest.importorskip("redis", reason="the Redis client is not installed: pip install 'kit[redis]'")
    with pytest.raises(ConfigError, match=r"redis://127\.0\.0\.1:\d+/0\) does not answer"):
        Limiter(Limits(), f"redis://127.0.0.1:{free_port()}/0")
