"""One spaCy pass for the pieces that several threads need parsed at the same time.

A burst of chat requests (eight users sending at once) used to queue for spaCy one piece after the
other: the last one waited for all the others, up to 160 ms under load on 2 cores for eight short
messages. spaCy parses a batch of texts (``nlp.pipe``) in about half the time of the same texts one
by one, and its pipeline may not be called from several threads at once anyway. So the threads hand
their pieces to a :class:`Batcher`: whichever thread gets the turn parses everything waiting at that
moment in one pass, the others find their results done.

Turns are first come, first served, and a batch holds at most ``max_chars`` characters (at least one
piece): a short prompt waits for at most one batch of others, never for a whole long document,
whose pieces are handed over one round at a time.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


class FairLock:
    """A lock granted in the order it was asked for: a thread that releases it and asks again queues
    behind the threads already waiting (``threading.Lock`` lets it take the lock straight back)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def __enter__(self) -> FairLock:
        with self._guard:
            if not self._held:
                self._held = True
                return self
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the releasing thread hands the lock over: _held stays True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False


@dataclass
class _Job(Generic[R]):
    text: str
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class Batcher(Generic[R]):
    """Runs ``parse`` (a list of texts → one result per text, in order) over the texts that callers hand
    in, several callers' texts in one call, one call at a time."""

    def __init__(self, parse: Callable[[list[str]], list[R]], max_chars: int) -> None:
        self._parse = parse
        self._max_chars = max_chars
        self._guard = threading.Lock()  # protects _pending
        self._pending: collections.deque[_Job[R]] = collections.deque()
        self._turn = FairLock()  # held while a batch is parsed
        self.batches = 0  # parses run (for tests and diagnostics)
        self.texts = 0

    def __call__(self, texts: list[str]) -> list[R]:
        jobs: list[_Job[R]] = [_Job(t) for t in texts]
        with self._guard:
            self._pending.extend(jobs)
        for job in jobs:
            while not job.done:
                with self._turn:
                    if not job.done:  # else another thread's batch took it while this one waited
                        self._run_batch()
        errors = [j.error for j in jobs if j.error is not None]
        if errors:
            raise errors[0]
        return [j.result for j in jobs]  # type: ignore[misc]

    def _run_batch(self) -> None:
        """Under the turn: parse the oldest waiting texts, up to ``max_chars`` (at least one)."""
        batch: list[_Job[R]] = []
        size = 0
        with self._guard:
            while self._pending and (not batch or size + len(self._pending[0].text) <= self._max_chars):
                job = self._pending.popleft()
                batch.append(job)
                size += len(job.text)
        if not batch:
            return
        try:
            results = self._parse([j.text for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the parser returned {len(results)} results for {len(batch)} texts")
        except BaseException as exc:  # noqa: BLE001 - each caller gets it, with its own traceback
            for job in batch:
                job.error, job.done = exc, True
            return
        self.batches += 1
        self.texts += len(batch)
        for job, result in zip(batch, results, strict=True):
            job.result, job.done = result, True
