"""When to start the next step: a short wait for requests that are about to reach the engine.

A llama.cpp step cannot take a new sequence once it has begun, so a request that reaches the engine just
after a step started waits for that whole step (about 55 ms with 8 sequences of SmolLM2-135M on 2 cores)
before its prompt is even read. Two cases are worth a short wait before a step that still has free
sequences:

- **Requests being prepared.** The server announces each chat request as it arrives
  (:func:`announce`) and withdraws it when it reaches the engine or leaves the fast path (a personal-data
  scan in a worker thread, a document search: :func:`leave`). The engine waits for announced requests, at
  most ``ARRIVING_S`` (or a step and a half, if longer) after each one's arrival: they are read in the
  step about to start instead of the next one. Requests arriving together are all announced before the
  first is prepared (the handler yields once right after announcing), so a burst is read in one step.
- **A burst that ended together.** When the engine falls idle right after running several sequences at
  once, their clients often send their next requests together (scripts with N workers, batch jobs, load
  tests). The first of them then waits, for a step and a half at most (the time such a step took, between
  ``BURST_MIN_S`` and ``BURST_MAX_S``), for as many as were running together: read in one step, they keep
  finishing together, instead of splitting for good into groups one step apart,
  where each new request waits for a step of the other group before its own. Requests that come one
  after the other (one sequence at a time) are never held.
- **A burst after a pause.** An engine idle for longer that last ran several sequences at once waits
  ``AFTER_IDLE_S`` for the rest of a burst as wide: the first request of a script's or a team's burst
  often comes on a connection already open and the others on new ones, milliseconds later. New
  connections are announced as they open (:func:`connection_opened`), so the wait goes on for them. A
  request alone pays this once, after which its engine has run one sequence at a time and holds no one.

Both waits are bounded by about what a request that misses the step would wait anyway (the next step),
and cost nothing when requests come one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol, TypeVar

import anyio.to_thread

T = TypeVar("T")

ARRIVING_S = 0.05  # how long the engine waits for an announced request, from its arrival, at least
CONNECTING_S = 0.03  # how long it waits for the first request of a connection just opened, from its opening
BURST_MIN_S, BURST_MAX_S = 0.03, 0.2  # bounds of the wait of an idle engine for the rest of a burst
STEPS = 1.5  # both waits: up to this many times the duration of a step as full as the last burst
RECENT_S = 0.25  # how long the engine remembers how many sequences it ran at once
AFTER_IDLE_S = 0.025  # the wait of an engine idle for longer, for the rest of a burst as wide as its last


class Gathering:
    """The engine's side: announced requests and how many sequences ran at once lately, under the engine's
    condition."""

    def __init__(self, cv: threading.Condition, *, enabled: bool = True) -> None:
        self._cv = cv
        self.enabled = enabled
        self._arriving: dict[int, tuple[float, float | None]] = {}  # when, and how long it may be waited for
        self._peak = (0.0, 0, 0.0)  # when, the most sequences a step held lately, and how long that step took
        self._keys = itertools.count()
        self._in_wait = False  # a withdrawal wakes the engine only while it waits here

    def arrive(self, bound: float | None = None) -> Arrival:
        """Announce a request; it is waited for ``bound`` seconds at most (default: see :meth:`wait`)."""
        key = next(self._keys)
        with self._cv:
            self._arriving[key] = (time.perf_counter(), bound)
        return Arrival(self, key)

    def _leave(self, key: int) -> None:
        with self._cv:
            if self._arriving.pop(key, None) is not None and self._in_wait:
                self._cv.notify_all()

    def submitted(self) -> None:
        """The current request reaches the engine (call with the condition held, the engine notifies): its
        announcement ends in the same breath, so that the engine does not wake up twice for it."""
        arrival = _current.get()
        if arrival is not None and arrival._gathering is self:
            self._arriving.pop(arrival._key, None)

    def stepped(self, active: int, seconds: float) -> None:
        """A step with ``active`` sequences took ``seconds`` (the engine's thread: the only one that reads it)."""
        now = time.perf_counter()
        when, most, _ = self._peak
        if active >= most or now - when > RECENT_S:
            self._peak = (now, active, seconds)

    @property
    def arriving(self) -> int:
        return len(self._arriving)

    def wait(self, waiting: Callable[[], int], free: int, idle: bool, stop: Callable[[], bool]) -> None:
        """With the condition held: wait while announced requests, or the rest of a burst, may still fill
        the ``free`` sequences; ``waiting`` counts the requests already queued."""
        if not self.enabled or free <= 0:
            return
        start = time.perf_counter()
        when, most, step_s = self._peak
        expected = most if idle else 0
        if start - when < RECENT_S:
            burst_end = start + min(BURST_MAX_S, max(BURST_MIN_S, STEPS * step_s))
        else:  # idle for a while: a client whose connection was open already comes first, the others next
            burst_end = start + AFTER_IDLE_S
        arriving_s = max(ARRIVING_S, min(BURST_MAX_S, STEPS * step_s))
        self._in_wait = True
        try:
            while not stop():
                self._prune()
                queued = waiting()
                if queued >= free:
                    return
                now = time.perf_counter()
                until = max((t + (arriving_s if b is None else b) for t, b in self._arriving.values()), default=0.0)
                if queued < min(expected, free):
                    until = max(until, burst_end)
                if until <= now:
                    return
                self._cv.wait(until - now)
        finally:
            self._in_wait = False

    def _prune(self) -> None:
        """Forget the connections whose first request did not come in time (a spare connection, a request
        refused before its handler): with the condition held."""
        now = time.perf_counter()
        for key in [k for k, (t, b) in self._arriving.items() if b is not None and t + b <= now]:
            del self._arriving[key]


class Arrival:
    """One announced request; :meth:`leave` withdraws it (idempotent)."""

    def __init__(self, gathering: Gathering, key: int) -> None:
        self._gathering = gathering
        self._key = key

    def leave(self) -> None:
        self._gathering._leave(self._key)


_current: contextvars.ContextVar[Arrival | None] = contextvars.ContextVar("kit_arrival", default=None)


class Gathers(Protocol):
    """An engine as this module sees it (kit.engine.base.Engine declares it): its gathering, or None."""

    @property
    def gathering(self) -> Gathering | None: ...


CONNECTION_KEY = "kit.connection"  # the ASGI scope's key for the announcement of a connection's first request


def connection_opened(engine: Gathers) -> Arrival | None:
    """A client opened a connection to the server of ``engine`` (in this process): its first request is
    probably on its way. In a burst of users (or of a script's workers) that each open a connection, the
    first request would otherwise be read alone and the others a step later. Waited for ``CONNECTING_S``
    at most (a connection may stay unused, as a browser's spare one does); ended by the request's handler
    (:func:`announce`), as soon as its path turns out not to be a generation, or when it closes."""
    gathering = engine.gathering
    if gathering is None or not gathering.enabled:
        return None
    return gathering.arrive(CONNECTING_S)


@contextlib.asynccontextmanager
async def announce(engine: Gathers, scope: MutableMapping[str, Any] | None = None) -> Any:
    """Around a request handler: tell ``engine`` (if it gathers) that a request is on its way, then let the
    other requests already received be announced too before this one is prepared. The announcement ends at
    :func:`leave` or when the handler returns, whichever comes first. The announcement of the request's
    connection, if the server made one (``scope``), ends here: this one takes its place."""
    gathering = engine.gathering
    if gathering is None or not gathering.enabled:  # then no connection was announced either
        yield
        return
    arrival = gathering.arrive()
    opened = scope.pop(CONNECTION_KEY, None) if scope is not None else None
    if opened is not None:
        opened.leave()
    token = _current.set(arrival)
    try:
        await asyncio.sleep(0)
        yield
    finally:
        arrival.leave()
        _current.reset(token)


def leave() -> None:
    """The current request leaves the fast path (a wait in a worker thread); reaching the engine ends its
    announcement by itself (:meth:`Gathering.submitted`)."""
    arrival = _current.get()
    if arrival is not None:
        arrival.leave()



async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in a worker thread (work that waits: a personal-data scan, a document search, a
    network round trip), after the current request leaves the fast path: the engine does not wait for it
    meanwhile."""
    leave()
    return await anyio.to_thread.run_sync(functools.partial(func, *args))
