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
        else:
            assert after.prompt_cache_restores == 0
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
    assert cache.best([*range(50), 99], beat=40) is None  # not enough gain over what a slot holds
