"""A pool of OpenAI-compatible engines (kit engines, llama.cpp's llama-server, vLLM) behind one gateway.

Routing:

* the first turn of a conversation (no assistant message yet) goes to the least busy member: in-flight
  requests ÷ capacity, counted over every gateway when they share a Redis (``kit.engine.inflight``),
  else over this gateway's requests;
* a later turn goes to the member that served its conversation's previous turn, so that its prompt
  cache, which holds the conversation so far, is reused. The conversation is known by its id (sent by
  the browser chat) or else by a digest of its first messages (an OpenAI client resending its history);
  the member of its last turn is kept in Redis, shared by every gateway, or in this gateway;
* when no gateway remembers the conversation (Redis emptied, a gateway without Redis that did not see
  the earlier turns), the member with the highest rendezvous score ``sha256(key | name)`` weighted by
  its capacity: every gateway computes the same one without talking to the others, and a member
  leaving the pool moves only its own conversations.

A member that fails (connection refused, 5xx, a stream that ends in error before its first token)
``max_failures`` times in a row leaves the pool; a health thread probes the members out of service
every ``probe_every_s`` seconds and brings one back when its health check passes. A request whose
member fails before sending any text is retried on the next member in its order; once text was sent
the client gets the error as it is (a partial answer is never silently restarted elsewhere).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.engine.base import BaseEngine, Chunk, EngineStats, Generation, SamplingParams
from kit.engine.remote import RemoteEngine
from kit.errors import EngineError


@dataclass
class Member:
    """One engine of the pool and what the gateway knows of it."""

    name: str
    engine: Any  # RemoteEngine, or any object with the Engine interface
    capacity: float = 1.0
    in_flight: int = 0
    failures: int = 0
    up: bool = True
    served: int = 0
    retried_away: int = 0

    def load(self) -> float:
        return self.in_flight / self.capacity


def rendezvous_order(key: str, members: list[Member]) -> list[Member]:
    """Members by decreasing weighted rendezvous score for ``key`` (highest random weight)."""

    def score(m: Member) -> float:
        h = int.from_bytes(hashlib.sha256(f"{key}|{m.name}".encode()).digest()[:8], "big")
        u = (h + 0.5) / 2**64  # uniform in (0, 1)
        return -m.capacity / math.log(u)

    return sorted(members, key=score, reverse=True)


def affinity_key(messages: list[dict[str, Any]]) -> str:
    """A stable key for a conversation sent without an id: its messages up to the first user message (the
    system prompt and the opening question), the same at every later turn."""
    head = []
    for m in messages:
        head.append(f"{m.get('role')}:{m.get('content')}")
        if m.get("role") == "user":
            break
    return "conv:" + hashlib.sha256("\n".join(head).encode()).hexdigest()[:32]


@dataclass
class PoolSettings:
    max_failures: int = 3
    probe_every_s: float = 5.0
    retries: int = 2


class EnginePool(BaseEngine):
    """The Engine interface over several members; see the module docstring for the routing."""

    def __init__(self, members: list[Member], *, model_name: str, ctx: int = 4096,
                 config: PoolSettings | None = None, shared: Any = None) -> None:
        if not members:
            raise EngineError("server.engines is empty: name at least one engine.")
        self.members = members
        self.model_name = model_name
        self.model_sha256 = ""
        self.n_ctx = ctx
        self.config = config or PoolSettings()
        self.shared = shared  # SharedInFlight, or None: the counts of this gateway alone
        self._lock = threading.Lock()
        self._stats = EngineStats()
        self._last: OrderedDict[str, str] = OrderedDict()  # conversation key -> engine of its last turn
        self.follow_ups = 0  # turns of a conversation already served before (by this gateway's count)
        self.affinity_hits = 0  # those that reached the engine of the conversation's previous turn
        self._closing = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, name="kit-engine-pool", daemon=True)
        self._prober.start()

    @classmethod
    def from_entries(cls, entries: list[Any], *, model_name: str, ctx: int, timeout_s: float,
                     config: PoolSettings | None = None, api_key: str | None = None,
                     connect: Callable[..., Any] = RemoteEngine, shared: Any = None) -> EnginePool:
        """Members from ``server.engines`` (``api_key``: for those that name none); an engine that does not
        answer at start begins out of service."""
        members = []
        for e in entries:
            key = e.api_key or api_key
            try:
                engine = connect(e.url, model_name=model_name, api_key=key, ctx=ctx, timeout_s=timeout_s)
                up = True
            except EngineError:
                engine = connect(e.url, model_name=model_name, api_key=key, ctx=ctx, timeout_s=timeout_s,
                                 probe=False)
                up = False
            members.append(Member(e.name, engine, float(e.capacity), up=up))
        return cls(members, model_name=model_name, ctx=ctx, config=config, shared=shared)

    # --- Engine interface ------------------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            out = EngineStats(**vars(self._stats))
            out.active = sum(m.in_flight for m in self.members)
        return out

    def is_ready(self) -> bool:
        return any(m.up for m in self.members)

    def count_chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        return int(self.members[0].engine.count_chat_tokens(messages))

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        key = route or affinity_key(messages)
        if any(m.get("role") == "assistant" for m in messages):  # a later turn: where the last one went
            order = self.order(key, remembered=self._previous(key))
        else:  # a new conversation: the least busy member
            order = self.order(None)
        return self._start(lambda m: m.engine.submit_chat(messages, params, None), order, key, loop)

    def affinity(self) -> tuple[int, int]:
        """(follow-up turns, those that reached the engine of their conversation's previous turn)."""
        with self._lock:
            return self.follow_ups, self.affinity_hits

    def _note_turn(self, key: str, member: Member) -> None:
        before = self.shared.swap_last(key, member.name) if self.shared is not None else False
        with self._lock:
            if before is False:  # no shared store: this gateway's memory of the last 100,000 conversations
                before = self._last.pop(key, None)
                self._last[key] = member.name
                if len(self._last) > 100_000:
                    self._last.popitem(last=False)
            if before is not None:
                self.follow_ups += 1
                self.affinity_hits += int(before == member.name)

    def submit_completion(self, prompt: str, params: SamplingParams,
                          loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        return self._start(lambda m: m.engine.submit_completion(prompt, params, None), self.order(route), route, loop)

    def _previous(self, key: str) -> str | None:
        """The member that served the conversation ``key`` last, if a gateway remembers it."""
        if self.shared is not None:
            found = self.shared.last(key)
            if found is not False:
                return found  # type: ignore[return-value]
        with self._lock:
            return self._last.get(key)

    def close(self) -> None:
        self._closing.set()
        for m in self.members:
            m.engine.close()
        if self.shared is not None:
            self.shared.close()

    # --- routing ---------------------------------------------------------------------------------

    def order(self, key: str | None, *, remembered: str | None = None) -> list[Member]:
        """Members in the order a request tries them, among those in service: by rendezvous on ``key`` (the
        ``remembered`` member first when given), else the least busy first."""
        with self._lock:
            live = [m for m in self.members if m.up]
        if key:
            ranked = rendezvous_order(key, live)
            return sorted(ranked, key=lambda m: m.name != remembered) if remembered else ranked
        counts = self.shared.counts([m.name for m in live]) if self.shared is not None else None
        if counts is None:
            return sorted(live, key=lambda m: (m.load(), m.name))
        return sorted(live, key=lambda m: (counts[m.name] / m.capacity, m.name))

    def states(self) -> list[dict[str, Any]]:
        """Each member's state, for /metrics and `kit doctor`."""
        with self._lock:
            return [{"name": m.name, "url": getattr(m.engine, "url", ""), "up": m.up, "in_flight": m.in_flight,
                     "capacity": m.capacity, "failures": m.failures, "served": m.served,
                     "retried_away": m.retried_away} for m in self.members]

    def _start(self, submit: Callable[[Member], Generation], order: list[Member], key: str | None,
               loop: asyncio.AbstractEventLoop | None) -> Generation:
        """Relay the request to the members in ``order``; ``key`` names its conversation (affinity counts)."""
        if not order:
            raise EngineError("no engine of the pool is in service: check them with `kit doctor`; the pool "
                              "takes each one back as soon as its health check passes.")
        outer = Generation(loop=loop)
        with self._lock:
            self._stats.requests_total += 1
        self._reserve(order[0], 1)  # counted now, so that the next request's choice already sees it
        threading.Thread(target=self._relay, args=(submit, order, outer, key), daemon=True).start()
        return outer

    def _reserve(self, member: Member, delta: int) -> None:
        with self._lock:
            member.in_flight += delta
        if self.shared is not None:
            self.shared.add(member.name, delta)

    def _relay(self, submit: Callable[[Member], Generation], order: list[Member], outer: Generation,
               key: str | None = None) -> None:
        last_error = "no engine answered"
        for attempt, member in enumerate(order[: self.config.retries + 1]):
            if outer.cancelled.is_set():
                if attempt == 0:
                    self._reserve(member, -1)
                break
            if attempt > 0:
                self._reserve(member, 1)
            sent = False
            final: Chunk | None = None
            try:
                inner = submit(member)
                for chunk in inner:
                    if outer.cancelled.is_set():
                        inner.cancel()
                    if chunk.text:
                        sent = True
                        outer.note_token()
                        outer.push(Chunk(chunk.text))
                    if chunk.finish_reason is not None:
                        final = chunk
                outer.prompt_tokens = inner.prompt_tokens
            except EngineError as exc:
                final = Chunk("", "error", str(exc))
            finally:
                self._reserve(member, -1)
            broken = final is None or final.finish_reason == "error"
            retry = broken and not sent  # nothing reached the client yet: another member may answer
            self._note(member, ok=not broken, moved=retry and attempt < len(order) - 1)
            if key and not broken:
                self._note_turn(key, member)
            if not retry:
                reason = final.finish_reason if final else "error"
                outer.push(Chunk("", reason, final.error if final else last_error))  # type: ignore[arg-type]
                return
            last_error = (final.error if final else None) or last_error
        with self._lock:
            self._stats.requests_finished += 1
        if outer.cancelled.is_set():  # the client left before any engine answered
            outer.push(Chunk("", "cancelled"))
            return
        outer.push(Chunk("", "error", f"every engine tried failed ({last_error})"))

    def _note(self, member: Member, *, ok: bool, moved: bool) -> None:
        with self._lock:
            if ok:
                member.failures, member.served = 0, member.served + 1
                self._stats.requests_finished += 1
                return
            member.failures += 1
            member.retried_away += int(moved)
            if member.failures >= self.config.max_failures:
                member.up = False

    def _probe_loop(self) -> None:
        while not self._closing.wait(self.config.probe_every_s):
            if self.shared is not None:
                self.shared.heartbeat()
            for m in list(self.members):
                if not m.up and m.engine.is_ready():
                    with self._lock:
                        m.up, m.failures = True, 0
