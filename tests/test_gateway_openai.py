"""The OpenAI-compatible gateway with the real engine (SmolLM2) on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import json
import random
import re
import time
from pathlib import Path

import httpx
import pytest
from helpers import ServerHandle, install_model, sse_events, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gw(gateway: ServerHandle) -> ServerHandle:
    gateway.acknowledge("alice")
    return gateway


def chat_body(text: str = "Say hello.", **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 16, "temperature": 0, **extra}


def test_health_models_metrics(gw: ServerHandle) -> None:
    h = httpx.get(gw.url + "/health").json()
    assert h["status"] == "ok" and h["model"] == "smollm2-135m-instruct"
    models = httpx.get(gw.url + "/v1/models").json()
    assert models["data"][0]["id"] == "smollm2-135m-instruct"
    assert len(models["data"][0]["kit"]["sha256"]) == 64
    before = httpx.get(gw.url + "/metrics").text
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers("alice"), timeout=60,
                   json=chat_body("Bonjour", max_tokens=4, ignore_eos=True))
    assert r.status_code == 200, r.text
    text = httpx.get(gw.url + "/metrics").text
    for name in ("kit_active_sequences", "kit_queued_requests", "kit_time_to_first_token_seconds",
                 "kit_inter_token_latency_seconds", "kit_requests", "kit_prompt_cache_restores_total",
                 "kit_prompt_cache_bytes"):
        assert name in text

    def counter(page: str, name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", page, re.M)
        assert found, name
        return float(found.group(1))

    # 4 tokens: at least 4 decode calls (the prompt, then one per token after the first)
    assert counter(text, "kit_engine_steps_total") - counter(before, "kit_engine_steps_total") >= 4
    assert counter(text, "kit_completion_tokens_total") - counter(before, "kit_completion_tokens_total") == 4


def test_openai_client_chat_stream_and_choices(gw: ServerHandle) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=gw.url + "/v1", api_key="unused", default_headers=gw.headers("alice"))
    r = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=12, temperature=0,
                                       messages=[{"role": "user", "content": "What is 2+2?"}])
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 5
    extra = r.model_extra or {}
    assert extra["kit"]["ai_generated"] is True and extra["kit"]["model"] == "smollm2-135m-instruct"
    parts = []
    stream = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=12, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": "What is 2+2?"}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == r.choices[0].message.content  # same greedy answer, streamed
    two = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=12, temperature=1.0, n=2, seed=7,
                                         messages=[{"role": "user", "content": "Name a colour."}])
    assert len(two.choices) == 2 and {c.index for c in two.choices} == {0, 1}
    texts, finished = ["", ""], set()
    for chunk in client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=12, temperature=1.0, n=2,
                                                seed=7, stream=True,
                                                messages=[{"role": "user", "content": "Name a colour."}]):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1} and all(texts)  # both answers streamed, interleaved, each to its end
    comp = client.completions.create(model="smollm2-135m-instruct", prompt="The capital of France is", max_tokens=5,
                                     temperature=0)
    assert comp.choices[0].text


def test_stop_strings_and_max_tokens(gw: ServerHandle) -> None:
    r = httpx.post(gw.url + "/v1/completions", headers=gw.headers(), timeout=60,
                   json={"prompt": "1, 2, 3, 4, 5,", "max_tokens": 30, "temperature": 0, "stop": [" 8"]}).json()
    assert " 8" not in r["choices"][0]["text"] and r["choices"][0]["finish_reason"] == "stop"
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=60,
                   json=chat_body("Write a long story about a cat.", max_tokens=5)).json()
    assert r["usage"]["completion_tokens"] == 5 and r["choices"][0]["finish_reason"] == "length"


def test_ignore_eos_generates_max_tokens(gw: ServerHandle) -> None:
    """`ignore_eos` (as llama.cpp's server and vLLM take it): the end-of-text token is never sampled,
    so every answer has max_tokens tokens; without it the same greedy answer ends early."""
    url, body = gw.url + "/v1/chat/completions", chat_body("What is 2+2?", max_tokens=48)
    short = httpx.post(url, headers=gw.headers(), timeout=120, json=body).json()
    assert short["choices"][0]["finish_reason"] == "stop" and short["usage"]["completion_tokens"] < 48
    full = httpx.post(url, headers=gw.headers(), timeout=120, json={**body, "ignore_eos": True}).json()
    assert full["choices"][0]["finish_reason"] == "length" and full["usage"]["completion_tokens"] == 48
    assert full["choices"][0]["message"]["content"].startswith(short["choices"][0]["message"]["content"].strip()[:3])


def test_repetition_penalties_are_applied_and_the_engine_lives_on(gw: ServerHandle) -> None:
    """OpenAI clients often send frequency_penalty / presence_penalty (and llama.cpp's clients
    repeat_penalty): the answer comes back, and the engine goes on serving the next requests."""
    url = gw.url + "/v1/chat/completions"
    plain = chat_body("List the days of the week.", max_tokens=40)
    first = httpx.post(url, headers=gw.headers(), timeout=120, json=plain).json()
    penalised = httpx.post(url, headers=gw.headers(), timeout=120,
                           json={**plain, "repeat_penalty": 1.5, "frequency_penalty": 1.5, "presence_penalty": 1.0})
    assert penalised.status_code == 200, penalised.text
    answer = penalised.json()["choices"][0]["message"]["content"]
    assert answer and answer != first["choices"][0]["message"]["content"]  # the penalties changed the greedy answer
    again = httpx.post(url, headers=gw.headers(), timeout=120, json=plain).json()
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]


def test_health_says_starting_until_warm(gw: ServerHandle) -> None:
    """While `kit serve` loads the personal-data models, /health is 503 "starting" (no user is sent to it)."""
    warm = gw.app.state.context.warm
    warm.clear()
    try:
        r = httpx.get(gw.url + "/health", timeout=30)
        assert r.status_code == 503 and r.json()["status"] == "starting"
    finally:
        warm.set()
    r = httpx.get(gw.url + "/health", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_include_usage_in_stream(gw: ServerHandle) -> None:
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=60,
                      json=chat_body(stream=True, stream_options={"include_usage": True})) as r:
        events = list(sse_events(r.iter_lines()))
    assert events[0]["kit"]["ai_generated"] is True
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_a_stream_ends_before_its_audit_row_is_written(gw: ServerHandle) -> None:
    """The end of a streamed answer (its last chunk, [DONE] and the end of the HTTP response) does not wait
    for the audit row's write, which waits for the disk: here another connection holds the database's
    write lock while the answer is read. The row is written once the lock is free."""
    import sqlite3

    def mine() -> int:
        who = gw.state.audit.pseudonym("dora")
        return sum(1 for row in gw.state.audit.rows() if row.user == who and row.action == "chat")

    gw.acknowledge("dora")
    before = mine()
    lock = sqlite3.connect(gw.settings.home / "kit.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock, as a long write elsewhere would hold it
    try:
        with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers("dora"), timeout=10,
                          json=chat_body("Say hello.", stream=True)) as r:
            lines = list(r.iter_lines())  # the whole response: a read timeout here if it waited for the row
        assert r.status_code == 200 and "data: [DONE]" in lines
        assert mine() == before  # not written yet: the lock is still held
    finally:
        lock.execute("COMMIT")
        lock.close()
    deadline = time.time() + 30
    while mine() == before and time.time() < deadline:
        time.sleep(0.05)
    assert mine() == before + 1


def test_errors_name_the_problem(gw: ServerHandle) -> None:
    url = gw.url + "/v1/chat/completions"
    r = httpx.post(url, content=b"{not json", headers={**gw.headers(), "content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(url, headers=gw.headers(), json={"messages": "hello"})
    assert r.status_code == 422 and "messages" in r.json()["error"]["message"]
    r = httpx.post(url, headers=gw.headers(), json=chat_body(max_tokens=-3))
    assert r.status_code == 422 and "max_tokens" in r.json()["error"]["message"]
    r = httpx.post(url, headers=gw.headers(), json=chat_body(temperature="hot"))
    assert r.status_code == 422 and "temperature" in r.json()["error"]["message"]
    r = httpx.post(url, headers=gw.headers(), json=chat_body(model="gpt-4"))
    assert r.status_code == 404 and "gpt-4" in r.json()["error"]["message"]
    r = httpx.post(url, headers=gw.headers(), content=b"x" * 2_000_000)
    assert r.status_code == 413
    long = "word " * 1500  # about 1500 tokens: over the 1024-token context of this test server
    r = httpx.post(url, headers=gw.headers(), json=chat_body(long), timeout=60)
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "tokens but the context holds 1024" in msg


def test_acknowledgement_required(gw: ServerHandle) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers("bob"), json=chat_body())
    assert r.status_code == 403 and "acknowledge" in r.json()["error"]["message"]


def test_concurrent_streams_all_complete(gw: ServerHandle) -> None:
    users = [f"streamer{k}" for k in range(4)]  # two streams each: under the default cap (3 at --parallel 4)
    for user in users:
        gw.acknowledge(user)

    def one(i: int) -> tuple[str, str | None]:
        text, finish = "", None
        body = chat_body(f"Tell me a fact about the number {i}.", max_tokens=32, stream=True)
        with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers(users[i % 4]), json=body,
                          timeout=120) as r:
            assert r.status_code == 200
            for ev in sse_events(r.iter_lines()):
                ch = ev["choices"][0]
                text += ch["delta"].get("content") or ""
                finish = ch["finish_reason"] or finish
        return text, finish

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(text.strip() for text, _ in results)
    assert all(finish in ("stop", "length") for _, finish in results)
    # the same prompt alone gives the same greedy text as under load (batching does not change results)
    alone, _ = one(3)
    assert alone == results[3][0]


def test_disconnect_frees_sequences(gw: ServerHandle) -> None:
    for _ in range(3):
        with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=60,
                          json=chat_body("Write a very long essay about rivers.", max_tokens=400, stream=True)) as r:
            for i, _line in enumerate(r.iter_lines()):
                if i > 6:
                    break  # leave mid-stream
    deadline = time.time() + 20
    while time.time() < deadline and (gw.engine.stats.active or gw.engine.stats.queued):
        time.sleep(0.1)
    assert gw.engine.stats.active == 0 and gw.engine.stats.queued == 0
    # non-streaming request whose client goes away
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=0.5,
                   json=chat_body("Write a very long essay about mountains.", max_tokens=400))
    deadline = time.time() + 20
    while time.time() < deadline and gw.engine.stats.active:
        time.sleep(0.1)
    assert gw.engine.stats.active == 0


def test_hostile_requests_get_4xx_and_server_survives(gw: ServerHandle) -> None:
    rng = random.Random(1234)
    junk_values: list[object] = [None, -1, -10**12, 10**12, 1.5e308, "", "x" * 300, [], {}, [1, 2], {"a": 1}, True,
                                 "\u0000", "🙂" * 50]
    fields = ["messages", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "model", "stream", "prompt",
              "top_k", "min_p", "presence_penalty", "frequency_penalty", "stream_options", "max_completion_tokens"]
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=30, headers=gw.headers()) as client:
        for i in range(500):
            kind = i % 5
            path = "/v1/chat/completions" if rng.random() < 0.8 else "/v1/completions"
            if kind == 0:
                content = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
                r = client.post(gw.url + path, content=content, headers={"content-type": "application/json"})
            elif kind == 1:
                body = {f: rng.choice(junk_values) for f in rng.sample(fields, rng.randint(1, 6))}
                body[rng.choice(["max_tokens", "n", "top_p"])] = rng.choice([-1, 0, "x", [3]])  # always invalid
                r = client.post(gw.url + path, json=body)
            elif kind == 2:
                body = chat_body()
                body[rng.choice(fields)] = rng.choice(junk_values)
                body["messages"] = rng.choice([[], [{"role": "wizard", "content": "x"}], [{"content": 3}],
                                               [{"role": "user", "content": {"x": 1}}], "hi"])
                r = client.post(gw.url + path, json=body)
            elif kind == 3:
                r = client.post(gw.url + path, content=b"[" * rng.randint(1, 5000),
                                headers={"content-type": "application/json"})
            else:
                r = client.post(gw.url + path,
                                json=json.loads(f'{{"model": "unknown-{i}"}}') | chat_body(model=f"m{i}"))
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert 400 <= r.status_code < 500, (i, r.status_code, r.text[:200])
            assert "error" in r.json()
    assert httpx.get(gw.url + "/health").json()["status"] == "ok"
    ok = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(), json=chat_body(), timeout=60)
    assert ok.status_code == 200, statuses


def test_queue_full_gives_429(model_store: Path, tmp_path: Path) -> None:
    home = install_model(model_store, tmp_path / "h")
    handle, stop = start_server(home, tmp_path / "k.yaml", parallel=1, server={"max_queue": 1},
                                limits={"user": {"concurrent": 0}})  # the engine's queue, not the per-user cap
    try:
        handle.acknowledge()
        body = chat_body("Write a very long essay about the sea.", max_tokens=200, stream=True)
        streams = [httpx.stream("POST", handle.url + "/v1/chat/completions", headers=handle.headers(), json=body,
                                timeout=60) for _ in range(2)]
        opened = [s.__enter__() for s in streams]
        try:
            r = httpx.post(handle.url + "/v1/chat/completions", headers=handle.headers(), json=chat_body())
            assert r.status_code == 429 and r.headers["retry-after"]
        finally:
            for s in streams:
                s.__exit__(None, None, None)
        assert all(o.status_code == 200 for o in opened)
    finally:
        stop()


def test_api_keys_and_exposure(model_store: Path, tmp_path: Path) -> None:
    from helpers import write_config

    from kit.config import load_settings
    from kit.errors import ConfigError
    from kit.rules.policy import Gate
    from kit.storage.keys import create_key
    from kit.storage.state import open_state

    home = install_model(model_store, tmp_path / "h")
    cfg = write_config(tmp_path / "k.yaml", server={"host": "0.0.0.0"})
    import os

    os.environ["KIT_HOME"] = str(home)
    settings = load_settings(cfg)
    state = open_state(settings)
    with pytest.raises(ConfigError, match="no API key exists"):
        Gate(settings, state)
    key, _ = create_key(settings, "app", "user")
    Gate(settings, state)  # with a key, the exposed address is accepted
    state.close()
    handle, stop = start_server(home, tmp_path / "k2.yaml")
    try:
        assert httpx.get(handle.url + "/v1/models").status_code == 401
        bad = httpx.get(handle.url + "/v1/models", headers={"Authorization": "Bearer kit-wrong"})
        assert bad.status_code == 401 and "not valid" in bad.json()["error"]["message"]
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(handle.url + "/v1/chat/completions", headers=auth, json=chat_body(), timeout=60)
        assert r.status_code == 200, r.text  # acknowledged when the key was created
        # a plain user key cannot speak for someone else, nor reach the admin views
        r = httpx.get(handle.url + "/v1/admin/stats", headers={**auth, "X-Kit-User": "boss", "X-Kit-Role": "admin"})
        assert r.status_code == 403
    finally:
        stop()
