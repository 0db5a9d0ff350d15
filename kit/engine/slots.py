"""What the engine keeps per sequence of its llama.cpp context, and which free sequence a new request takes."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

from kit.engine.base import Generation, SamplingParams
from kit.engine.cache import MIN_GAIN
from kit.engine.sampling import Sampler

APART_GAIN = 32  # without the prompt cache, prompt tokens that justify leaving the busy sequences apart


@dataclass
class Slot:
    seq: int
    gen: Generation
    params: SamplingParams
    prompt: list[int]
    sampler: Sampler
    n_prompt_done: int = 0
    n_past: int = 0
    next_token: int | None = None
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    text: str = ""
    sent: int = 0  # characters of text already streamed

    @property
    def prefilling(self) -> bool:
        return self.n_prompt_done < len(self.prompt)


def choose_sequence(busy: set[int], held: dict[int, int], can_move: bool) -> tuple[int, int | None]:
    """The free sequence for a new request, and the free sequence whose state should move into it
    first (or None). ``held``: for each free sequence, how many tokens of the prompt it holds.

    The one that leaves the busy sequences in the fewest runs of consecutive numbers, then the one
    holding most of the prompt (see ``LlamaEngine._admit``). When another holds more of the prompt, its
    state is copied over (``can_move``: the prompt cache copies states) if that saves ``MIN_GAIN``
    tokens, a copy costing far less than reading them; without the cache, that one is taken if it saves
    ``APART_GAIN`` tokens (a split micro-batch costs every step of every busy sequence)."""
    def runs(i: int) -> int:
        seqs = busy | {i}
        return sum(1 for s in seqs if s - 1 not in seqs)

    seq = min(held, key=lambda i: (runs(i), -held[i], i))
    best = max(held, key=lambda i: (held[i], -i))
    if can_move:
        return (seq, best) if held[best] >= held[seq] + MIN_GAIN else (seq, None)
    return (best, None) if held[best] >= held[seq] + APART_GAIN else (seq, None)


@dataclass
class Pending:
    gen: Generation
    params: SamplingParams
    prompt: list[int]
