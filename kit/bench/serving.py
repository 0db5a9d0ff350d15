"""Serving benchmark: concurrent streaming chat completions against OpenAI-compatible servers.

Each target (kit, llama.cpp's llama-server, llama-cpp-python's server, vLLM...) gets the same prompts
in the same order and the same sampling: temperature 0, no repetition or frequency penalty, the
same ``max_tokens``, ``ignore_eos`` (honoured by servers that support it, so that outputs have the
same length). Tokens are counted from each server's own ``usage`` (``stream_options.include_usage``);
a server that sends no usage is counted by content chunks and its rows say so (``token_source``).

Each target first gets one pass at its highest concurrency: that cold first burst is the warm-up and
is reported on its own row (``phase="cold"``). Then, per concurrency level: TTFT, TPOT, ITL and
end-to-end latency (mean, p50, p95, p99 in ms, vLLM's serving-benchmark names), output tokens/s per
request, aggregate output tokens/s, requests/s, completion rate and errors by kind; and energy per
1,000 generated tokens where the machine has counters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit import sse
from kit.bench.energy import EnergyMeter
from kit.bench.results import Progress, data_dir
from kit.errors import UsageError


@dataclass
class Target:
    """One OpenAI-compatible server to measure."""

    name: str
    url: str
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    model: str | None = None  # model id sent in requests; default: the first of /v1/models
    pid: int | None = None  # the server's process, for a server the bench started
    # This target's own conversations, in place of the run's (the RAG load: kit gets the questions and searches
    # its documents, llama-server the prompts kit's search gives), and fields added to each request's body.
    prompts: list[list[dict[str, str]]] | None = None
    body: dict[str, Any] = field(default_factory=dict)
    bodies: list[dict[str, Any]] | None = None  # per request (by prompt), in place of ``body``

    def all_headers(self) -> dict[str, str]:
        h = dict(self.headers)
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h


@dataclass
class Percentiles:
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: list[float], scale: float = 1.0) -> Percentiles:
        if not values:
            return cls(None, None, None, None)
        v = sorted(x * scale for x in values)
        return cls(round(sum(v) / len(v), 3), _pct(v, 50), _pct(v, 95), _pct(v, 99))


def _pct(sorted_values: list[float], q: float) -> float:
    """Percentile with linear interpolation (numpy's default), on sorted values."""
    if len(sorted_values) == 1:
        return round(sorted_values[0], 3)
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo), 3)


@dataclass
class RequestRecord:
    ok: bool
    ttft_s: float | None
    e2e_s: float
    chunk_times: list[float]  # seconds from start at which each content chunk arrived
    output_tokens: int
    prompt_tokens: int | None
    token_source: str  # "usage" or "chunks"
    finish_reason: str | None
    error_kind: str | None = None
    error: str | None = None
    text: str = ""  # the answer, for a conversation's next turn


@dataclass
class LevelResult:
    target: str
    phase: str  # "cold" (first burst, the warm-up) or "measured"
    concurrency: int
    requests: int
    completed: int
    failed: int
    completion_rate: float
    duration_s: float
    request_throughput: float  # completed requests per second
    output_throughput: float  # generated tokens per second, all streams together
    total_output_tokens: int
    total_input_tokens: int | None
    token_source: str
    ttft_ms: Percentiles
    tpot_ms: Percentiles  # (e2e - ttft) / (output tokens - 1), per request
    itl_ms: Percentiles  # gaps between content chunks
    e2el_ms: Percentiles
    output_tps_per_request: Percentiles
    errors: dict[str, int]
    error_samples: list[str]
    energy_j: float | None = None
    joules_per_1k_tokens: float | None = None
    energy_note: str = ""
    rounds: int = 1  # passes pooled in this row (``--rounds``: the targets take turns, see kit.bench.rounds)
    per_round: list[dict[str, Any]] = field(default_factory=list)  # each pass's own figures, in round order


@dataclass
class ServingConfig:
    concurrency: list[int]
    requests: int | None  # per level; None: 4 per concurrent stream (at least 8)
    max_tokens: int
    prompts_file: str
    prompts: int
    sampling: dict[str, Any]
    timeout_s: float = 600.0
    rounds: int = 1  # passes per level and target; above 1 the targets run together and take turns
    fresh: bool = False  # each pass takes the prompts after the last pass's (the RAG load), not the first again

    def requests_at(self, concurrency: int) -> int:
        return self.requests if self.requests else max(8, 4 * concurrency)

    def next_first(self, first: int, sent: int) -> int:
        """Where the pass after one of ``sent`` requests from ``first`` starts: the same place, or with ``fresh``
        the next pair of prompts (a question and its follow-up stay together)."""
        return first + sent + sent % 2 if self.fresh else 0


@dataclass
class ServingRun:
    config: ServingConfig
    targets: list[dict[str, str]]
    results: list[LevelResult]
    energy: str  # sources used, or why energy is not available


# Same sampling for every target. ``repeat_penalty`` is llama.cpp's name, ``repetition_penalty``
# vLLM's; servers ignore the fields they do not know.
SAMPLING: dict[str, Any] = {
    "temperature": 0.0, "top_p": 1.0, "seed": 0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
    "repeat_penalty": 1.0, "repetition_penalty": 1.0, "ignore_eos": True,
}


def load_prompts(path: Path | None = None) -> list[list[dict[str, str]]]:
    """The shipped prompts (``benchmarks/data/prompts.jsonl``): one conversation (messages) a line."""
    path = path or data_dir() / "prompts.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the prompts file {path}: {exc}") from None
    out: list[list[dict[str, str]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: not JSON ({exc})") from None
        messages = item.get("messages") if isinstance(item, dict) else None
        if not (isinstance(messages, list) and messages and messages[-1].get("role") == "user"):
            raise UsageError(f"{path}:{n}: each line needs 'messages', ending with a user turn")
        out.append([{"role": str(m["role"]), "content": str(m["content"])} for m in messages])
    if not out:
        raise UsageError(f"{path} holds no prompt")
    return out


def _error_kind(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "stream_cut"
    if isinstance(exc, json.JSONDecodeError):
        return "bad_json"
    return type(exc).__name__


async def one_request(client: Any, target: Target, model: str, messages: list[dict[str, str]],
                      max_tokens: int, extra: dict[str, Any] | None = None) -> RequestRecord:
    """One streamed chat request, timed chunk by chunk (``extra``: more fields of the request body)."""
    import httpx

    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, **SAMPLING, **(extra or {})}
    parts: list[str] = []
    start = time.perf_counter()
    chunks: list[float] = []
    usage: dict[str, Any] | None = None
    finish: str | None = None
    done = False
    try:
        async with client.stream("POST", target.url + "/v1/chat/completions", json=body,
                                 headers=target.all_headers()) as r:
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                return RequestRecord(False, None, time.perf_counter() - start, [], 0, None, "chunks", None,
                                     f"http_{r.status_code}", text[:200])
            async for line in r.aiter_lines():
                chunk = sse.parse(line)
                if chunk is None:
                    continue
                if chunk is sse.DONE:
                    done = True
                    break
                if "error" in chunk and not chunk.get("choices"):
                    return RequestRecord(False, None, time.perf_counter() - start, chunks, len(chunks), None,
                                         "chunks", None, "server_error", str(chunk["error"])[:200])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        chunks.append(time.perf_counter() - start)
                        parts.append(choice["delta"]["content"])
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        return RequestRecord(False, chunks[0] if chunks else None, time.perf_counter() - start, chunks,
                             len(chunks), None, "chunks", finish, _error_kind(exc), str(exc)[:200])
    e2e = time.perf_counter() - start
    tokens, source = len(chunks), "chunks"
    prompt_tokens = None
    if usage and isinstance(usage.get("completion_tokens"), int):
        tokens, source = int(usage["completion_tokens"]), "usage"
        prompt_tokens = usage.get("prompt_tokens")
    ttft = chunks[0] if chunks else None
    if not chunks:
        return RequestRecord(False, None, e2e, chunks, tokens, prompt_tokens, source, finish, "empty",
                             "the stream carried no text")
    if finish is None and not done:
        return RequestRecord(False, ttft, e2e, chunks, tokens, prompt_tokens, source, finish, "stream_cut",
                             "the stream ended without finish_reason or [DONE]")
    if finish is None:
        return RequestRecord(False, ttft, e2e, chunks, tokens, prompt_tokens, source, finish, "no_finish",
                             "the stream ended with [DONE] but no finish_reason")
    return RequestRecord(True, ttft, e2e, chunks, tokens, prompt_tokens, source, finish, text="".join(parts))


def summarise(target: str, phase: str, concurrency: int, records: list[RequestRecord],
               duration: float) -> LevelResult:
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens for r in records)
    prompt = [r.prompt_tokens for r in records if isinstance(r.prompt_tokens, int)]
    tpot = [(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in ok
            if r.ttft_s is not None and r.output_tokens > 1]
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]
    per_request = [r.output_tokens / r.e2e_s for r in ok if r.e2e_s > 0]
    errors: dict[str, int] = {}
    samples: list[str] = []
    for r in records:
        if r.error_kind:
            errors[r.error_kind] = errors.get(r.error_kind, 0) + 1
            if r.error and len(samples) < 3:
                samples.append(f"{r.error_kind}: {r.error}")
    sources = {r.token_source for r in records if r.output_tokens}
    return LevelResult(
        target=target, phase=phase, concurrency=concurrency, requests=len(records), completed=len(ok),
        failed=len(records) - len(ok), completion_rate=round(len(ok) / len(records), 3) if records else 0.0,
        duration_s=round(duration, 3), request_throughput=round(len(ok) / duration, 3) if duration else 0.0,
        output_throughput=round(tokens / duration, 2) if duration else 0.0, total_output_tokens=tokens,
        total_input_tokens=sum(prompt) if prompt else None,
        token_source="usage" if sources == {"usage"} else ("chunks" if sources == {"chunks"} else "mixed"),
        ttft_ms=Percentiles.of([r.ttft_s for r in ok if r.ttft_s is not None], 1000),
        tpot_ms=Percentiles.of(tpot, 1000), itl_ms=Percentiles.of(itl, 1000),
        e2el_ms=Percentiles.of([r.e2e_s for r in ok], 1000), output_tps_per_request=Percentiles.of(per_request),
        errors=errors, error_samples=samples,
    )


async def model_id(client: Any, target: Target) -> str:
    import httpx

    if target.model:
        return target.model
    try:
        r = await client.get(target.url + "/v1/models", headers=target.all_headers())
        r.raise_for_status()
        return str(r.json()["data"][0]["id"])
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return "default"


@dataclass
class Pass:
    """The requests of one pass at one concurrency, as sent: what a level's figures are made from."""

    records: list[RequestRecord]
    duration_s: float
    energy_j: float | None
    energy_note: str


async def measure_pass(target: Target, concurrency: int, requests: int, max_tokens: int,
                       prompts: list[list[dict[str, str]]], timeout: float, meter: EnergyMeter,
                       progress: Progress | None, label: str, first: int = 0) -> Pass:
    """``requests`` streamed chats, ``concurrency`` at a time (closed loop: each stream sends its next
    request when its answer ends), prompts taken in order from the ``first`` (the list read as a ring)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        model = await model_id(client, target)
        prompts = target.prompts or prompts
        queue = list(range(first, first + requests))
        records: list[RequestRecord] = []

        async def worker() -> None:
            while queue:
                i = queue.pop(0)
                extra = target.bodies[i % len(target.bodies)] if target.bodies else target.body
                records.append(await one_request(client, target, model, prompts[i % len(prompts)], max_tokens,
                                                 extra))
                if progress:
                    progress(label, len(records), requests)

        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(min(concurrency, requests))])
        duration = time.perf_counter() - t0
        energy = meter.stop()
    return Pass(records, duration, energy.joules, energy.reason)


def level_result(target: str, phase: str, concurrency: int, passes: list[Pass]) -> LevelResult:
    """One row from one pass or several (rounds): requests pooled, durations and energy added."""
    records = [r for p in passes for r in p.records]
    result = summarise(target, phase, concurrency, records, sum(p.duration_s for p in passes))
    joules = [p.energy_j for p in passes]
    result.energy_j = None if None in joules else round(sum(j for j in joules if j is not None), 3)
    if result.energy_j is not None and result.total_output_tokens > 0:
        result.joules_per_1k_tokens = round(result.energy_j * 1000 / result.total_output_tokens, 3)
    result.energy_note = passes[0].energy_note if passes else ""
    return result


async def measure_level(target: Target, phase: str, concurrency: int, requests: int, max_tokens: int,
                        prompts: list[list[dict[str, str]]], timeout: float, meter: EnergyMeter,
                        progress: Progress | None, first: int = 0) -> LevelResult:
    one = await measure_pass(target, concurrency, requests, max_tokens, prompts, timeout, meter, progress,
                             f"{target.name} {phase} c={concurrency}", first)
    return level_result(target.name, phase, concurrency, [one])


def run_target(target: Target, config: ServingConfig, prompts: list[list[dict[str, str]]],
               meter: EnergyMeter | None = None, progress: Progress | None = None) -> list[LevelResult]:
    """The cold first burst at the highest concurrency (the warm-up), then every level in order."""
    meter = meter or EnergyMeter.open()
    top = max(config.concurrency)
    out = [asyncio.run(measure_level(target, "cold", top, top, config.max_tokens, prompts, config.timeout_s, meter,
                              progress))]
    first = config.next_first(0, top)
    for c in config.concurrency:
        out.append(asyncio.run(measure_level(target, "measured", c, config.requests_at(c), config.max_tokens, prompts,
                                      config.timeout_s, meter, progress, first)))
        first = config.next_first(first, config.requests_at(c))
    return out


def make_config(concurrency: list[int], requests: int | None, max_tokens: int, prompts_file: Path | None = None,
                rounds: int = 1) -> tuple[ServingConfig, list[list[dict[str, str]]]]:
    if not concurrency or any(c < 1 for c in concurrency):
        raise UsageError("concurrency levels must be whole numbers of at least 1, e.g. 1,2,4,8.")
    if max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1.")
    if requests is not None and requests < 1:
        raise UsageError("--requests must be at least 1.")
    if rounds < 1:
        raise UsageError("--rounds must be at least 1.")
    path = prompts_file or data_dir() / "prompts.jsonl"
    prompts = load_prompts(path)
    cfg = ServingConfig(concurrency=sorted(set(concurrency)), requests=requests, max_tokens=max_tokens,
                        prompts_file=str(path), prompts=len(prompts), sampling=dict(SAMPLING), rounds=rounds)
    return cfg, prompts


# A target, or a server to start for the time of its measurement (kit.bench.servers' context managers).
TargetSource = Target | Callable[[], AbstractContextManager[Target]]


def run_serving(sources: list[TargetSource], config: ServingConfig, prompts: list[list[dict[str, str]]],
                progress: Progress | None = None,
                checkpoint: Callable[[ServingRun], None] | None = None) -> ServingRun:
    """Measure each target in turn (never two at once: they would share the machine).

    Servers given as context-manager factories are started just before their measurement and
    stopped right after, so that only one runs at a time. (With ``--rounds``, kit.bench.rounds starts
    them all first and they take turns level by level.)
    """
    check_sources(sources)
    meter = EnergyMeter.open()
    results: list[LevelResult] = []
    described: list[dict[str, str]] = []
    for source in sources:
        if isinstance(source, Target):
            target_results, target = run_target(source, config, prompts, meter, progress), source
        else:
            with source() as target:
                if progress:
                    progress(f"{target.name} started", 1, 1)
                target_results = run_target(target, config, prompts, meter, progress)
        check_name(described, target)
        described.append(describe(target))
        results += target_results
        if checkpoint:  # long runs keep what they measured so far
            checkpoint(ServingRun(config=config, targets=list(described), results=list(results),
                                  energy=energy_sources(meter)))
    return ServingRun(config=config, targets=described, results=results, energy=energy_sources(meter))


def check_sources(sources: list[TargetSource]) -> None:
    if not sources:
        raise UsageError("no target to measure: give --url (or start a reference server).")
    names = [s.name for s in sources if isinstance(s, Target)]
    if len(set(names)) != len(names):
        raise UsageError(f"target names must differ: {', '.join(names)} (give each --url its own --name).")


def check_name(described: list[dict[str, str]], target: Target) -> None:
    if any(d["name"] == target.name for d in described):
        raise UsageError(f"two targets are named {target.name}: give each --url its own --name.")


def describe(target: Target) -> dict[str, str]:
    return {"name": target.name, "url": target.url, "note": target.note}


def energy_sources(meter: EnergyMeter) -> str:
    return ", ".join(meter.sources) if meter.available else meter.reason
