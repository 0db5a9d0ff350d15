"""Serving benchmark: concurrent streaming chat against kit's gateway and two references, in one run.

Targets, on the same model file and thread count:
  kit        `kit serve` (continuous batching, every usage rule on: the gateway scans each prompt)
  llama_cpp  `python -m llama_cpp.server` (llama-cpp-python's packaged server)
  inprocess  llama-cpp-python's `Llama.create_chat_completion(stream=True)`, one sequence, no HTTP
  raw        llama.cpp batched decode with no sampling and no HTTP: the ceiling of this machine
  llama-server  llama.cpp's own C++ server, when a binary is given (--llama-server or PATH)

For each concurrency (1, 2, 4, 8 by default): aggregate tokens/s, TTFT p50/p95, inter-token latency
p50/p95, and how many streams completed (a stream that ends with no text or no finish counts as cut).

    python benchmarks/serving.py [--targets kit,llama_cpp,inprocess,raw] [--concurrency 1,2,4,8]
                                 [--max-tokens 96] [--threads 2] [--out benchmarks/results/serving.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from benchmarks.pipeline import smol_gguf

if TYPE_CHECKING:
    from collections.abc import Iterator

    from llama_cpp.llama_types import CreateChatCompletionStreamResponse

REQUESTS_PER_STREAM = 4  # requests per concurrent stream: enough that the ramp-down at the end weighs little
PROMPTS = [
    "Explain in three sentences what the GDPR is.", "Write a short poem about the sea.",
    "List five tips to write clear emails.", "What is a neural network? Answer briefly.",
    "Summarise the benefits of exercise.", "Describe Paris in four sentences.", "How do I boil an egg?",
    "Give three reasons to learn Python.",
]


class TokenClock:
    """Time to first token and the gaps between the next ones, for one stream."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ttft: float | None = None
        self.tokens = 0
        self.gaps: list[float] = []
        self._last = self.start

    def tick(self) -> None:
        now = time.perf_counter()
        self.tokens += 1
        if self.ttft is None:
            self.ttft = now - self.start
        else:
            self.gaps.append(now - self._last)
        self._last = now


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    tokens: int
    wall_s: float
    agg_tok_s: float
    ttft_p50: float | None
    ttft_p95: float | None
    itl_p50_ms: float | None
    itl_p95_ms: float | None
    completed: int
    min_tokens: int
    errors: list[str] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _summarise(target: str, conc: int, runs: list[tuple[float | None, int, list[float], bool, str]],
               wall: float) -> Result:
    toks = sum(r[1] for r in runs)
    ttfts = [r[0] for r in runs if r[0] is not None]
    itls = [x for r in runs for x in r[2]]
    return Result(target, conc, len(runs), toks, round(wall, 2), round(toks / wall, 1),
                  _round(_pct(ttfts, 0.5)), _round(_pct(ttfts, 0.95)),
                  _round(_pct(itls, 0.5), 1000), _round(_pct(itls, 0.95), 1000),
                  sum(1 for r in runs if r[3] and r[1] > 0), min((r[1] for r in runs), default=0),
                  sorted({r[4] for r in runs if r[4]}))


def _round(v: float | None, scale: float = 1) -> float | None:
    return None if v is None else round(v * scale, 3)


async def _http_load(url: str, conc: int, reqs: int, max_tokens: int, headers: dict[str, str]) -> Result:
    import httpx

    model = httpx.get(url + "/v1/models", headers=headers).json()["data"][0]["id"]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[float | None, int, list[float], bool, str]:
        body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                "max_tokens": max_tokens, "temperature": 0, "stream": True}
        clock = TokenClock()
        done, err = False, ""
        try:
            async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
                if r.status_code != 200:
                    await r.aread()
                    return None, 0, [], False, f"HTTP {r.status_code}: {r.text[:120]}"
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line[6:].strip() == "[DONE]":
                        done = True
                        break
                    ch = json.loads(line[6:])
                    if not ch.get("choices"):
                        continue
                    if ch["choices"][0]["delta"].get("content"):
                        clock.tick()
                    if ch["choices"][0].get("finish_reason"):
                        done = True
        except httpx.HTTPError as exc:
            err = f"{type(exc).__name__}: {exc}"
        return clock.ttft, clock.tokens, clock.gaps, done, err

    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(timeout=600) as client:
        async def guarded(i: int) -> tuple[float | None, int, list[float], bool, str]:
            async with sem:
                return await one(client, i)

        t0 = time.perf_counter()
        runs = await asyncio.gather(*[guarded(i) for i in range(reqs)])
        wall = time.perf_counter() - t0
    return _summarise("", conc, list(runs), wall)


def _wait_health(url: str, proc: subprocess.Popen[bytes], path: str, timeout: float = 180) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready in {timeout}s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_kit(model: Path, threads: int, concs: list[int], max_tokens: int, ctx: int,
              per_stream: int = REQUESTS_PER_STREAM) -> list[Result]:
    import httpx
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="kit-bench-"))
    home = tmp / "home"
    (home / "models" / "bench").mkdir(parents=True)
    shutil.copy(model, home / "models" / "bench" / model.name)
    from kit.files import sha256_file
    from kit.models.lock import LockEntry, write_lock_entry

    write_lock_entry(home, LockEntry(name="bench", file=f"bench/{model.name}", sha256=sha256_file(model),
                                     size=model.stat().st_size, source={"kind": "local", "path": str(model)},
                                     quant="", licence=""))
    cfg = tmp / "kit.yaml"
    cfg.write_text(yaml.safe_dump({"deployment": {"purpose": "benchmark"}, "models": {"default": "bench"}}))
    port = _free_port()
    env = {**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(cfg)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "kit"), "serve", "--port", str(port),
                             "--parallel", str(max(concs)), "--ctx", str(ctx), "--threads", str(threads)],
                            env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    headers = {"X-Kit-User": "bench"}
    try:
        _wait_health(url, proc, "/health")
        charter = httpx.get(url + "/v1/charter", headers=headers).json()
        from kit.config import load_settings

        answers = [q.answer for q in load_settings(cfg).policy.quiz]
        httpx.post(url + "/v1/charter/acknowledge", headers=headers,
                   json={"version": charter["version"], "quiz_answers": answers}).raise_for_status()
        return _sweep(url, "kit", concs, max_tokens, per_stream, headers)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep(url: str, target: str, concs: list[int], max_tokens: int, per_stream: int,
           headers: dict[str, str]) -> list[Result]:
    """Warm up, then load the server at each concurrency."""
    asyncio.run(_http_load(url, 1, 1, 8, headers))
    out = []
    for c in concs:
        r = asyncio.run(_http_load(url, c, per_stream * c, max_tokens, headers))
        r.target = target
        out.append(r)
        print(_line(r), flush=True)
    return out


def _bench_process(target: str, argv: list[str], port: int, health: str, concs: list[int], max_tokens: int,
                   per_stream: int) -> list[Result]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc, health)
        return _sweep(url, target, concs, max_tokens, per_stream, {})
    finally:
        _stop(proc)


def bench_llama_cpp_server(model: Path, threads: int, concs: list[int], max_tokens: int, ctx: int,
                           per_stream: int = REQUESTS_PER_STREAM) -> list[Result]:
    port = _free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_ctx", str(ctx)]
    return _bench_process("llama_cpp.server", argv, port, "/v1/models", concs, max_tokens, per_stream)


def bench_llama_server(binary: str, model: Path, threads: int, concs: list[int], max_tokens: int, ctx: int,
                       per_stream: int = REQUESTS_PER_STREAM) -> list[Result]:
    """llama.cpp's own C++ server with as many slots as the highest concurrency (same model and threads)."""
    port = _free_port()
    n = max(concs)
    argv = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
            "-tb", str(threads), "-np", str(n), "-c", str(ctx * n)]
    return _bench_process("llama-server", argv, port, "/health", concs, max_tokens, per_stream)


def bench_inprocess(model: Path, threads: int, max_tokens: int, ctx: int) -> list[Result]:
    from llama_cpp import Llama

    from kit.engine.build import safe_llama_defaults

    with safe_llama_defaults():
        llm = Llama(str(model), n_ctx=ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    runs = []
    llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=4)
    t0 = time.perf_counter()
    for i in range(4):
        clock = TokenClock()
        stream = cast("Iterator[CreateChatCompletionStreamResponse]",
                      llm.create_chat_completion([{"role": "user", "content": PROMPTS[i]}],
                                                 max_tokens=max_tokens, temperature=0, stream=True))
        for ch in stream:
            if ch["choices"][0]["delta"].get("content"):
                clock.tick()
        runs.append((clock.ttft, clock.tokens, clock.gaps, True, ""))
    r = _summarise("inprocess", 1, runs, time.perf_counter() - t0)
    print(_line(r), flush=True)
    return [r]


def bench_raw(model: Path, threads: int, concs: list[int]) -> list[dict[str, Any]]:
    """The probe's measurement: one decode step for N sequences, no sampling, no HTTP."""
    import llama_cpp as L
    from llama_cpp._logger import set_verbose

    from kit.engine.build import model_params

    set_verbose(False)
    L.llama_backend_init()
    mdl = L.llama_model_load_from_file(str(model).encode(), model_params(L))
    out = []

    def add(batch: L.llama_batch, tok: int, pos: int, seq: int, logits: bool) -> None:
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1  # type: ignore[call-overload]
        batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens += 1

    for nseq in concs:
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_seq_max = 4096, 512, nseq
        cp.n_threads = cp.n_threads_batch = threads
        ctx = L.llama_init_from_model(mdl, cp)
        batch = L.llama_batch_init(512, 0, nseq)
        batch.n_tokens = 0
        for s in range(nseq):
            for p in range(16):
                add(batch, 100 + p, p, s, p == 15)
        L.llama_decode(ctx, batch)
        steps = 64
        t = time.perf_counter()
        for step in range(steps):
            batch.n_tokens = 0
            for s in range(nseq):
                add(batch, 200 + step, 16 + step, s, True)
            L.llama_decode(ctx, batch)
        dt = time.perf_counter() - t
        row = {"target": "raw", "concurrency": nseq, "step_ms": round(1000 * dt / steps, 2),
               "agg_tok_s": round(nseq * steps / dt, 1)}
        out.append(row)
        print(f"raw        conc={nseq}  {row['agg_tok_s']:7.1f} tok/s  step {row['step_ms']} ms", flush=True)
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    L.llama_model_free(mdl)
    return out


def _line(r: Result) -> str:
    return (f"{r.target:16} conc={r.concurrency}  {r.agg_tok_s:7.1f} tok/s  ttft p50 {r.ttft_p50}s p95 {r.ttft_p95}s  "
            f"itl p50 {r.itl_p50_ms}ms p95 {r.itl_p95_ms}ms  completed {r.completed}/{r.requests} "
            f"min_tokens {r.min_tokens}" + (f"  errors {r.errors}" if r.errors else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    ap.add_argument("--targets", default="raw,inprocess,kit,llama_cpp,llama_server",
                    help="llama_server runs only when a llama-server binary is found (--llama-server or PATH)")
    ap.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER") or shutil.which("llama-server"),
                    help="path of llama.cpp's llama-server binary, built from the same llama.cpp version")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--ctx", type=int, default=1024, help="context per sequence")
    ap.add_argument("--requests-per-stream", type=int, default=REQUESTS_PER_STREAM,
                    help="requests sent per concurrent stream at each concurrency")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serving.json"))
    args = ap.parse_args()
    model = args.model or smol_gguf()
    concs = [int(c) for c in args.concurrency.split(",")]
    targets = args.targets.split(",")
    report: dict[str, Any] = {"model": str(model), "threads": args.threads, "max_tokens": args.max_tokens,
                              "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": []}
    if "raw" in targets:
        report["results"] += bench_raw(model, args.threads, concs)
    if "inprocess" in targets:
        report["results"] += [asdict(r) for r in bench_inprocess(model, args.threads, args.max_tokens, args.ctx)]
    if "kit" in targets:
        report["results"] += [asdict(r) for r in bench_kit(model, args.threads, concs, args.max_tokens, args.ctx,
                                                           args.requests_per_stream)]
    if "llama_cpp" in targets:
        try:
            report["results"] += [asdict(r) for r in
                                  bench_llama_cpp_server(model, args.threads, concs, args.max_tokens, args.ctx,
                                                         args.requests_per_stream)]
        except (RuntimeError, OSError) as exc:
            print(f"llama_cpp.server could not run ({exc}); install llama-cpp-python[server]", file=sys.stderr)
    if "llama_server" in targets and args.llama_server:
        report["results"] += [asdict(r) for r in bench_llama_server(args.llama_server, model, args.threads, concs,
                                                                    args.max_tokens, args.ctx,
                                                                    args.requests_per_stream)]
    report["ratios"] = ratios(report["results"])
    print(json.dumps(report["ratios"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    def tps(target: str, c: int) -> float | None:
        for r in results:
            if r["target"] == target and r["concurrency"] == c:
                return float(r["agg_tok_s"])
        return None

    out: dict[str, Any] = {}
    for target in ("kit", "raw", "llama-server", "llama_cpp.server"):
        one = tps(target, 1)
        if one:
            out[target] = {f"x{c}": round((tps(target, c) or 0) / one, 2) for c in (2, 4, 8) if tps(target, c)}
    kit1, inproc = tps("kit", 1), tps("inprocess", 1)
    if kit1 and inproc:
        out["kit_http_vs_inprocess_single"] = round(kit1 / inproc, 2)
    if results:
        out["completion"] = {r["target"]: f"{r.get('completed')}/{r.get('requests')}" for r in results
                             if "completed" in r and r["concurrency"] == max(x["concurrency"] for x in results)}
    return out


if __name__ == "__main__":
    main()
