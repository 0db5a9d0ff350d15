"""When the engine starts a step (kit.engine.gather), on the real model: requests the server announced, and
a burst that follows one that ended together, are read in one step instead of splitting into groups one
step apart; the waits are bounded and a lone request is not held. The step count is the witness: N
tokens for requests read together take N steps, one more for each group that starts a step late."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kit.engine import gather
from kit.engine.base import SamplingParams, collect
from kit.engine.gather import ARRIVING_S, Gathering

TOKENS = 6
QUESTIONS = ["Quelle est la capitale de la France ?", "Write one sentence about the sea.",
             "Donne un conseil pour écrire un courriel clair.", "What is a spreadsheet?"]


def _model() -> Path:
    from kit.bench.inputs import packaged_default

    return packaged_default()


@pytest.fixture(scope="module", params=[True, False], ids=["gather", "no-gather"])
def engine(request: pytest.FixtureRequest) -> Any:
    from kit.engine.llama import LlamaEngine

    e = LlamaEngine(_model(), parallel=4, ctx=512, threads=2, warm_up=False, gather=request.param)
    yield e
    e.close()


def _params() -> SamplingParams:
    return SamplingParams(max_tokens=TOKENS, temperature=0, ignore_eos=True)


def _finish(gens: list[Any]) -> None:
    for g in gens:
        _, last = collect(g)
        assert last.finish_reason == "length", last.error


def _steps_for(engine: Any, send: Any) -> int:
    before = engine.stats.steps
    _finish(send())
    return int(engine.stats.steps - before)


@pytest.mark.slow
def test_requests_announced_together_are_read_in_one_step(engine: Any) -> None:
    def send() -> list[Any]:
        arrivals = [engine.gathering.arrive() for _ in QUESTIONS]  # as the server does when they reach it
        gens = []
        for question, arrival in zip(QUESTIONS, arrivals, strict=True):
            time.sleep(0.005)  # each is prepared in turn (checks, rendering) before it reaches the engine
            gens.append(engine.submit_chat([{"role": "user", "content": question}], _params()))
            arrival.leave()
        return gens

    steps = _steps_for(engine, send)
    if engine.gathering.enabled:
        assert steps == TOKENS
    else:  # the first is read alone while the others are prepared: they finish a step (or more) later
        assert steps > TOKENS


@pytest.mark.slow
def test_a_burst_after_one_that_ended_together_is_read_in_one_step(engine: Any) -> None:
    def wave(spread: float) -> list[Any]:
        gens = []
        for question in QUESTIONS:
            gens.append(engine.submit_chat([{"role": "user", "content": question}], _params()))
            time.sleep(spread)
        return gens

    _finish(wave(0.0))  # four sequences finish in the same step...
    steps = _steps_for(engine, lambda: wave(0.005))  # ...and their clients send the next four, a few ms apart
    if engine.gathering.enabled:
        assert steps == TOKENS
    else:
        assert steps > TOKENS


def test_a_lone_request_is_not_held_and_a_missing_one_not_awaited_for_long() -> None:
    cv = threading.Condition()
    g = Gathering(cv)
    with cv:
        start = time.perf_counter()
        g.wait(lambda: 1, 4, True, lambda: False)  # idle, nothing announced, nothing ran lately
        assert time.perf_counter() - start < 0.01
        for _ in range(5):
            g.stepped(1, 0.02)  # requests one after the other, one sequence at a time
        start = time.perf_counter()
        g.wait(lambda: 1, 4, True, lambda: False)  # the next one is not held
        assert time.perf_counter() - start < 0.01
    g.arrive()  # announced, never submitted (the client went away): waited for ARRIVING_S at most
    with cv:
        start = time.perf_counter()
        g.wait(lambda: 1, 4, False, lambda: False)
        waited = time.perf_counter() - start
    assert ARRIVING_S * 0.8 <= waited < ARRIVING_S + 0.5
    with cv:
        start = time.perf_counter()
        g.wait(lambda: 1, 4, False, lambda: False)  # past its time: not waited for again
        assert time.perf_counter() - start < 0.01


def test_requests_received_together_are_all_announced_before_the_first_is_prepared() -> None:
    class Engine:
        gathering = Gathering(threading.Condition())

    engine = Engine()
    seen: list[int] = []

    async def handler(leave_early: bool) -> None:
        async with gather.announce(engine):
            seen.append(engine.gathering.arriving)
            if leave_early:
                gather.leave()  # e.g. a personal-data scan in a worker thread: the engine stops waiting
                seen.append(engine.gathering.arriving)

    async def main() -> None:
        await asyncio.gather(handler(True), handler(False), handler(False))

    asyncio.run(main())
    assert seen[:2] == [3, 2]  # the first handler ran on only once all three were announced
    assert engine.gathering.arriving == 0  # every announcement ends with its handler


def _post(sock: Any, question: str) -> None:
    import json

    body = json.dumps({"messages": [{"role": "user", "content": question}], "max_tokens": TOKENS,
                       "temperature": 0, "ignore_eos": True}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def _answer(sock: Any) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.slow
def test_the_first_requests_of_connections_opened_together_are_read_in_one_step(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users (or a script's workers) that open their connections at once and send their requests a few ms
    apart: each connection is announced when it opens (`kit engine` and `kit serve` over real HTTP), so the
    first request is not read alone with the others a step later."""
    import socket

    from helpers import serve_app

    from kit.gateway.engine_api import create_engine_app

    url, stop = serve_app(create_engine_app(engine, api_key=None, name="t"), engine=engine)
    port = int(url.rsplit(":", 1)[1])
    socks: list[Any] = []
    try:
        # The engine last ran one sequence, long enough ago: no wait for the rest of a burst can gather
        # these, only the connections' announcements.
        time.sleep(gather.RECENT_S + 0.05)
        _finish([engine.submit_chat([{"role": "user", "content": QUESTIONS[0]}], _params())])
        time.sleep(gather.RECENT_S + 0.05)
        before = engine.stats.steps
        with monkeypatch.context() as patch:
            # What is tested is the announcement, not the length of its window: a window wide enough that a
            # loaded machine (the client and the server share this process) does not close it first.
            patch.setattr(gather, "CONNECTING_S", 1.0)
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in QUESTIONS]
            for sock, question in zip(socks, QUESTIONS, strict=True):
                time.sleep(0.008)  # each client writes its request in turn
                _post(sock, question)
            answers = [_answer(s) for s in socks]
        steps = engine.stats.steps - before
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers[0][:300]
        if engine.gathering.enabled:
            assert steps == TOKENS
        else:
            assert steps > TOKENS

        # A connection that asks for something else stops being waited for at once; a spare connection
        # that sends nothing is forgotten once its time is up.
        spare = socket.create_connection(("127.0.0.1", port))
        with socket.create_connection(("127.0.0.1", port)) as probe:
            probe.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert probe.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(gather.CONNECTING_S + 0.02)
            with engine.gathering._cv:  # the engine's next wait forgets the spare connection
                engine.gathering.wait(lambda: 0, 1, True, lambda: False)
                assert engine.gathering.arriving == 0
        spare.close()
    finally:
        for s in socks:
            s.close()
        stop()


def test_after_a_pause_the_rest_of_a_burst_as_wide_as_the_last_is_briefly_awaited() -> None:
    """A burst after a pause: its first request often comes on a connection already open, the others on new
    connections milliseconds later. The engine that last ran 4 sequences waits AFTER_IDLE_S for them, once:
    a lone request then runs alone, and the next one is not held."""
    cv = threading.Condition()
    g = Gathering(cv)
    g.stepped(4, 0.05)
    time.sleep(gather.RECENT_S + 0.05)
    with cv:
        start = time.perf_counter()
        g.wait(lambda: 1, 4, True, lambda: False)
        waited = time.perf_counter() - start
    assert gather.AFTER_IDLE_S * 0.8 <= waited < gather.AFTER_IDLE_S + 0.5
    g.stepped(1, 0.01)  # it ran alone
    time.sleep(gather.RECENT_S + 0.05)
    with cv:
        start = time.perf_counter()
        g.wait(lambda: 1, 4, True, lambda: False)
        assert time.perf_counter() - start < 0.01


def test_without_httptools_no_connection_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's pure-Python parser has no hook that hands a connection's announcement to its request: a
    server running on it announces no connection, rather than one that nothing would end."""
    import importlib.util
    import socket

    from helpers import serve_app

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "httptools" else
                        find_spec(name, *a))

    class Engine:
        gathering = Gathering(threading.Condition())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    url, stop = serve_app(app, engine=Engine())
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            assert Engine.gathering.arriving == 0
    finally:
        stop()
