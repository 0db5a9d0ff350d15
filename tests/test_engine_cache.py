"""The engine's host-memory prompt cache, on the real model: a conversation whose slot served others
meanwhile gets its state back (its next turn reads only the new tokens), with the same answer as when
the slot still held it; with the cache off nothing is restored. (An answer read from cached cells is
compared with one read from cached cells: llama.cpp's sums differ slightly between a one-token batch
and a whole prompt, enough to change a greedy answer of a small model after a few tokens.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.engine.base import SamplingParams, collect
from kit.engine.cache import PromptCache

pytestmark = pytest.mark.slow

SYSTEM = ("Tu es l'assistant du service des ressources humaines de la mairie. Réponds en français, "
          "brièvement, sans inventer de règle, et renvoie vers le service compétent si tu ne sais pas.")


def _model() -> Path:
    from kit.bench.inputs import packaged_default

    return packaged_default()


def _ask(engine: object, messages: list[dict[str, str]]) -> str:
    gen = engine.submit_chat(messages, SamplingParams(max_tokens=12, temperature=0), None)  # type: ignore[attr-defined]
    text, last = collect(gen)
    assert last.finish_reason in ("stop", "length"), last.error
    return text


@pytest.mark.parametrize("cache_mb", [64, 0])
def test_an_evicted_conversation_gets_its_state_back(cache_mb: int) -> None:
    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(_model(), parallel=1, ctx=1024, threads=2, prompt_cache_mb=cache_mb, warm_up=False)
    try:
        first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Combien de jours de congé ?"}]
        other = [{"role": "system", "content": "You are a helpful assistant for the city's library."},
                 {"role": "user", "content": "When does the library open on Saturdays?"}]
        _ask(engine, first)
        reused = _ask(engine, first)  # read from the slot's own cells: only the last prompt token is decoded
        _ask(engine, other)  # the only slot now holds another conversation
        follow = [*first, {"role": "assistant", "content": reused},
                  {"role": "user", "content": "Et pour un temps partiel ?"}]
        before = engine.stats
        again = _ask(engine, first)
        mid = engine.stats
        if cache_mb:  # the restored cells are those the slot held: the same greedy answer as from the slot
            assert again == reused
        _ask(engine, other)
        _ask(engine, follow)
        after = engine.stats
        prompt = len(engine.tokenize(engine.render_chat(first)))
        if cache_mb:
            assert mid.prompt_cache_restores == before.prompt_cache_restores + 1
            assert mid.prompt_tokens_cached - before.prompt_tokens_cached >= prompt - 1
            assert after.prompt_cache_restores == mid.prompt_cache_restores + 2  # `other`, then the follow-up turn
            assert 0 < after.prompt_cache_bytes <= cache_mb * 2**20 + 16 * 2**20  # the states, and spare buffers
        else:
            assert after.prompt_cache_restores == 0 and after.prompt_cache_bytes == 0
            assert mid.prompt_tokens_cached - before.prompt_tokens_cached < prompt // 2
    finally:
        engine.close()


def test_cache_keeps_within_its_size_and_drops_covered_prefixes() -> None:
    cache = PromptCache(max_bytes=1000)
    cache.put(list(range(40)), b"a" * 300)
    cache.put(list(range(60)), b"b" * 300)  # covers the first: it goes
    assert len(cache) == 1 and cache.used == 300
    cache.put([7] * 50, b"c" * 400)
    cache.put([9] * 50, b"d" * 400)  # over 1000 bytes: the least recently used goes
    assert cache.used <= 1000 and len(cache) == 2
    hit = cache.best([*range(50), 99], beat=10)
    assert hit is None  # range(60)'s entry was dropped by size
    cache.put(list(range(60)), b"b" * 300)
    hit = cache.best([*range(50), 99], beat=10)
    assert hit is not None and hit[1] == 50
    assert cache.best([*range(50), 99], beat=48) is None  # not enough gain over what a slot holds
    assert cache.holds(list(range(60))) and cache.holds(list(range(30)))  # an entry holds them: no new copy
    assert not cache.holds([*range(30), 99]) and not cache.holds(list(range(61)))


def test_a_request_keeps_the_busy_sequences_together() -> None:
    """A new request takes the free sequence next to the busy ones (llama.cpp runs one micro-batch per
    run of consecutive sequences); the beginning of its prompt held by another free sequence moves
    over through the cache instead of being read again."""
    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(_model(), parallel=3, ctx=1024, threads=2, prompt_cache_mb=64, warm_up=False)
    long = SamplingParams(max_tokens=600, temperature=0, ignore_eos=True)
    try:
        first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Combien de jours de congé ?"}]
        hog_a = engine.submit_chat([{"role": "user", "content": "Count from one to one thousand."}], long, None)
        hog_b = engine.submit_chat([{"role": "user", "content": "Name every city you know."}], long, None)
        _ask(engine, first)  # sequences 0 and 1 are busy: it runs in 2, which then holds it
        prompt = engine.tokenize(engine.render_chat(first))
        assert engine._kv[2][: len(prompt)] == prompt
        hog_b.cancel()
        assert collect(hog_b)[1].finish_reason == "cancelled"  # 1 is free now, next to the busy 0
        before = engine.stats
        assert _ask(engine, first)
        after = engine.stats
        assert engine._kv[1][: len(prompt)] == prompt  # it ran in 1 ...
        assert after.prompt_cache_restores == before.prompt_cache_restores + 1  # ... with 2's state moved over
        assert after.prompt_tokens_cached - before.prompt_tokens_cached >= len(prompt) - 1
        hog_a.cancel()
        collect(hog_a)
    finally:
        engine.close()


def test_the_cache_wins_over_a_free_sequence_holding_less() -> None:
    """A free sequence holding the common system prompt and a little more must not hide a cached state
    holding the whole conversation: the request takes the cache's state and reads only the last token
    (the benchmark's conversations all share a system prompt: before, they were read again, 0.5 s each)."""
    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(_model(), parallel=3, ctx=1024, threads=2, prompt_cache_mb=64, warm_up=False)
    long = SamplingParams(max_tokens=600, temperature=0, ignore_eos=True)
    try:
        conversation = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": "Combien de jours de congé ?"}]
        other = [{"role": "system", "content": SYSTEM},
                 {"role": "user", "content": "Combien de jours de congé pour un mariage ou un pacs ?"}]
        hog_a = engine.submit_chat([{"role": "user", "content": "Count from one to one thousand."}], long, None)
        _ask(engine, conversation)  # 0 is busy: it runs in 1
        hog_b = engine.submit_chat([{"role": "user", "content": "Name every city you know."}], long, None)
        _ask(engine, other)  # hog_b took 1 (its state went to the cache); this one runs in 2
        prompt = engine.tokenize(engine.render_chat(conversation))
        held_by_2 = sum(1 for a, b in zip(engine._kv[2], prompt, strict=False) if a == b)
        assert 4 <= held_by_2 < len(prompt) - 4  # 2 holds the system prompt and a little more
        hog_b.cancel()
        collect(hog_b)
        before = engine.stats
        assert _ask(engine, conversation)
        after = engine.stats
        assert engine._kv[1][: len(prompt)] == prompt  # it ran in 1, next to the busy 0 ...
        assert after.prompt_tokens_cached - before.prompt_tokens_cached == len(prompt) - 1  # ... from the cache
        hog_a.cancel()
        collect(hog_a)
    finally:
        engine.close()


def test_choose_sequence() -> None:
    from kit.engine.slots import choose_sequence

    assert choose_sequence(set(), {0: 0, 1: 0, 2: 0}, True) == (0, None)
    assert choose_sequence({0, 1}, {2: 0, 3: 0, 5: 0}, True) == (2, None)  # next to the busy ones
    assert choose_sequence({0, 2}, {1: 0, 3: 0}, True) == (1, None)  # fills the gap: one run
    assert choose_sequence({0}, {1: 3, 2: 40}, True) == (1, 2)  # 2 holds 37 more tokens: its state moves to 1
    assert choose_sequence({0}, {1: 3, 2: 40}, False) == (2, None)  # no cache to copy it through: 37 tokens, 2 is taken
    assert choose_sequence({0}, {1: 30, 2: 40}, True) == (1, 2)  # a copy costs less than reading 10 tokens
    assert choose_sequence({0}, {1: 30, 2: 32}, True) == (1, None)  # 2 tokens: not worth a copy
    assert choose_sequence({0}, {1: 30, 2: 40}, False) == (1, None)  # without the cache, 10 tokens: keep together
    assert choose_sequence({5}, {0: 0, 4: 0, 6: 50}, True) == (6, None)  # adjacent and holding the most


def test_state_buffers_are_made_ahead_and_reused() -> None:
    """Memory for a state is made by a helper thread when a sequence ends (the copy at the next request
    then lands in pages already there), given back when an entry goes, and bounded."""
    import time

    from kit.engine.buffers import StateBuffers, capacity_for

    pool = StateBuffers(keep_bytes=4 * 2**20)
    try:
        pool.prepare(0, 1_000_000)
        deadline = time.monotonic() + 10
        while pool.made_ahead == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.made_ahead == 1
        buf = pool.take(0, 1_000_000)  # the one made for sequence 0
        assert buf.capacity == capacity_for(1_000_000) >= 1_000_000 and pool.made_inline == 0
        view = buf.view(1_000_000)
        view[0], view[999_999] = 7, 9  # the memory is there and writable
        assert bytes(buf.view(1_000_000)[999_999:]) == b"\x09"
        other = pool.take(1, 1_000_000)  # nothing made for sequence 1: made here
        assert pool.made_inline == 1 and other.addr != buf.addr
        pool.give(buf)
        again = pool.take(2, 900_000)  # a buffer given back of about that size serves again
        assert again is buf and pool.reused == 1
        pool.give(again)
        pool.give(other)
        pool.give(pool.take(3, 3_500_000))  # over the 4 MiB kept: freed, not kept
        assert pool._free_bytes <= 4 * 2**20
        pool.prepare(4, 1_000_000)
        pool.release(4)  # the sequence served another request with nothing to keep: no buffer stays reserved
        assert 4 not in pool._ready
        assert 1_000_000 <= capacity_for(1_000_000) <= 1_000_000 * 9 // 8
        assert capacity_for(7_000_000) % (1 << 19) == 0 and capacity_for(10) == 4096
    finally:
        pool.close()


def test_a_reused_sequence_is_copied_into_memory_made_ahead() -> None:
    """Two conversations through one sequence: the first one's state is kept, in memory made when it
    ended, not at the second request (that allocation used to delay every request of the step)."""
    import time

    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(_model(), parallel=1, ctx=1024, threads=2, prompt_cache_mb=64, warm_up=False)
    try:
        first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Combien de jours de congé ?"}]
        _ask(engine, first)
        assert engine._cache is not None
        buffers = engine._cache.buffers
        deadline = time.monotonic() + 10
        while buffers.made_ahead == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert buffers.made_ahead == 1
        _ask(engine, [{"role": "user", "content": "When does the library open on Saturdays?"}])
        assert len(engine._cache) == 1 and buffers.made_inline == 0
    finally:
        engine.close()


@pytest.mark.slow
def test_engine_reuses_cached_prompt_prefix(installed_home: Path) -> None:
    """A follow-up turn only reads what is new: the conversation so far is still in the sequence's cache."""
    from kit.engine.base import SamplingParams, collect
    from kit.engine.llama import LlamaEngine

    path = next((installed_home / "models").glob("*/*.gguf"))
    engine = LlamaEngine(path, parallel=2, ctx=1024)
    try:
        params = SamplingParams(max_tokens=12, temperature=0)
        turn = [{"role": "system", "content": "You are a helpful assistant for a French city hall."},
                {"role": "user", "content": "Name one French city."}]
        first, _ = collect(engine.submit_chat(turn, params))
        assert engine.stats.prompt_tokens_cached == 0
        again, _ = collect(engine.submit_chat(turn, params))
        assert again == first  # same greedy answer from the cached prefix
        cached = engine.stats.prompt_tokens_cached
        assert cached == engine.count_chat_tokens(turn) - 1
        follow = [*turn, {"role": "assistant", "content": first}, {"role": "user", "content": "And another?"}]
        gen = engine.submit_chat(follow, params)
        collect(gen)
        assert engine.stats.prompt_tokens_cached - cached >= engine.count_chat_tokens(turn)
        # another conversation in parallel does not disturb the cached one, and cancelling frees its slot
        other = engine.submit_chat([{"role": "user", "content": "Write a long poem."}],
                                   SamplingParams(max_tokens=200, temperature=0))
        other.cancel()
        collect(other)
        assert collect(engine.submit_chat(turn, params))[0] == first
    finally:
        engine.close()
