"""Token sampling for the engine: llama.cpp's sampler chains, given only the candidates they can pick.

``llama_sampler_sample`` copies every logit of the vocabulary (49,152 for SmolLM2) into a candidate
array before the chain runs: about 0.4 ms per token on a 2-core machine, for every sequence at every
step, spent between two decodes while llama.cpp's threads wait. When nothing in the chain looks past
the k best tokens, NumPy finds them instead (``argpartition``, then sorted best first) and the same
chain runs on those k: the chain's own top-k keeps them all, and top-p, min-p, temperature and the
seeded draw see exactly what they would have seen, so the token is the one the full chain picks
(``tests/test_engine_sampling.py`` checks it token for token). Greedy decoding is an argmax, which
takes the first of equal logits as llama.cpp's greedy sampler does. End-of-generation tokens that
``ignore_eos`` forbids get a logit of −inf first. Repetition penalties look at every token, and a
chain without top-k may pick any: those run as llama.cpp ships them.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from kit.engine.base import SamplingParams

_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])  # llama_token_data


class Sampler:
    """One sequence's sampler: llama.cpp's chain for ``params``, and the shortcut described above when
    the chain allows it (``top`` is then the number of candidates it needs: 1 for greedy)."""

    def __init__(self, L: Any, vocab: Any, params: SamplingParams, eog: list[int], *, shortcut: bool = True) -> None:
        self._L = L
        self._n_vocab = L.llama_vocab_n_tokens(vocab)
        self._eog = np.asarray(eog, dtype=np.int64) if params.ignore_eos else None
        penalties = params.repeat_penalty != 1.0 or bool(params.frequency_penalty) or bool(params.presence_penalty)
        self.chain = chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if params.ignore_eos and eog:
            biases = (L.llama_logit_bias * len(eog))(*[L.llama_logit_bias(t, float("-inf")) for t in eog])
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_logit_bias(self._n_vocab, len(eog), biases))
        if penalties:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_penalties(
                self._n_vocab, 64, params.repeat_penalty, params.frequency_penalty, params.presence_penalty))
        self.top: int | None = None
        if params.temperature <= 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            self.top = 1
        else:
            if params.top_k > 0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(params.top_k))
                self.top = min(params.top_k, self._n_vocab)
            if params.top_p < 1.0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(params.min_p, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(params.temperature))
            seed = 0xFFFFFFFF if params.seed is None else params.seed & 0xFFFFFFFF
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        if penalties or not shortcut:
            self.top = None
        self._candidates = np.zeros(self.top or 0, dtype=_CANDIDATE)
        self._array = L.llama_token_data_array(
            self._candidates.ctypes.data_as(L.llama_token_data_p), 0, -1, True) if self.top and self.top > 1 else None

    def sample(self, ctx: Any, idx: int) -> int:
        """The next token from the logits of batch position ``idx``."""
        L = self._L
        if self.top is None:
            return int(L.llama_sampler_sample(self.chain, ctx, idx))
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, idx), shape=(self._n_vocab,))
        if self._eog is not None:
            logits[self._eog] = -np.inf
        if self._array is None:
            token = int(logits.argmax())
        else:
            k = self.top
            best = np.argpartition(logits, -k)[-k:]
            best = best[np.argsort(-logits[best], kind="stable")]
            cand = self._candidates
            cand["id"] = best
            cand["logit"] = logits[best]
            cand["p"] = 0.0
            array = self._array
            array.size, array.selected, array.sorted = k, -1, True
            L.llama_sampler_apply(self.chain, ctypes.byref(array))
            token = int(cand["id"][array.selected])
        L.llama_sampler_accept(self.chain, token)
        return token

    def free(self) -> None:
        self._L.llama_sampler_free(self.chain)
