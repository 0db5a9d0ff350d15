"""Rounds: the targets of a serving run take turns, so that the machine's drift falls on all of them alike.

On a shared or throttled machine the speed of one server drifts by 10 % or more from one minute to the
next. Measured one after the other, two servers meet different minutes, and a comparison of them
measures the drift as much as the servers. With ``--rounds N`` every target is started first (a
server waiting for requests takes no measurable CPU), each gets its cold first burst, then at each
concurrency level the targets take turns N times, the order rotating every round (A B C, then B C A,
then C A B...) so that no target is always first or last.

A level's row pools the requests of its N passes: percentiles over all of them, throughput = all
tokens over the passes' durations added. ``per_round`` keeps each pass's own figures and its place in
its round, so a reader can see how the targets fared round by round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from kit.bench.energy import EnergyMeter
from kit.bench.results import Progress
from kit.bench.serving import (
    LevelResult,
    Pass,
    ServingConfig,
    ServingRun,
    Target,
    TargetSource,
    check_name,
    check_sources,
    describe,
    energy_sources,
    level_result,
    measure_level,
    measure_pass,
    summarise,
)


def turns(targets: list[Target], round_index: int) -> list[Target]:
    """The order of round ``round_index`` (from 0): the list rotated by one place each round."""
    k = round_index % len(targets) if targets else 0
    return targets[k:] + targets[:k]


def run_rounds(sources: list[TargetSource], config: ServingConfig, prompts: list[list[dict[str, str]]],
               progress: Progress | None = None,
               checkpoint: Callable[[ServingRun], None] | None = None) -> ServingRun:
    """``config.rounds`` passes per level and target, the targets taking turns (see the module's text)."""
    check_sources(sources)
    meter = EnergyMeter.open()
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        described: list[dict[str, str]] = []
        for source in sources:
            target = source if isinstance(source, Target) else stack.enter_context(source())
            if progress and not isinstance(source, Target):
                progress(f"{target.name} started", 1, 1)
            check_name(described, target)
            described.append(describe(target))
            targets.append(target)
        top = max(config.concurrency)
        results: list[LevelResult] = [
            asyncio.run(measure_level(t, "cold", top, top, config.max_tokens, prompts, config.timeout_s, meter,
                                      progress)) for t in targets]

        def ordered() -> list[LevelResult]:  # as a one-round run lists them: target by target
            rank = {t.name: i for i, t in enumerate(targets)}
            return sorted(results, key=lambda r: (rank[r.target], r.phase != "cold", r.concurrency))

        first = config.next_first(0, top)  # with ``fresh``: every pass its own prompts, both targets the same ones
        for level in config.concurrency:
            passes: dict[str, list[Pass]] = {t.name: [] for t in targets}
            figures: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
            requests = config.requests_at(level)
            for r in range(config.rounds):
                for place, t in enumerate(turns(targets, r), 1):
                    one = asyncio.run(measure_pass(
                        t, level, requests, config.max_tokens, prompts, config.timeout_s, meter, progress,
                        f"{t.name} c={level} round {r + 1}/{config.rounds}", first))
                    passes[t.name].append(one)
                    row = summarise(t.name, "measured", level, one.records, one.duration_s)
                    figures[t.name].append({
                        "round": r + 1, "place": place, "requests": row.requests, "completed": row.completed,
                        "output_throughput": row.output_throughput, "ttft_p50_ms": row.ttft_ms.p50,
                        "ttft_p95_ms": row.ttft_ms.p95, "duration_s": row.duration_s})
                first = config.next_first(first, requests)
            for t in targets:
                row = level_result(t.name, "measured", level, passes[t.name])
                row.rounds, row.per_round = config.rounds, figures[t.name]
                results.append(row)
            if checkpoint:  # long runs keep what they measured so far
                checkpoint(ServingRun(config=config, targets=list(described), results=ordered(),
                                      energy=energy_sources(meter)))
        return ServingRun(config=config, targets=described, results=ordered(), energy=energy_sources(meter))
