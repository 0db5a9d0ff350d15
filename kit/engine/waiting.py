"""The requests waiting for a free sequence, and which of them takes the next one: fair across owners.

Each request may name its owner (``SamplingParams.owner``: the user, or key, it runs for). A free sequence
goes to the waiting request whose owner has the fewest sequences running, the earliest one first among
equals: one user's next sequence waits behind the other users' first ones (round-robin between owners),
and a user's own requests keep their order (first in, first out). A request without an owner counts as
an owner of its own, with nothing running.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from kit.engine.slots import Pending


class WaitingQueue:
    """Requests in their order of arrival; ``take`` hands out the next one fairly, ``popleft`` the oldest."""

    def __init__(self) -> None:
        self._items: list[Pending] = []

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._items))

    def append(self, p: Pending) -> None:
        self._items.append(p)

    def popleft(self) -> Pending:
        return self._items.pop(0)

    def take(self, busy: Iterable[str | None]) -> Pending:
        """The request that gets the next free sequence, removed from the queue: the oldest of those whose
        owner has the fewest sequences running (``busy``: the owner of each running sequence)."""
        if not self._items:
            raise IndexError("no request is waiting")
        running = Counter(o for o in busy if o is not None)
        best, best_key = 0, None
        for i, p in enumerate(self._items):
            owner = p.params.owner
            key = 0 if owner is None else running[owner]
            if best_key is None or key < best_key:
                best, best_key = i, key
                if key == 0:
                    break  # nobody can come before the oldest request of an owner with nothing running
        return self._items.pop(best)

