"""The engine's prompt cache in host memory.

A sequence's KV cells are overwritten as soon as its slot serves another request, so with more
conversations than slots their beginnings would be read again at every turn. Before a slot is
reused, the engine copies the state of its sequence (``llama_state_seq_get_data``) here, keyed by
the tokens it holds; a new request whose prompt starts with more of an entry's tokens than any free
slot holds gets that state back (``llama_state_seq_set_data``) and reads only the rest. Entries are
dropped least recently used first, within ``max_bytes``. The copies land in memory made ahead of
need (:mod:`kit.engine.buffers`).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kit.engine.buffers import StateBuffer, StateBuffers
from kit.engine.text import common_prefix

# A restore must save at least this many prompt tokens over what the slot holds. Copying a state in costs
# far less than reading its tokens again (a memory copy of their KV cells against a pass of the model
# per token: about 1 ms for a hundred cached tokens against 6 ms per token read, SmolLM2 on 2 cores).
MIN_GAIN = 4


@dataclass
class Entry:
    tokens: tuple[int, ...]
    state: Any  # what llama_state_seq_get_data wrote: a StateBuffer (or bytes)


class PromptCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.hits = 0
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self.buffers = StateBuffers(keep_bytes=min(max_bytes // 8, 128 * 2**20))

    def close(self) -> None:
        self._entries.clear()
        self.used = 0
        self.buffers.close()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held(self) -> int:
        """Host memory held: the states kept, and the spare buffers for the next ones."""
        return self.used + self.buffers.free_bytes

    def holds(self, tokens: list[int]) -> bool:
        """Whether an entry already holds ``tokens`` (they are the whole entry or its beginning): saving
        them again would copy the same cells (a conversation asked again, an answer given again)."""
        key = tuple(tokens)
        return any(len(k) >= len(key) and k[: len(key)] == key for k in self._entries)

    def put(self, tokens: list[int], state: Any) -> None:
        """Keep ``state`` for ``tokens`` (an entry that is a prefix of it goes: this one covers it)."""
        if not tokens or len(state) > self.max_bytes:
            self.buffers.give(state)
            return
        key = tuple(tokens)
        for other in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(self._entries.pop(other))
        self._entries[key] = Entry(key, state)
        self.used += len(state)
        while self.used > self.max_bytes and self._entries:
            self._drop(self._entries.popitem(last=False)[1])

    def _drop(self, entry: Entry) -> None:
        self.used -= len(entry.state)
        self.buffers.give(entry.state)  # its memory serves a later state

    def best(self, prompt: list[int], beat: int) -> tuple[Entry, int] | None:
        """The entry sharing the longest prefix with ``prompt``, if it beats ``beat`` by MIN_GAIN tokens."""
        found: tuple[Entry, int] | None = None
        first = prompt[0] if prompt else None
        for entry in self._entries.values():
            if not entry.tokens or entry.tokens[0] != first:
                continue
            n = common_prefix(list(entry.tokens), prompt)
            if n >= beat + MIN_GAIN and (found is None or n > found[1]):
                found = (entry, n)
        if found is not None:
            self._entries.move_to_end(found[0].tokens)
            self.hits += 1
        return found

    def ended(self, L: Any, ctx: Any, seq: int, tokens: list[int]) -> None:
        """Sequence ``seq`` ended holding ``tokens``: unless an entry holds them already, memory for its state
        is made now, ready for when the sequence serves another request and its state is kept."""
        if not self.holds(tokens):
            self.buffers.prepare(seq, L.llama_state_seq_get_size(ctx, seq))

    def save(self, L: Any, ctx: Any, seq: int, tokens: list[int]) -> None:
        """Keep sequence ``seq``'s state (its KV cells, holding ``tokens``), unless an entry holds them."""
        if self.holds(tokens):
            self.buffers.release(seq)
            return
        entry = self.snapshot(L, ctx, seq, tokens)
        if entry is not None:
            self.put(list(entry.tokens), entry.state)

    def snapshot(self, L: Any, ctx: Any, seq: int, tokens: list[int]) -> Entry | None:
        """A copy of sequence ``seq``'s state out of the llama.cpp context ``ctx`` (None if it is empty, or
        if there is no memory left for it: the cache then just does not keep it)."""
        size = L.llama_state_seq_get_size(ctx, seq)
        if not size:
            return None
        try:
            buf = self.buffers.take(seq, size)
        except MemoryError:
            return None
        buf.size = L.llama_state_seq_get_data(ctx, buf.view(size), size, seq)
        if not buf.size:
            self.buffers.give(buf)
            return None
        return Entry(tuple(tokens), buf)

    @staticmethod
    def restore(L: Any, ctx: Any, mem: Any, seq: int, entry: Entry) -> bool:
        """Put ``entry``'s state into sequence ``seq`` (emptied first); False, and ``seq`` empty, on failure."""
        L.llama_memory_seq_rm(mem, seq, -1, -1)
        state = entry.state
        if isinstance(state, StateBuffer):
            src, size = state.view(), state.size
        else:
            src, size = (ctypes.c_uint8 * len(state)).from_buffer_copy(state), len(state)
        if L.llama_state_seq_set_data(ctx, src, size, seq):
            return True
        L.llama_memory_seq_rm(mem, seq, -1, -1)
        return False
