"""Model quality on a text: perplexity, KL divergence against a reference model, same top-1 token.

The method is llama.cpp's ``llama-perplexity`` (tools/perplexity/perplexity.cpp), so that results
agree with it: the text is tokenized once with the special tokens the model adds (BOS where the
vocabulary asks for it); it is cut into chunks of ``n_ctx`` tokens (a last partial chunk is dropped);
each chunk is decoded from an empty cache, its first token replaced by BOS when the model adds one;
only the second half of each chunk is scored (tokens ``n_ctx/2 + 1 .. n_ctx - 1``, each predicted from
the logits of the previous position), so every scored token has at least ``n_ctx/2`` tokens of context.

KL divergence follows llama.cpp's ``--kl-divergence``: the reference model's log-probabilities are kept
per scored token, compressed like llama.cpp does (16-bit steps over the top 16 nats), in a temporary
file; each other model is then run on the same tokens and ``KL(reference || model)`` is summed over the
tokens whose reference log-probability is above -16. The same-top-1 share compares each model's most
likely token with the reference's (the reference's argmax is kept exactly).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.bench.results import Progress
from kit.engine.build import model_params
from kit.errors import EngineError, UsageError

if TYPE_CHECKING:
    import numpy as np

LOGP_FLOOR = 16.0  # nats below the top token that the compressed reference keeps (llama.cpp's choice)
ROW_BLOCK = 64  # rows processed at once, to bound memory with large vocabularies


@dataclass
class PerplexityResult:
    model: str
    path: str
    size: int
    ppl: float
    ppl_stderr: float
    nll_mean: float
    tokens_scored: int
    chunks: int
    n_ctx: int
    load_s: float
    seconds: float
    prompt_tokens_per_s: float


@dataclass
class DivergenceResult:
    model: str
    reference: str
    kl_mean: float
    kl_stderr: float
    kl_p99: float
    kl_max: float
    same_top1: float  # share of scored tokens whose most likely token is the reference's
    ppl_ratio: float  # PPL(model) / PPL(reference)
    delta_p_rms: float  # RMS of the change in the probability of the right token
    tokens: int


@dataclass
class QualityRun:
    text: str
    text_words: int
    text_tokens: int
    n_ctx: int
    threads: int
    perplexity: list[PerplexityResult]
    divergence: list[DivergenceResult]
    notes: list[str] = field(default_factory=list)


class LoadedModel:
    """A GGUF file loaded through llama.cpp's low-level API with one sequence of ``n_ctx`` tokens."""

    def __init__(self, path: Path, n_ctx: int = 512, threads: int | None = None, gpu_layers: int = 0,
                 n_batch: int | None = None) -> None:
        import llama_cpp as L
        from llama_cpp._logger import set_verbose

        set_verbose(os.environ.get("KIT_LLAMA_LOG") == "1")
        if not path.is_file():
            raise UsageError(f"{path} does not exist: give a GGUF model file.")
        self.L, self.path, self.n_ctx = L, path, n_ctx
        started = time.perf_counter()
        L.llama_backend_init()
        self._model = L.llama_model_load_from_file(str(path).encode(), model_params(L, gpu_layers))
        if not self._model:
            raise EngineError(f"llama.cpp could not load {path}: is it a GGUF model file of a supported "
                              "architecture? Run with KIT_LLAMA_LOG=1 to see llama.cpp's log.")
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = n_batch or n_ctx
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads or os.cpu_count() or 1
        self._ctx = L.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            L.llama_model_free(self._model)
            raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens for {path}.")
        self.load_s = time.perf_counter() - started
        self._vocab = L.llama_model_get_vocab(self._model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self._vocab))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self._vocab))
        self.bos = int(L.llama_vocab_bos(self._vocab))
        self.n_params = int(L.llama_model_n_params(self._model))
        self._batch = L.llama_batch_init(n_batch or n_ctx, 0, 1)

    def close(self) -> None:
        L = self.L
        if getattr(self, "_batch", None) is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            L.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            L.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Tokens as llama.cpp's ``common_tokenize(ctx, text, add_special, parse_special=false)``."""
        L = self.L
        data = text.encode("utf-8")
        size = len(data) + 16
        while True:
            buf = (L.llama_token * size)()
            n = L.llama_tokenize(self._vocab, data, len(data), buf, size, add_special, False)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def _decode(self, tokens: list[int], start_pos: int, outputs_from: int) -> int:
        """Decode ``tokens`` at positions ``start_pos..``; logits for positions >= ``outputs_from``."""
        L, b = self.L, self._batch
        b.n_tokens = 0
        n_out = 0
        for i, tok in enumerate(tokens):
            pos = start_pos + i
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
            b.seq_id[i][0] = 0
            b.logits[i] = pos >= outputs_from
            n_out += pos >= outputs_from
        b.n_tokens = len(tokens)
        rc = L.llama_decode(self._ctx, b)
        if rc != 0:
            raise EngineError(f"llama_decode failed ({rc}) on {self.path.name}")
        return n_out

    def chunk_logits(self, chunk: list[int], first: int) -> np.ndarray:
        """Logits (float32, one row per position ``first .. len(chunk)-1``) of one chunk from an empty cache."""
        import numpy as np

        L = self.L
        L.llama_memory_clear(L.llama_get_memory(self._ctx), True)
        tokens = list(chunk)
        if self.add_bos:
            tokens[0] = self.bos
        n_out = self._decode(tokens, 0, first)
        ptr = L.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).copy()

    def decode_speed(self, n_gen: int = 64, n_prompt: int = 32) -> float:
        """Tokens/s of single-sequence decoding (one token a step, no sampling), after a short prompt."""
        L = self.L
        L.llama_memory_clear(L.llama_get_memory(self._ctx), True)
        n_gen = min(n_gen, self.n_ctx - n_prompt - 1)
        self._decode([(100 + i) % self.n_vocab for i in range(n_prompt)], 0, n_prompt - 1)
        self._decode([200 % self.n_vocab], n_prompt, n_prompt)  # first step outside the timing
        started = time.perf_counter()
        for step in range(1, n_gen):
            self._decode([(300 + step) % self.n_vocab], n_prompt + step, n_prompt + step)
        L.llama_synchronize(self._ctx)
        return (n_gen - 1) / (time.perf_counter() - started)


def _log_softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise log-probabilities (float64), the row maxima and log-sum-exps."""
    import numpy as np

    mx = logits.max(axis=1, keepdims=True).astype(np.float64)
    lse = np.log(np.exp(logits.astype(np.float64) - mx).sum(axis=1, keepdims=True))
    return logits - mx - lse, mx, lse


@dataclass
class _Reference:
    """The reference model's compressed log-probabilities, per scored token, in a temporary file."""

    rows: int
    n_vocab: int
    directory: Path
    q: Any = None  # memmap uint16 (rows, n_vocab)
    scale: Any = None  # float32 (rows,)
    min_logp: Any = None  # float32 (rows,)
    top: Any = None  # int32 (rows,)
    nll: Any = None  # float64 (rows,)

    def __post_init__(self) -> None:
        import numpy as np

        self.q = np.lib.format.open_memmap(self.directory / "ref.npy", mode="w+", dtype=np.uint16,
                                           shape=(self.rows, self.n_vocab))
        self.scale = np.zeros(self.rows, np.float32)
        self.min_logp = np.zeros(self.rows, np.float32)
        self.top = np.zeros(self.rows, np.int32)
        self.nll = np.zeros(self.rows, np.float64)

    def store(self, row0: int, logits: np.ndarray, targets: np.ndarray) -> None:
        import numpy as np

        logp, mx, lse = _log_softmax(logits)
        mn = np.maximum(logits.min(axis=1, keepdims=True), mx - LOGP_FLOOR)
        scale = (mx - mn) / 65535.0
        safe = np.where(scale > 0, scale, 1.0)
        q = np.where(logits > mn, np.rint((logits - mn) / safe), 0).astype(np.uint16)
        n = logits.shape[0]
        self.q[row0:row0 + n] = q
        self.scale[row0:row0 + n] = scale[:, 0]
        self.min_logp[row0:row0 + n] = (mn - mx - lse)[:, 0]
        self.top[row0:row0 + n] = logits.argmax(axis=1)
        self.nll[row0:row0 + n] = -logp[np.arange(n), targets]

    def logp(self, row0: int, n: int) -> np.ndarray:
        import numpy as np

        return (self.q[row0:row0 + n].astype(np.float64) * self.scale[row0:row0 + n, None]
                + self.min_logp[row0:row0 + n, None])


def _chunks(tokens: list[int], n_ctx: int, limit: int | None) -> list[list[int]]:
    n = len(tokens) // n_ctx
    if limit is not None:
        n = min(n, limit)
    return [tokens[i * n_ctx:(i + 1) * n_ctx] for i in range(n)]


def _stderr(values: np.ndarray) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    var = float((values ** 2).mean() - values.mean() ** 2)
    return math.sqrt(var / (n - 1)) if var > 0 else 0.0


def evaluate(models: list[Path], text: str, text_name: str = "text", n_ctx: int = 512, chunks: int | None = None,
             threads: int | None = None, gpu_layers: int = 0, names: list[str] | None = None,
             progress: Progress | None = None) -> QualityRun:
    """Perplexity of each model on ``text``; KL divergence and same top-1 of each against the first."""
    import numpy as np

    if not models:
        raise UsageError("give at least one model (--model); the first is the reference.")
    if n_ctx < 8 or n_ctx % 2:
        raise UsageError("the context (--ctx) must be an even number of at least 8 tokens.")
    threads = threads or os.cpu_count() or 1
    names = names or [p.name for p in models]
    first = n_ctx // 2
    per_chunk = n_ctx - 1 - first
    perplexity: list[PerplexityResult] = []
    divergence: list[DivergenceResult] = []
    with tempfile.TemporaryDirectory(prefix="kit-bench-kld-") as tmp:
        ref: _Reference | None = None
        pieces: list[list[int]] = []
        n_tokens = 0
        for index, (path, name) in enumerate(zip(models, names, strict=True)):
            with LoadedModel(path, n_ctx, threads, gpu_layers) as model:
                if ref is None:
                    tokens = model.tokenize(text)
                    n_tokens = len(tokens)
                    if n_tokens < 2 * n_ctx:
                        raise UsageError(f"{text_name} is {n_tokens} tokens long for {name}; perplexity needs "
                                         f"at least {2 * n_ctx} (2 x --ctx): use a longer text or a smaller "
                                         "--ctx.")
                    pieces = _chunks(tokens, n_ctx, chunks)
                    ref = _Reference(len(pieces) * per_chunk, model.n_vocab, Path(tmp))
                elif model.n_vocab != ref.n_vocab:
                    raise UsageError(f"{name} has a vocabulary of {model.n_vocab} tokens but the reference "
                                     f"{names[0]} has {ref.n_vocab}: KL divergence needs the same vocabulary.")
                nll = np.zeros(len(pieces) * per_chunk, np.float64)
                kl = np.zeros_like(nll)
                dp = np.zeros_like(nll)
                same = 0
                started = time.perf_counter()
                for c, piece in enumerate(pieces):
                    logits = model.chunk_logits(piece, first)[:per_chunk]  # the last position predicts nothing
                    targets = np.asarray(piece[first + 1:], dtype=np.int64)
                    row0 = c * per_chunk
                    if index == 0:
                        ref.store(row0, logits, targets)
                    for b in range(0, per_chunk, ROW_BLOCK):
                        block = logits[b:b + ROW_BLOCK]
                        rows = np.arange(block.shape[0])
                        logp, _, _ = _log_softmax(block)
                        r0 = row0 + b
                        nll[r0:r0 + len(rows)] = -logp[rows, targets[b:b + ROW_BLOCK]]
                        if index > 0:
                            base = ref.logp(r0, len(rows))
                            keep = base > -LOGP_FLOOR
                            kl[r0:r0 + len(rows)] = np.where(keep, np.exp(base) * (base - logp), 0.0).sum(axis=1)
                            same += int((block.argmax(axis=1) == ref.top[r0:r0 + len(rows)]).sum())
                            dp[r0:r0 + len(rows)] = (np.exp(-nll[r0:r0 + len(rows)])
                                                     - np.exp(-ref.nll[r0:r0 + len(rows)]))
                    if progress:
                        progress(f"{name} on {text_name}", c + 1, len(pieces))
                seconds = time.perf_counter() - started
                ppl = math.exp(float(nll.mean()))
                perplexity.append(PerplexityResult(
                    model=name, path=str(path), size=path.stat().st_size, ppl=round(ppl, 4),
                    ppl_stderr=round(ppl * _stderr(nll), 4), nll_mean=round(float(nll.mean()), 6),
                    tokens_scored=len(nll), chunks=len(pieces), n_ctx=n_ctx, load_s=round(model.load_s, 3),
                    seconds=round(seconds, 2), prompt_tokens_per_s=round(len(pieces) * n_ctx / seconds, 1)))
                if index > 0:
                    ref_ppl = math.exp(float(ref.nll.mean()))
                    divergence.append(DivergenceResult(
                        model=name, reference=names[0], kl_mean=round(float(kl.mean()), 6),
                        kl_stderr=round(_stderr(kl), 6), kl_p99=round(float(np.percentile(kl, 99)), 6),
                        kl_max=round(float(kl.max()), 6), same_top1=round(same / len(nll), 5),
                        ppl_ratio=round(ppl / ref_ppl, 5), delta_p_rms=round(math.sqrt(float((dp ** 2).mean())), 6),
                        tokens=len(nll)))
        del ref  # release the memmap before the folder goes
    return QualityRun(text=text_name, text_words=len(text.split()), text_tokens=n_tokens, n_ctx=n_ctx,
                      threads=threads, perplexity=perplexity, divergence=divergence)
