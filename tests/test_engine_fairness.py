"""The engine's queue is fair across users: a free sequence goes to the waiting request whose owner has the
fewest sequences running (round-robin between owners, first in first out within one), so that one user's
many generations cannot hold every sequence while another user's request waits; on the real model, a short
request of a second user ends long before the first user's long generations."""

from __future__ import annotations

import time

import pytest

from kit.engine.base import Generation, SamplingParams, collect
from kit.engine.slots import Pending
from kit.engine.waiting import WaitingQueue


def _pending(owner: str | None, label: str) -> Pending:
    p = Pending(Generation(), SamplingParams(owner=owner), [1, 2, 3])
    p.label = label  # type: ignore[attr-defined]
    return p


def _order(queue: WaitingQueue, running: list[str | None], free: int) -> list[str]:
    """Labels of the requests that take `free` sequences one after the other (each joins the running ones)."""
    taken = []
    busy = list(running)
    for _ in range(free):
        p = queue.take(busy)
        busy.append(p.params.owner)
        taken.append(p.label)  # type: ignore[attr-defined]
    return taken


def test_a_second_users_first_request_goes_before_the_first_users_next_ones() -> None:
    q = WaitingQueue()
    for i in range(4):
        q.append(_pending("A", f"A{i}"))
    q.append(_pending("B", "B0"))
    assert _order(q, ["A", "A", "A", "A"], 1) == ["B0"]
    assert len(q) == 4


def test_owners_take_turns_and_each_keeps_its_order() -> None:
    q = WaitingQueue()
    for label in ("A0", "A1", "A2", "B0", "B1", "C0"):
        q.append(_pending(label[0], label))
    assert _order(q, [], 6) == ["A0", "B0", "C0", "A1", "B1", "A2"]


def test_the_owner_with_fewest_running_goes_first_and_ties_keep_arrival_order() -> None:
    q = WaitingQueue()
    q.append(_pending("A", "A0"))
    q.append(_pending("B", "B0"))
    q.append(_pending("C", "C0"))
    assert _order(q, ["A", "A", "B"], 3) == ["C0", "B0", "A0"]


def test_requests_without_an_owner_each_count_as_their_own() -> None:
    q = WaitingQueue()
    q.append(_pending("A", "A0"))
    q.append(_pending(None, "x"))
    q.append(_pending(None, "y"))
    assert _order(q, ["A"], 3) == ["x", "y", "A0"]
    q.append(_pending(None, "z"))
    assert _order(q, [None, None, None], 1) == ["z"]


def test_popleft_and_iteration_keep_arrival_order() -> None:
    q = WaitingQueue()
    for label in ("A0", "B0", "A1"):
        q.append(_pending(label[0], label))
    assert [p.label for p in q] == ["A0", "B0", "A1"]  # type: ignore[attr-defined]
    assert q.popleft().label == "A0"  # type: ignore[attr-defined]
    with pytest.raises(IndexError):
        WaitingQueue().take([])


@pytest.mark.slow
def test_one_user_filling_every_sequence_does_not_hold_the_engine() -> None:
    """User A fills every sequence with long generations and queues as many more; user B's short request,
    sent after, takes the first sequence that frees instead of waiting behind all of A's."""
    from kit.bench.inputs import packaged_default
    from kit.engine.llama import LlamaEngine

    parallel = 2
    engine = LlamaEngine(packaged_default(), parallel=parallel, ctx=1024, threads=2, warm_up=False)
    try:
        messages = [{"role": "user", "content": "Write a long story about a lighthouse."}]
        long_a = SamplingParams(max_tokens=200, temperature=0, ignore_eos=True, owner="A")
        first = [engine.submit_chat(messages, long_a, None) for _ in range(parallel)]
        later = [engine.submit_chat(messages, long_a, None) for _ in range(parallel)]
        b = engine.submit_chat([{"role": "user", "content": "Say hi."}],
                               SamplingParams(max_tokens=3, temperature=0, owner="B"), None)
        _, last = collect(b)
        b_end = time.perf_counter()
        assert last.finish_reason in ("stop", "length"), last.error
        for g in first + later:
            collect(g)
        assert all(g.completion_tokens == 200 for g in first + later)
        first_end = max(g.token_times[-1] for g in first)
        a_end = max(g.token_times[-1] for g in later)
        # B took the first sequence that freed, beside A's second round: done long before A's last token
        # (first in, first out, it would have waited for A's whole second round)
        assert b_end < first_end + 0.5 * (a_end - first_end), (b_end - first_end, a_end - first_end)
    finally:
        engine.close()


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [128, 512])
def test_a_long_prompt_is_read_prefill_chunk_tokens_a_step_beside_an_answer(chunk: int) -> None:
    """While a sequence is answering, a new long prompt is read ``server.prefill_chunk`` tokens a step (each step
    also writes one token of the answer): the answer's tokens written between the new request's arrival and its
    first token count those steps."""
    import math

    from kit.bench.inputs import packaged_default
    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(packaged_default(), parallel=2, ctx=1024, threads=2, warm_up=False, prompt_cache_mb=0,
                         prefill_chunk=chunk)
    try:
        a = engine.submit_chat([{"role": "user", "content": "Write a long story about a lighthouse."}],
                               SamplingParams(max_tokens=120, temperature=0, ignore_eos=True), None)
        while not a.token_times:
            time.sleep(0.01)
        text = " ".join(f"Article {i} : le service des archives conserve les dossiers du personnel." for i in range(40))
        sent = time.perf_counter()
        b = engine.submit_chat([{"role": "user", "content": text + " Résume."}],
                               SamplingParams(max_tokens=2, temperature=0), None)
        collect(b)
        collect(a)
        steps = sum(1 for t in a.token_times if sent < t <= b.token_times[0])
        expected = math.ceil(b.prompt_tokens / chunk)
        assert b.prompt_tokens > 512 and a.completion_tokens == 120
        assert expected - 1 <= steps <= expected + 1, (steps, expected, b.prompt_tokens)
    finally:
        engine.close()
