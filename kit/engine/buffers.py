"""Memory for the states the prompt cache copies out of llama.cpp, made before it is needed.

Copying a sequence's state into fresh memory costs mostly the first touch of each page (the kernel
maps and clears it): about 4 ms for the 7 MB that 300 tokens of SmolLM2-135M hold, and 15 ms or more
when llama.cpp's threads hold both cores, against 0.7 ms for the copy itself into memory already
mapped. That copy happens when a new request takes the sequence, just before the step that reads its
prompt: every request of that step waited for it. So when a sequence that the cache will want to keep
ends, a helper thread maps memory for its state at once (``mmap`` with ``MAP_POPULATE``, called
through ctypes: the interpreter's lock is free meanwhile, the engine and the event loop go on), and the
copy later lands in pages already there (a copy that comes while its memory is being made waits for
it, a few milliseconds at most, rather than make it twice). Buffers of entries the cache drops are kept
for later states, within a bound.
"""

from __future__ import annotations

import ctypes
import mmap
import queue
import threading
from typing import Any

_PROT = mmap.PROT_READ | mmap.PROT_WRITE
_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
_FAILED = ctypes.c_void_p(-1).value
WAIT_S = 0.02  # how long a copy waits for the memory being made for it, at most


def _libc() -> Any:
    """libc's mmap and munmap through ctypes (which lets go of the interpreter's lock during the call);
    None where there is no such libc, and plain ctypes arrays are used."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def capacity_for(size: int) -> int:
    """``size`` rounded up to one of 8 steps per power of two (at most an eighth more), so that states of
    close sizes share buffers."""
    step = max(4096, 1 << max(0, size.bit_length() - 4))
    return -(-size // step) * step


class StateBuffer:
    """``capacity`` bytes of anonymous memory with its pages in place; ``size``: the bytes of the state
    it holds."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._array: Any = None
        if _LIBC is not None:
            addr = _LIBC.mmap(None, capacity, _PROT, _FLAGS, -1, 0)
            if addr in (None, _FAILED):
                raise MemoryError(f"no memory for a {capacity}-byte state")
            self.addr: int = addr
        else:
            self._array = (ctypes.c_uint8 * capacity)()
            self.addr = ctypes.addressof(self._array)

    def __len__(self) -> int:
        return self.capacity

    def view(self, n: int | None = None) -> Any:
        """The first ``n`` bytes (default: the state it holds) as a ctypes array, for llama.cpp."""
        return (ctypes.c_uint8 * (self.size if n is None else n)).from_address(self.addr)

    def free(self) -> None:
        if self.addr and self._array is None and _LIBC is not None:
            _LIBC.munmap(self.addr, self.capacity)
        self.addr, self._array = 0, None


class StateBuffers:
    """Buffers ready for states about to be copied out: one per ended sequence that the cache will want
    (:meth:`prepare`, made by a helper thread), and a bounded pool of buffers given back (:meth:`give`).
    Only the engine's thread calls the methods; the helper only makes and frees memory."""

    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self.made_ahead = self.made_inline = self.reused = 0
        self._lock = threading.Lock()
        self._made = threading.Condition(self._lock)
        self._free: list[StateBuffer] = []
        self._free_bytes = 0
        self._ready: dict[int, StateBuffer] = {}  # sequence -> the buffer made for its state
        self._asked: dict[int, int] = {}  # sequence -> the number of its latest ask: older ones are stale
        self._asks = 0
        self._todo: queue.SimpleQueue[tuple[int, int, int] | StateBuffer | None] = queue.SimpleQueue()
        self._helper: threading.Thread | None = None

    @property
    def free_bytes(self) -> int:
        """Memory held by the buffers kept for later states."""
        with self._lock:
            return self._free_bytes

    def prepare(self, seq: int, size: int) -> None:
        """Sequence ``seq`` ended holding a state of ``size`` bytes that the cache will want when the
        sequence serves another request: have memory for it made now."""
        self._asks += 1
        with self._lock:
            self._asked[seq] = self._asks
            old = self._ready.pop(seq, None)
        if old is not None and old.capacity >= size:
            with self._lock:
                self._ready[seq] = old
            return
        if old is not None:
            self._keep(old)
        if self._helper is None:
            self._helper = threading.Thread(target=self._work, name="kit-state-buffers", daemon=True)
            self._helper.start()
        self._todo.put((seq, self._asks, capacity_for(size)))

    def take(self, seq: int, size: int) -> StateBuffer:
        """A buffer for ``size`` bytes of sequence ``seq``'s state: the one made for it if it is ready, else
        one given back of about that size, else new memory (made here: the slow path)."""
        with self._made:
            ask = self._asked.pop(seq, None)
            if ask is not None and seq not in self._ready:  # the helper is on it: a moment, not a second copy
                self._asked[seq] = ask
                self._made.wait_for(lambda: seq in self._ready or self._asked.get(seq) != ask, WAIT_S)
                self._asked.pop(seq, None)
            mine = self._ready.pop(seq, None)
        if mine is not None and mine.capacity >= size:
            return mine
        if mine is not None:
            self._keep(mine)
        cap = capacity_for(size)
        with self._lock:
            fits = [b for b in self._free if cap <= b.capacity <= cap + cap // 2]
            if fits:
                buf = min(fits, key=lambda b: b.capacity)
                self._free.remove(buf)
                self._free_bytes -= buf.capacity
                self.reused += 1
                return buf
        self.made_inline += 1
        return StateBuffer(cap)

    def release(self, seq: int) -> None:
        """Sequence ``seq`` serves another request without its state being copied out (nothing worth
        keeping, or the cache holds it already): its buffer goes to the pool."""
        with self._lock:
            self._asked.pop(seq, None)
            mine = self._ready.pop(seq, None)
        if mine is not None:
            self._keep(mine)

    def give(self, buf: Any) -> None:
        """A buffer the cache no longer uses (its entry was dropped): kept for a later state, or freed."""
        if isinstance(buf, StateBuffer):
            buf.size = 0
            self._keep(buf)

    def close(self) -> None:
        with self._lock:
            bufs = [*self._free, *self._ready.values()]
            self._free, self._ready, self._free_bytes = [], {}, 0
        for b in bufs:
            b.free()
        if self._helper is not None:
            self._todo.put(None)
            self._helper.join(timeout=5)

    def _keep(self, buf: StateBuffer) -> None:
        with self._lock:
            if self._free_bytes + buf.capacity <= self.keep_bytes:
                self._free.append(buf)
                self._free_bytes += buf.capacity
                return
        if self._helper is not None:
            self._todo.put(buf)  # unmapped by the helper: a few hundred microseconds off the engine's thread
        else:
            buf.free()

    def _work(self) -> None:
        while (item := self._todo.get()) is not None:
            if isinstance(item, StateBuffer):
                item.free()
                continue
            seq, ask, cap = item
            with self._lock:
                if self._asked.get(seq) != ask:
                    continue  # the sequence was taken meanwhile
            try:
                buf = StateBuffer(cap)
            except MemoryError:
                continue  # the copy will make its own, or fail and keep nothing
            with self._made:
                if self._asked.get(seq) == ask and seq not in self._ready:
                    self._ready[seq] = buf
                    self.made_ahead += 1
                    self._made.notify_all()
                    continue
            self._keep(buf)
