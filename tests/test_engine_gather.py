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
