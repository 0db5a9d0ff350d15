"""The engine's sampling shortcut (kit.engine.sampling), on the real model: the tokens are the ones
llama.cpp's full sampler chain picks — greedy, greedy with ignore_eos, and seeded top-k/top-p/min-p
draws — and chains that need every token (repetition penalties) keep the full path.

Two engines run the same requests one after the other, one with the shortcut and one without, each
with one sequence and no prompt cache, so llama.cpp computes the same logits in both."""

from __future__ import annotations

import pytest

from kit.engine.base import SamplingParams, collect
from kit.engine.sampling import Sampler

pytestmark = pytest.mark.slow

PROMPTS = [
    [{"role": "user", "content": "Rédige une phrase pour annoncer la fermeture du service vendredi."}],
    [{"role": "user", "content": "Give three tips to write a clear e-mail."}],
]
PARAMS = [
    SamplingParams(max_tokens=24, temperature=0),
    SamplingParams(max_tokens=24, temperature=0, ignore_eos=True),
    SamplingParams(max_tokens=24, temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, seed=1234),
    SamplingParams(max_tokens=24, temperature=1.2, top_k=8, top_p=1.0, min_p=0.0, seed=7),
]


def _answers(shortcut: bool) -> list[tuple[str, str | None, int]]:
    from kit.bench.inputs import packaged_default
    from kit.engine.llama import LlamaEngine

    engine = LlamaEngine(packaged_default(), parallel=1, ctx=512, threads=2, prompt_cache_mb=0, warm_up=False)
    engine.sample_shortcut = shortcut
    try:
        out = []
        for messages in PROMPTS:
            for params in PARAMS:
                gen = engine.submit_chat(messages, params, None)
                text, last = collect(gen)
                out.append((text, last.finish_reason, gen.completion_tokens))
        return out
    finally:
        engine.close()


def test_the_shortcut_picks_the_tokens_of_the_full_chain() -> None:
    full, short = _answers(False), _answers(True)
    assert short == full
    assert all(text for text, _, _ in full)
    ignore_eos = [n for i, (_, _, n) in enumerate(full) if i % len(PARAMS) == 1]
    assert ignore_eos == [24, 24]  # the end-of-generation tokens were forbidden on both paths
    assert full[2][0] != full[3][0]  # the seeded draws are draws, not the greedy answer again


def test_which_chains_take_the_shortcut() -> None:
    import llama_cpp as L

    from kit.bench.inputs import packaged_default

    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(packaged_default()).encode(), params)
    vocab = L.llama_model_get_vocab(model)
    try:
        cases = {
            1: SamplingParams(temperature=0),
            40: SamplingParams(temperature=0.7, top_k=40),
            None: SamplingParams(temperature=0.7, top_k=0),  # no top-k: any token may be drawn
        }
        for top, params_ in cases.items():
            sampler = Sampler(L, vocab, params_, [])
            assert sampler.top == top
            sampler.free()
        penalised = Sampler(L, vocab, SamplingParams(temperature=0, repeat_penalty=1.1), [])
        assert penalised.top is None  # penalties rescore every token seen: the full chain runs
        penalised.free()
    finally:
        L.llama_model_free(model)
