"""In-process llama.cpp engine with continuous batching.

One llama.cpp context holds ``parallel`` sequences (``n_seq_max``). A scheduler thread runs the
loop: admit waiting requests into free sequences, build one ``llama_batch`` holding the next token
of every generating sequence plus a chunk of the prompts still being read, decode it once, sample
each sequence with its own sampler (:mod:`kit.engine.sampling`), stream the text out. New requests join
between steps, taking the free sequence, or the state in the host-memory prompt cache
(:mod:`kit.engine.cache`), that already holds the longest beginning of their prompt."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kit.engine.base import BaseEngine, Chunk, EngineStats, Generation, Outbox, SamplingParams
from kit.engine.build import model_params, openmp_waits
from kit.engine.cache import PromptCache
from kit.engine.gather import Gathering
from kit.engine.sampling import Sampler
from kit.engine.slots import Pending, Slot, choose_sequence
from kit.engine.text import common_prefix, content_text, find_stop, stop_prefix_len
from kit.engine.waiting import WaitingQueue
from kit.errors import ContextOverflowError, EngineError, QueueFullError, UsageError

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

MIN_CACHED = 32  # shorter sequences are not worth keeping in the host-memory prompt cache
SWITCH_INTERVAL_S = 0.0005  # see LlamaEngine.__init__


class LlamaEngine(BaseEngine):
    """Continuous-batching engine over llama-cpp-python's low-level API."""

    submits_at_once = True  # submit_chat/submit_completion never wait: callers may call them on an event loop

    def __init__(self, model_path: str | Path, *, model_name: str = "", model_sha256: str = "",
                 parallel: int = 4, ctx: int = 4096, batch: int = 512, threads: int | None = None,
                 gpu_layers: int = 0, max_queue: int = 64, warm_up: bool = True,
                 prompt_cache_mb: int = 1024, gather: bool = True, prefill_chunk: int = 512) -> None:
        self.openmp_waits = openmp_waits(gpu_layers)  # before llama.cpp loads libgomp: see kit.engine.build
        import llama_cpp as L
        from llama_cpp._logger import set_verbose
        set_verbose(os.environ.get("KIT_LLAMA_LOG") == "1")  # llama.cpp's own log: errors only by default
        self._L = L
        self.model_name = model_name or Path(model_path).stem
        self.model_sha256 = model_sha256
        self.parallel = parallel
        self.max_queue = max_queue
        self._stats = EngineStats()
        threads = threads or os.cpu_count() or 1
        # The scheduler thread needs the interpreter right after each decode (sampling, streaming out): with
        # Python's default switch interval it can wait up to 5 ms behind the server's event loop at every step.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        L.llama_backend_init()
        self._model = L.llama_model_load_from_file(str(model_path).encode(), model_params(L, gpu_layers))
        if not self._model:
            raise EngineError(f"llama.cpp could not load {model_path}: the file is not a valid GGUF model "
                              "or was made by a newer llama.cpp. Pull it again or update kit.")
        self._vocab = L.llama_model_get_vocab(self._model)
        train_ctx = L.llama_model_n_ctx_train(self._model)
        self.n_ctx = min(ctx, train_ctx) if train_ctx > 0 else ctx
        cparams = L.llama_context_default_params()
        cparams.n_ctx = self.n_ctx * parallel
        cparams.n_batch = cparams.n_ubatch = batch
        cparams.n_seq_max = parallel
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.kv_unified = False
        self._ctx = L.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            L.llama_model_free(self._model)
            raise EngineError("llama.cpp could not create a context: lower --ctx or --parallel (not enough memory).")
        self.n_ctx = L.llama_n_ctx_seq(self._ctx)
        self._mem = L.llama_get_memory(self._ctx)
        self._n_batch, self._prefill_chunk = batch, prefill_chunk  # prompt tokens per step while others generate
        self._batch = L.llama_batch_init(batch, 0, 1)
        self._template = L.llama_model_chat_template(self._model, None)
        self._add_bos = L.llama_vocab_get_add_bos(self._vocab)
        self._bos_text = self._piece(L.llama_vocab_bos(self._vocab), special=True) if self._add_bos else ""
        self._slots: list[Slot | None] = [None] * parallel
        self._kv: list[list[int]] = [[] for _ in range(parallel)]  # tokens held in each sequence's KV cells
        self._waiting = WaitingQueue()  # fair across owners: see kit.engine.waiting
        self._cv = threading.Condition()
        self._outbox = Outbox()
        self._closing = False
        self.gathering: Gathering = Gathering(self._cv, enabled=gather)  # see kit.engine.gather
        self._eog = [t for t in range(L.llama_vocab_n_tokens(self._vocab)) if L.llama_vocab_is_eog(self._vocab, t)]
        self._eog_set = frozenset(self._eog)
        self.sample_shortcut = True  # see kit.engine.sampling
        self._cache = PromptCache(prompt_cache_mb * 2**20) if prompt_cache_mb > 0 else None
        # Every llama_decode, the warm-up's included, runs on the scheduler thread: llama.cpp's OpenMP threads
        # belong to the thread that decodes, and a second set (from a warm-up on the loading thread) would
        # make libgomp count more threads than cores and sleep at each of ggml's barriers instead of spinning.
        self._ready = False
        warmed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(warm_up, warmed), name="kit-engine", daemon=True)
        self._thread.start()
        warmed.wait()
        self._ready = True

    # --- public interface ------------------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        with self._cv:
            self._stats.active = sum(s is not None for s in self._slots)
            self._stats.queued = len(self._waiting)
            self._stats.prompt_cache_bytes = self._cache.held if self._cache is not None else 0
            return EngineStats(**vars(self._stats))

    def is_ready(self) -> bool:
        return self._ready and self._thread.is_alive()

    @property
    def chat_template(self) -> str | None:
        return self._template.decode("utf-8", "replace") if self._template else None

    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text of a conversation, rendered by llama.cpp from the model's template."""
        L = self._L
        if not messages:
            raise UsageError("messages is empty: send at least one message.")
        keep = [(str(m.get("role", "")).encode(), content_text(m.get("content")).encode()) for m in messages]
        arr = (L.llama_chat_message * len(keep))()
        for i, (role, content) in enumerate(keep):
            arr[i].role = role
            arr[i].content = content
        size = sum(len(c) + len(r) for r, c in keep) * 2 + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = L.llama_chat_apply_template(self._template, arr, len(keep), True, buf, size)
            if n < 0:
                return self._render_jinja(messages)
            if n <= size:
                return buf.raw[:n].decode("utf-8", "replace")
            size = n + 1
        raise EngineError("the chat template could not be rendered")

    def _render_jinja(self, messages: list[dict[str, Any]]) -> str:
        """Fallback for templates llama.cpp's built-in renderer does not know: Jinja, as llama-cpp-python."""
        if not self._template:
            raise EngineError(f"{self.model_name} has no chat template in its GGUF metadata; use /v1/completions.")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = self._piece(self._L.llama_vocab_eos(self._vocab), special=True)
        fmt = Jinja2ChatFormatter(template=self._template.decode(), eos_token=eos, bos_token=self._bos_text)
        return fmt(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        L = self._L
        data = text.encode("utf-8")
        add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
        n_max = len(data) + 8
        tokens = (L.llama_token * n_max)()
        n = L.llama_tokenize(self._vocab, data, len(data), tokens, n_max, add_bos, special)
        if n < 0:
            tokens = (L.llama_token * -n)()
            n = L.llama_tokenize(self._vocab, data, len(data), tokens, -n, add_bos, special)
        return list(tokens[:n])

    def count_chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        return len(self.tokenize(self.render_chat(messages)))

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        return self._submit(self.tokenize(self.render_chat(messages)), params, loop)

    def submit_completion(self, prompt: str, params: SamplingParams,
                          loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        return self._submit(self.tokenize(prompt, special=False), params, loop)

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout=30)
        if self._cache is not None:
            self._cache.close()
        L = self._L
        for slot in self._slots:
            if slot is not None:
                slot.sampler.free()
        L.llama_batch_free(self._batch)
        L.llama_free(self._ctx)
        L.llama_model_free(self._model)
        self._ready = False

    # --- scheduling ------------------------------------------------------------------------------
    def _submit(self, prompt: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop | None) -> Generation:
        if not prompt:
            raise UsageError("the prompt is empty.")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflowError(f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx}: "
                                       "shorten it (or start the server with a larger --ctx).")
        gen = Generation(prompt_tokens=len(prompt), loop=loop)
        with self._cv:
            if self._closing:
                raise EngineError("the engine is shutting down.")
            busy = sum(s is not None for s in self._slots)
            if busy >= self.parallel and len(self._waiting) >= self.max_queue:
                raise QueueFullError(f"{busy} requests are running and {len(self._waiting)} waiting: retry shortly.")
            self._waiting.append(Pending(gen, params, prompt))
            self.gathering.submitted()
            self._stats.requests_total += 1
            self._stats.prompt_tokens_total += len(prompt)
            self._cv.notify()
        return gen

    def _run(self, warm_up: bool, warmed: threading.Event) -> None:
        try:
            if warm_up:
                self._warm_up()
        finally:
            warmed.set()
        try:
            while True:
                with self._cv:
                    while not self._closing and not self._waiting and not any(self._slots):
                        self._cv.wait()
                    if self._closing:
                        break
                    if self._waiting or self.gathering.arriving:
                        idle = not any(self._slots)
                        self.gathering.wait(lambda: len(self._waiting), self._slots.count(None), idle,
                                            lambda: self._closing)
                    self._admit()
                    active = self.parallel - self._slots.count(None)
                started = time.perf_counter()
                self._step()
                self.gathering.stepped(active, time.perf_counter() - started)
                self._outbox.deliver()  # one wake-up of each consumer loop per step (see Outbox)
        except Exception as exc:  # noqa: BLE001 - the scheduler must report, not vanish
            self._ready = False
            self._fail_all(f"engine stopped: {exc}")
            raise
        self._fail_all("the engine was shut down", reason="cancelled")

    def _admit(self) -> None:
        """Give each waiting request a free sequence, and the longest beginning of its prompt that the
        engine holds (a conversation's earlier turns, a common system prompt): only the rest is read.

        llama.cpp splits a batch of several sequences (each with its own KV stream) into one
        micro-batch per run of consecutive sequence numbers, and each micro-batch costs a pass over
        the weights: with sequences 0, 2, 4 and 6 busy a step costs about 1.7 times what it costs with
        0 to 3. So the request takes the free sequence that keeps the busy ones in the fewest runs;
        if another free sequence holds a longer beginning of its prompt, that state moves over
        through the prompt cache (a copy of its cells, not a new read)."""
        while self._waiting:
            free = [i for i, slot in enumerate(self._slots) if slot is None]
            if not free:
                return
            p = self._waiting.take(s.params.owner for s in self._slots if s is not None)
            if p.gen.cancelled.is_set():
                p.gen.push(Chunk("", "cancelled"), self._outbox)
                self._stats.requests_finished += 1
                continue
            held = {i: common_prefix(self._kv[i], p.prompt) for i in free}
            seq, source = choose_sequence(set(range(self.parallel)).difference(free), held, self._cache is not None)
            common = held[seq]
            if self._cache is not None:
                common = self._through_cache(seq, common, p.prompt, None if source is None else (source, held[source]))
            keep = min(common, len(p.prompt) - 1)
            if not self._L.llama_memory_seq_rm(self._mem, seq, keep, -1):
                self._L.llama_memory_seq_rm(self._mem, seq, -1, -1)
                keep = 0
            del self._kv[seq][keep:]
            self._stats.prompt_tokens_cached += keep
            sampler = Sampler(self._L, self._vocab, p.params, self._eog, shortcut=self.sample_shortcut)
            self._slots[seq] = Slot(seq=seq, gen=p.gen, params=p.params, prompt=p.prompt, sampler=sampler,
                                     n_prompt_done=keep, n_past=keep)

    def _warm_up(self) -> None:
        """Decode once with every sequence reading a short prompt, then once with one token each, as a burst
        would: weights, compute buffers and threads are ready before the first users; then empty the cache."""
        L = self._L
        token = max(L.llama_vocab_bos(self._vocab), 0)
        per_seq = max(1, min(self._n_batch // self.parallel - 1, 32))
        for length, first in ((per_seq, 0), (1, per_seq)):
            self._batch.n_tokens = 0
            for seq in range(self.parallel):
                for pos in range(first, first + length):
                    self._add(token, pos, seq, pos == first + length - 1)
            if L.llama_decode(self._ctx, self._batch) != 0:
                break  # not fatal: the first requests will allocate what they need
        L.llama_memory_clear(self._mem, True)

    def _through_cache(self, seq: int, common: int, prompt: list[int],
                       source: tuple[int, int] | None = None) -> int:
        """Keep the state of the sequence about to be overwritten in the prompt cache, then give it the cached
        state sharing the most of ``prompt`` if that beats what it and ``source`` hold, else the state of
        ``source`` (a free sequence holding more of ``prompt``: that sequence and how many tokens) if set;
        returns the prompt tokens it holds."""
        cache, held = self._cache, self._kv[seq]
        assert cache is not None
        if len(held) > common and len(held) >= MIN_CACHED:
            cache.save(self._L, self._ctx, seq, held)
        else:
            cache.buffers.release(seq)
        hit = cache.best(prompt, common if source is None else max(common, source[1]))  # the cache may hold more
        moved = None
        if hit is None and source is not None:
            moved = cache.snapshot(self._L, self._ctx, source[0], self._kv[source[0]])
            hit = None if moved is None else (moved, source[1])
        if hit is None:
            return common
        restored = cache.restore(self._L, self._ctx, self._mem, seq, hit[0])
        if moved is not None:
            cache.buffers.give(moved.state)
        self._kv[seq] = list(hit[0].tokens) if restored else []
        self._stats.prompt_cache_restores += int(restored)
        return hit[1] if restored else 0

    def _step(self) -> None:
        L = self._L
        batch = self._batch
        batch.n_tokens = 0
        outputs: list[tuple[Slot, int]] = []
        now = time.perf_counter()
        for i, slot in enumerate(self._slots):
            if slot is None:
                continue
            gen = slot.gen
            timeout = slot.params.timeout_s
            if gen.cancelled.is_set():
                self._finish(i, "cancelled")
            elif timeout is not None and now - gen.created > timeout:
                self._finish(i, "timeout")
        generating = sum(1 for s in self._slots if s is not None and not s.prefilling)
        budget = self._n_batch - generating
        if generating:
            budget = min(budget, self._prefill_chunk)
        for slot in self._slots:  # in sequence order: consecutive sequences share a micro-batch (see _admit)
            if slot is None:
                continue
            if not slot.prefilling:
                outputs.append((slot, self._add(slot.next_token, slot.n_past, slot.seq, True)))  # type: ignore[arg-type]
                self._kv[slot.seq].append(slot.next_token)  # type: ignore[arg-type]
                slot.n_past += 1
                continue
            take = min(budget, len(slot.prompt) - slot.n_prompt_done)
            if take <= 0:
                continue
            for k in range(take):
                pos = slot.n_prompt_done + k
                last = pos == len(slot.prompt) - 1
                idx = self._add(slot.prompt[pos], pos, slot.seq, last)
                if last:
                    outputs.append((slot, idx))
            self._kv[slot.seq].extend(slot.prompt[slot.n_prompt_done:slot.n_prompt_done + take])
            slot.n_prompt_done += take
            slot.n_past = slot.n_prompt_done
            budget -= take
        if batch.n_tokens == 0:
            return
        rc = L.llama_decode(self._ctx, batch)
        self._stats.steps += 1
        if rc != 0:
            # 1: no KV slot for the batch. Fail the newest sequences rather than the server.
            for slot, _ in outputs:
                self._finish(slot.seq, "error", f"llama_decode returned {rc} (context full)")
            return
        for slot, idx in outputs:
            if self._slots[slot.seq] is not slot:
                continue
            token = slot.sampler.sample(self._ctx, idx)
            self._accept(slot, token)

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        b = self._batch
        i = b.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1
        return i

    def _accept(self, slot: Slot, token: int) -> None:
        gen = slot.gen
        if token in self._eog_set:
            self._flush(slot, final=True)
            self._finish(slot.seq, "stop")
            return
        gen.note_token()
        self._stats.completion_tokens_total += 1
        slot.text += slot.decoder.decode(self._piece(token, special=False, raw=True))
        stop_at = find_stop(slot.text, slot.params.stop, slot.sent)
        if stop_at is not None:
            slot.text = slot.text[:stop_at]
            self._flush(slot, final=True)
            self._finish(slot.seq, "stop")
            return
        if gen.completion_tokens >= slot.params.max_tokens or slot.n_past + 1 >= self.n_ctx:
            slot.text += slot.decoder.decode(b"", final=True)
            self._flush(slot, final=True)
            self._finish(slot.seq, "length")
            return
        slot.next_token = token
        self._flush(slot, final=False)

    def _flush(self, slot: Slot, final: bool) -> None:
        """Send the text not yet sent, holding back a tail that could start a stop string."""
        end = len(slot.text)
        if not final and slot.params.stop:
            end -= stop_prefix_len(slot.text, slot.params.stop)
        if end > slot.sent:
            slot.gen.push(Chunk(slot.text[slot.sent:end]), self._outbox)
            slot.sent = end

    def _finish(self, seq: int, reason: str, error: str | None = None) -> None:
        slot = self._slots[seq]
        if slot is None:
            return
        if reason == "error":  # the cells may not hold what self._kv says: start this sequence afresh
            self._L.llama_memory_seq_rm(self._mem, seq, -1, -1)
            self._kv[seq].clear()
        slot.sampler.free()
        if self._cache is not None and len(self._kv[seq]) >= MIN_CACHED:
            self._cache.ended(self._L, self._ctx, seq, self._kv[seq])
        with self._cv:
            self._slots[seq] = None
            self._stats.requests_finished += 1
        slot.gen.push(Chunk("", reason, error), self._outbox)  # type: ignore[arg-type]

    def _fail_all(self, message: str, reason: str = "error") -> None:
        for i, slot in enumerate(self._slots):
            if slot is not None:
                self._finish(i, reason, message)
        with self._cv:
            while self._waiting:
                self._waiting.popleft().gen.push(Chunk("", reason, message), self._outbox)  # type: ignore[arg-type]
        self._outbox.deliver()

    def _piece(self, token: int, *, special: bool, raw: bool = False) -> Any:
        L = self._L
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        data = buf.raw[:n]
        return data if raw else data.decode("utf-8", "replace")
