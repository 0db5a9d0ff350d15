"""The engine interface: what the gateway needs from whatever runs the model.

Three engines implement it: ``LlamaEngine`` (in-process llama.cpp with continuous batching, see
``kit/engine/llama.py``), ``RemoteEngine`` (any OpenAI-compatible URL: llama-server, vLLM, a `kit engine`;
see ``kit/engine/remote.py``) and ``EnginePool`` (several of them, ``kit/engine/pool.py``). The gateway only
talks to this interface. What an engine can do beyond generating is declared, with its default in
``BaseEngine``, never probed: ``submits_at_once``, ``gathering``, ``states`` and ``affinity``.

Each request carries its ``SamplingParams``, which travel with it to the engine that runs it (across the
network too); ``owner``, who it runs for, is one of them, since the engine that runs it shares its
sequences fairly by owner (``kit.engine.waiting``). The ``route`` argument of ``submit_chat`` and
``submit_completion`` only tells a pool where to send it (the conversation, whose turns go to one engine)
and goes no further.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from kit.engine.gather import Gathering

FinishReason = Literal["stop", "length", "cancelled", "timeout", "error"]
_ids = itertools.count(1)


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks: same-length outputs)
    owner: str | None = None  # who the request runs for: the engine shares its sequences fairly among owners


@dataclass
class Chunk:
    """A piece of generated text; the last chunk of a generation carries finish_reason."""

    text: str
    finish_reason: FinishReason | None = None
    error: str | None = None


@dataclass
class EngineStats:
    requests_total: int = 0
    requests_finished: int = 0
    prompt_tokens_total: int = 0
    prompt_tokens_cached: int = 0  # prompt tokens found already in a sequence's cache, not read again
    prompt_cache_restores: int = 0  # sequences given back a state kept in the host-memory prompt cache
    prompt_cache_bytes: int = 0  # host memory the prompt cache holds now (states, and spare buffers for the next)
    completion_tokens_total: int = 0
    active: int = 0
    queued: int = 0
    steps: int = 0


class Generation:
    """One running generation. The engine pushes chunks; a consumer reads them, sync or async."""

    def __init__(self, prompt_tokens: int = 0, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.id = next(_ids)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.error: str | None = None
        self.created = time.perf_counter()
        self.first_token_at: float | None = None
        self.token_times: list[float] = []
        self.cancelled = threading.Event()
        self._loop = loop
        self._sync: queue.SimpleQueue[Chunk] = queue.SimpleQueue()
        self._async: asyncio.Queue[Chunk] | None = asyncio.Queue() if loop is not None else None

    # producer side (engine thread)
    def push(self, chunk: Chunk, outbox: Outbox | None = None) -> None:
        """Hand ``chunk`` to the consumer, at once, or with ``outbox``'s next delivery."""
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.error = chunk.error
        if self._async is not None and self._loop is not None:
            if outbox is not None:
                outbox.add(self._loop, self, chunk)
                return
            try:
                self._loop.call_soon_threadsafe(self._async.put_nowait, chunk)
            except RuntimeError:  # the consumer's loop is closed: nobody reads any more
                self.cancelled.set()
        else:
            self._sync.put(chunk)

    def _put(self, chunk: Chunk) -> None:
        assert self._async is not None
        self._async.put_nowait(chunk)

    def note_token(self) -> None:
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.token_times.append(now)
        self.completion_tokens += 1

    # consumer side
    def cancel(self) -> None:
        self.cancelled.set()

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            chunk = self._sync.get()
            yield chunk
            if chunk.finish_reason is not None:
                return

    async def chunks(self) -> AsyncIterator[Chunk]:
        if self._async is None:
            raise RuntimeError("this generation was created without an event loop")
        while True:
            chunk = await self._async.get()
            yield chunk
            if chunk.finish_reason is not None:
                return

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.created

    def inter_token_latencies(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in zip(t, t[1:], strict=False)]


class Outbox:
    """Chunks an engine step produced, handed to each consumer event loop in one call when the step ends.

    Waking the event loop for every token (8 wake-ups per step at 8 streams) lets it take the GIL
    between the engine thread's calls into llama.cpp, so the scheduler waits for the loop several
    times per step while llama.cpp's threads sit idle. Delivered once per step, the loop runs while
    the next decode does (ctypes releases the GIL during it)."""

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[Generation, Chunk]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, gen: Generation, chunk: Chunk) -> None:
        self._items.setdefault(loop, []).append((gen, chunk))

    def deliver(self) -> None:
        items, self._items = self._items, {}
        for loop, batch in items.items():
            try:
                loop.call_soon_threadsafe(_put_all, batch)
            except RuntimeError:  # that loop is closed: nobody reads these any more
                for gen, _ in batch:
                    gen.cancelled.set()


def _put_all(batch: list[tuple[Generation, Chunk]]) -> None:
    for gen, chunk in batch:
        gen._put(chunk)


class Engine(Protocol):
    """What the gateway needs from an engine. ``route`` names the request's conversation for an engine pool
    (its turns go to one member, whose prompt cache holds them); a single engine ignores it."""

    model_name: str
    model_sha256: str
    n_ctx: int  # context length of one sequence
    demo: bool  # a demonstration model (catalogue flag): the chat says so while it serves
    @property
    def submits_at_once(self) -> bool:
        """submit_* never wait: callers may call them on an event loop."""

    @property
    def gathering(self) -> Gathering | None:
        """The requests announced on their way (kit.engine.gather), if the engine waits for them."""

    @property
    def stats(self) -> EngineStats: ...

    def is_ready(self) -> bool: ...

    def count_chat_tokens(self, messages: list[dict[str, Any]]) -> int: ...

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation: ...

    def submit_completion(self, prompt: str, params: SamplingParams,
                          loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation: ...

    def states(self) -> list[dict[str, Any]]: ...

    def affinity(self) -> tuple[int, int]: ...

    def close(self) -> None: ...


class BaseEngine:
    """The defaults of what an engine declares: its submissions may wait (a worker thread runs them), it does
    not gather requests, and it is no pool (no members, no conversation routing)."""

    submits_at_once: ClassVar[bool] = False
    gathering: Gathering | None = None
    demo: bool = False

    def states(self) -> list[dict[str, Any]]:
        """Each member's state, for /metrics and `kit doctor` (an engine pool); none for a single engine."""
        return []

    def affinity(self) -> tuple[int, int]:
        """(follow-up turns of conversations, those that reached the engine of their previous turn): a pool's."""
        return 0, 0


def collect(gen: Generation) -> tuple[str, Chunk]:
    """Read a sync generation to its end: (text, last chunk)."""
    parts: list[str] = []
    last = Chunk("", "error", "no output")
    for chunk in gen:
        parts.append(chunk.text)
        last = chunk
    return "".join(parts), last
