"""`kit bench gateway`: what the gateway adds in front of a pool of engines, and how well it keeps a
conversation on one engine.

1. Added latency. A gateway (`kit serve`, every usage rule on: personal-data scan, audit, limits off) whose
   pool holds one `kit engine`, against that engine reached directly, at each concurrency: time to first
   token p50/p95 through the gateway minus straight to the engine, same prompts and sampling, both warmed up.
   Both are first warmed up with every request of the run (the engine's prompt cache then holds them all, so
   neither side pays a prefill the other one did not), then measured in turns, the engine first in one round
   and the gateway first in the next, so that a noisy machine weighs on both; medians over the rounds.
2. Affinity. A gateway whose pool holds every engine; ``conversations`` conversations of ``turns`` turns run
   at once, each turn sent with its conversation id (as the browser chat does) and then, in a second pass,
   without one (an OpenAI client resending its history). Reported: the gateway's affinity hit rate (follow-up
   turns that reached the engine of their previous turn, from its /metrics), the share of prompt tokens the
   engines found in their prompt cache, and TTFT of first turns against follow-up turns.

Everything runs on 127.0.0.1 from one model file; engines share the machine's cores with the gateway.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.bench.servers import kit_server
from kit.bench.serving import Percentiles, RequestRecord, Target, load_prompts, measure_level, model_id, one_request

QUESTIONS = [
    "Peux-tu préciser ?", "Donne un exemple concret.", "Résume en une phrase.", "And in English, briefly?",
    "Quelles sont les étapes suivantes ?", "Qui faut-il prévenir ?",
]


@dataclass
class GatewayConfig:
    engines: int = 2
    concurrency: list[int] = field(default_factory=lambda: [1, 4])
    requests: int = 16
    rounds: int = 2
    max_tokens: int = 32
    conversations: int = 8
    turns: int = 4
    threads: int = 1
    parallel: int = 4
    ctx: int = 2048


@dataclass
class LatencyRow:
    concurrency: int
    direct_ttft_ms: Percentiles
    gateway_ttft_ms: Percentiles
    added_p50_ms: float | None
    added_p95_ms: float | None
    direct_e2el_p50_ms: float | None
    gateway_e2el_p50_ms: float | None
    failed: int


@dataclass
class AffinityRow:
    mode: str  # "conversation id" or "history only"
    turns: int
    follow_ups: int
    hits: int
    hit_rate: float | None
    cached_share: float | None  # prompt tokens found in the engines' caches / prompt tokens read
    first_turn_ttft_ms: Percentiles
    follow_up_ttft_ms: Percentiles
    per_engine: dict[str, int]
    failed: int


def _ttfts(records: list[RequestRecord]) -> list[float]:
    return [r.ttft_s for r in records if r.ok and r.ttft_s is not None]


def _latency(direct: Target, gateway: Target, cfg: GatewayConfig, prompts: list[list[dict[str, str]]],
             progress: Any) -> list[LatencyRow]:
    from kit.bench.energy import EnergyMeter

    meter = EnergyMeter.open()
    rows = []
    top = max(cfg.concurrency)
    for target in (direct, gateway):  # warm-up with every request to come: the engine's cache then holds them
        asyncio.run(measure_level(target, "cold", top, cfg.requests, cfg.max_tokens, prompts, 600, meter,
                                  progress))
    for c in cfg.concurrency:
        runs: dict[str, list[Any]] = {"direct": [], "gateway": []}
        for n in range(cfg.rounds):  # engine first, then gateway first: neither always follows the other
            pair = (("direct", direct), ("gateway", gateway))
            for key, target in pair if n % 2 == 0 else pair[::-1]:
                runs[key].append(asyncio.run(measure_level(target, "measured", c, cfg.requests, cfg.max_tokens,
                                                           prompts, 600, meter, progress)))
        d = [r.ttft_ms.p50 for r in runs["direct"]]
        g = [r.ttft_ms.p50 for r in runs["gateway"]]
        d95 = [r.ttft_ms.p95 for r in runs["direct"]]
        g95 = [r.ttft_ms.p95 for r in runs["gateway"]]
        rows.append(LatencyRow(
            concurrency=c,
            direct_ttft_ms=Percentiles(None, _median(d), _median(d95), None),
            gateway_ttft_ms=Percentiles(None, _median(g), _median(g95), None),
            added_p50_ms=_diff(_median(g), _median(d)), added_p95_ms=_diff(_median(g95), _median(d95)),
            direct_e2el_p50_ms=_median([r.e2el_ms.p50 for r in runs["direct"]]),
            gateway_e2el_p50_ms=_median([r.e2el_ms.p50 for r in runs["gateway"]]),
            failed=sum(r.failed for rs in runs.values() for r in rs)))
    return rows


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(statistics.median(found), 1) if found else None


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 1) if a is not None and b is not None else None


def _metrics(url: str, headers: dict[str, str] | None = None) -> str:
    import httpx

    return httpx.get(url + "/metrics", headers=headers or {}, timeout=30).text


def _counter(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def _engine_cache(engines: list[Target]) -> tuple[float, float]:
    total = cached = 0.0
    for e in engines:
        text = _metrics(e.url)
        total += _counter(text, "kit_engine_prompt_tokens_total")
        cached += _counter(text, "kit_engine_prompt_tokens_cached")
    return total, cached


async def _conversations(gateway: Target, cfg: GatewayConfig, prompts: list[list[dict[str, str]]],
                         with_id: bool) -> tuple[list[RequestRecord], list[RequestRecord]]:
    import httpx

    firsts: list[RequestRecord] = []
    follow_ups: list[RequestRecord] = []
    async with httpx.AsyncClient(timeout=600, headers=gateway.all_headers()) as client:
        model = await model_id(client, gateway)

        async def one(i: int) -> None:
            extra: dict[str, Any] = {}
            if with_id:
                made = await client.post(gateway.url + "/v1/conversations", json={"title": f"bench {i}"})
                made.raise_for_status()
                extra["conversation_id"] = made.json()["id"]
            history = [*prompts[i % len(prompts)][:1]]
            tag = "dossier" if with_id else "demande"  # each pass opens new conversations: no cache from the other
            history[0] = {**history[0], "content": f"{history[0]['content']} ({tag} {i})"}
            for turn in range(cfg.turns):
                record = await one_request(client, gateway, model, history, cfg.max_tokens, extra)
                (firsts if turn == 0 else follow_ups).append(record)
                history += [{"role": "assistant", "content": record.text or "…"},
                            {"role": "user", "content": QUESTIONS[(i + turn) % len(QUESTIONS)]}]

        await asyncio.gather(*[one(i) for i in range(cfg.conversations)])
    return firsts, follow_ups


def _affinity(gateway: Target, engines: list[Target], cfg: GatewayConfig,
              prompts: list[list[dict[str, str]]]) -> list[AffinityRow]:
    rows = []
    for mode, with_id in (("conversation id", True), ("history only", False)):
        before_metrics = _metrics(gateway.url, gateway.all_headers())
        served_before = _served(before_metrics)
        total_before, cached_before = _engine_cache(engines)
        firsts, follow_ups = asyncio.run(_conversations(gateway, cfg, prompts, with_id))
        after_metrics = _metrics(gateway.url, gateway.all_headers())
        total_after, cached_after = _engine_cache(engines)
        ups = int(_counter(after_metrics, "kit_pool_affinity_follow_ups_total")
                  - _counter(before_metrics, "kit_pool_affinity_follow_ups_total"))
        hits = int(_counter(after_metrics, "kit_pool_affinity_hits_total")
                   - _counter(before_metrics, "kit_pool_affinity_hits_total"))
        read = total_after - total_before
        served_after = _served(after_metrics)
        rows.append(AffinityRow(
            mode=mode, turns=len(firsts) + len(follow_ups), follow_ups=ups, hits=hits,
            hit_rate=round(hits / ups, 3) if ups else None,
            cached_share=round((cached_after - cached_before) / read, 3) if read else None,
            first_turn_ttft_ms=Percentiles.of(_ttfts(firsts), 1000),
            follow_up_ttft_ms=Percentiles.of(_ttfts(follow_ups), 1000),
            per_engine={n: int(v - served_before.get(n, 0)) for n, v in served_after.items()},
            failed=sum(not r.ok for r in firsts + follow_ups)))
    return rows


def _served(metrics: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(r'^kit_pool_engine_served\{engine="([^"]+)"\} (\S+)$', metrics, re.M)}


def run_gateway_bench(model: Path, cfg: GatewayConfig, progress: Any = None) -> dict[str, Any]:
    """Start the engines and the two gateways, measure, stop them; the result as a JSON-ready dict."""
    prompts = load_prompts()
    with ExitStack() as stack:
        engines = [stack.enter_context(kit_server(model, cfg.threads, cfg.parallel, cfg.ctx, name=f"engine-{i}",
                                                  command="engine")) for i in range(cfg.engines)]

        def gateway(members: list[Target], name: str) -> Target:
            entries = [{"name": e.name, "url": e.url, "capacity": cfg.parallel} for e in members]
            return stack.enter_context(kit_server(model, cfg.threads, cfg.parallel, cfg.ctx, name=name,
                                                  config={"server": {"engines": entries}}))

        single = gateway(engines[:1], "gateway-1-engine")
        latency = _latency(engines[0], single, cfg, prompts, progress)
        pooled = gateway(engines, f"gateway-{cfg.engines}-engines")
        affinity = _affinity(pooled, engines, cfg, prompts)
    return {"config": asdict(cfg), "latency": [asdict(r) for r in latency], "affinity": [asdict(r) for r in affinity]}
