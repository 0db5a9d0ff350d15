"""`kit bench`: evaluators' benchmarks (serving, quality, quantizations, rag, privacy) and their report.

Thin: each command parses its options, calls kit.bench, prints a table (progress on stderr) and
writes the result JSON, with the machine description, under ``benchmarks/results/`` or ``--out``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

import click

from kit.errors import UsageError

RESULTS = Path("benchmarks/results")


def _progress() -> Callable[[str, int, int], None]:
    """Progress on stderr: one rewritten line on a terminal, one line per finished step otherwise."""
    tty = sys.stderr.isatty()
    finished: set[str] = set()

    def show(label: str, done: int, total: int) -> None:
        if label in finished:
            return
        if done >= total:
            finished.add(label)
        if tty:
            click.echo(f"\r  {label}: {done}/{total}   ", err=True, nl=done >= total)
        elif done >= total:
            click.echo(f"  {label}: done", err=True)

    return show


def _text_table(head: list[str], rows: list[list[Any]]) -> str:
    from kit.bench.report import fmt_cell

    cells = [head] + [[fmt_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _machine(models: list[Path] | None = None) -> dict[str, Any]:
    """The machine, read before a run starts (its load average then is part of the record)."""
    from kit.bench.machine import machine_info

    return machine_info(models)


def _write(kind: str, payload: Any, out: Path, machine: dict[str, Any]) -> dict[str, Any]:
    from kit.bench.results import write_result

    path = write_result(kind, payload, out, machine)
    click.echo(f"wrote {path}", err=True)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _rag(rag: bool, start_kit: bool, config: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The RAG load and the hooks of the started servers (none without --rag)."""
    if not rag:
        return None, {}, {}
    if not start_kit:
        raise UsageError("--rag needs --kit: kit's document search gives the prompts every server gets.")
    from kit.bench import ragload
    from kit.config.sections import Server

    load = ragload.make_load()  # every labelled question once, each pass the next ones (``fresh``)
    config.fresh = True
    # llama-server keeps as much host memory of prompt states as the started kit (``server.prompt_cache_mb``)
    cache_mb = str(Server().prompt_cache_mb)
    return (load, {"prepare": partial(ragload.ingest, load), "ready": ragload.for_kit(load)},
            {"args": ("--cache-reuse", "256", "--cache-ram", cache_mb), "ready": ragload.for_reference(load)})


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"'{text}' is not a comma-separated list of whole numbers, e.g. 1,2,4,8.") from None


def _env(spec: str) -> dict[str, str]:
    """``NAME=VALUE[,NAME=VALUE...]`` of --kit-env."""
    env: dict[str, str] = {}
    for item in (x.strip() for x in spec.split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier() or not name.isascii():
            raise UsageError(f"--kit-env '{spec}': write NAME=VALUE, several joined by commas, "
                             "e.g. --kit-env OMP_WAIT_POLICY=passive.")
        if name in ("KIT_HOME", "KIT_CONFIG"):
            raise UsageError(f"--kit-env cannot set {name}: the bench gives each kit it starts its own; "
                             "use --kit-config for settings.")
        env[name] = value
    return env


@click.group()
def bench() -> None:
    """Benchmarks for evaluators: latency, throughput, quality, quantizations, retrieval; and a report."""


def _given_targets(urls: tuple[str, ...], names: tuple[str, ...], api_keys: tuple[str, ...]) -> list[Any]:
    """The servers named by --url, with their --name and --api-key."""
    from kit.bench.serving import Target

    if names and len(names) != len(urls):
        raise UsageError("give one --name per --url, in the same order.")
    if len(api_keys) > 1 and len(api_keys) != len(urls):
        raise UsageError("give one --api-key for all URLs, or one per --url.")
    targets = []
    for i, url in enumerate(urls):
        key = api_keys[i] if len(api_keys) > 1 else (api_keys[0] if api_keys else None)
        targets.append(Target(name=names[i] if names else url.split("//")[-1], url=url.rstrip("/"), api_key=key))
    return targets


@bench.command()
@click.option("--url", "urls", multiple=True, help="OpenAI-compatible server to measure (repeatable).")
@click.option("--name", "names", multiple=True, help="Name of each --url, in the same order.")
@click.option("--api-key", "api_keys", multiple=True, help="Bearer key: one for all URLs, or one per URL.")
@click.option("--concurrency", default="1,2,4,8", show_default=True, help="Concurrent streams, per level.")
@click.option("--requests", type=click.IntRange(1), default=None,
              help="Requests per level (default: 4 per concurrent stream, at least 8).")
@click.option("--max-tokens", type=click.IntRange(1), default=None,
              help="Tokens per answer (default: 96; 150 with --rag).")
@click.option("--rounds", type=click.IntRange(1), default=1, show_default=True,
              help="Passes per level and target. Above 1 every target is started first and they take turns at "
                   "each level, the order rotating each round, so a noisy machine's drift falls on all alike.")
@click.option("--prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSONL of conversations (default: benchmarks/data/prompts.jsonl).")
@click.option("--model", default=None, help="GGUF file or installed model for started servers (default: SmolLM2).")
@click.option("--kit", "start_kit", is_flag=True, help="Start kit's server (`kit serve`) on --model and measure it.")
@click.option("--kit-scan-off", "start_kit_scan_off", is_flag=True,
              help="Also start kit's server with the personal-data scan off (policy.pii_detection: false), to "
                   "show the scan's cost apart.")
@click.option("--kit-engine", "start_kit_engine", is_flag=True,
              help="Start kit's bare engine (`kit engine`: no gateway rules) on --model and measure it.")
@click.option("--kit-env", "kit_envs", multiple=True, metavar="NAME=VALUE[,...]",
              help="Also start kit with these environment variables (thread or OpenMP settings), "
                   "one more kit per option, to compare with --kit.")
@click.option("--kit-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML merged into the started kit server's kit.yaml.")
@click.option("--llama-server", "llama_server", is_flag=False, flag_value="auto", default=None,
              help="Start llama.cpp's llama-server (PATH, or alone: the one scripts/build-reference.sh built).")
@click.option("--llama-cpp-server", "llama_cpp_server", is_flag=True,
              help="Start `python -m llama_cpp.server` twice: as shipped, and with interrupt_requests off.")
@click.option("--rag", is_flag=True,
              help="RAG-shaped load: questions on the labelled documents (ingested into the started kit, asked with "
                   "its document search on), half of them follow-ups on the same excerpts; llama-server gets the "
                   "final prompts kit's search gives, with --cache-reuse 256. Needs --kit; context 2560 at least.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads of started servers (default: all).")
@click.option("--ctx", type=click.IntRange(256), default=1024, show_default=True,
              help="Context per sequence of started servers.")
@click.option("--gpu-layers", type=int, default=0, show_default=True, help="Layers on the GPU, started servers.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True,
              help="Result file, or folder for serving-<time>.json.")
def serving(urls: tuple[str, ...], names: tuple[str, ...], api_keys: tuple[str, ...], concurrency: str,
            requests: int | None, max_tokens: int | None, rounds: int, prompts: Path | None, model: str | None,
            start_kit: bool, start_kit_scan_off: bool, start_kit_engine: bool, kit_envs: tuple[str, ...],
            kit_config: Path | None, llama_server: str | None, llama_cpp_server: bool, rag: bool,
            threads: int | None, ctx: int, gpu_layers: int, out: Path) -> None:
    """Streaming load at each concurrency: TTFT, TPOT, ITL, latency percentiles, throughput, errors, energy."""
    from kit.bench import servers
    from kit.bench.inputs import resolve_model
    from kit.bench.serving import Target, TargetSource, make_config, run_serving

    sources: list[TargetSource] = list(_given_targets(urls, names, api_keys))
    config, conversations = make_config(_ints(concurrency), requests, max_tokens or (150 if rag else 96), prompts,
                                        rounds)
    load, kit_hooks, reference_hooks = _rag(rag, start_kit, config)
    ctx = max(ctx, 2560) if rag else ctx  # the longest prompts of the load are ~2,160 tokens, then 150 answered
    started: list[Path] = []
    variants = [(spec, _env(spec)) for spec in kit_envs]
    if start_kit or start_kit_scan_off or start_kit_engine or variants or llama_server or llama_cpp_server:
        gguf = resolve_model(model)
        started.append(gguf)
        n, top = threads or os.cpu_count() or 1, max(config.concurrency)
        if start_kit or start_kit_scan_off or variants:
            import yaml

            extra = (yaml.safe_load(kit_config.read_text(encoding="utf-8")) if kit_config else None) or {}
            if load is not None:  # kit's chats quote as many excerpts as the load's search gives llama-server
                extra = {**extra, "rag": {**(extra.get("rag") or {}), "top_k": load.top_k}}
            if start_kit:
                sources.append(partial(servers.kit_server, gguf, n, top, ctx, extra, gpu_layers, **kit_hooks))
            if start_kit_scan_off:
                off = {**extra, "policy": {**(extra.get("policy") or {}), "pii_detection": False}}
                sources.append(partial(servers.kit_server, gguf, n, top, ctx, off, gpu_layers, name="kit-scan-off"))
            for spec, env in variants:
                sources.append(partial(servers.kit_server, gguf, n, top, ctx, extra, gpu_layers, name=f"kit[{spec}]",
                                       env=env))
        if start_kit_engine:
            sources.append(partial(servers.kit_server, gguf, n, top, ctx, None, gpu_layers, name="kit-engine",
                                   command="engine"))
        if llama_server:
            binary = servers.find_llama_server() if llama_server == "auto" else Path(llama_server)
            if binary is None:
                raise UsageError("no llama-server found: build it with scripts/build-reference.sh, or give its path.")
            sources.append(partial(servers.llama_server, binary, gguf, n, top, ctx, gpu_layers, **reference_hooks))
        if llama_cpp_server:
            for interrupt in (True, False):
                factory: Callable[[], AbstractContextManager[Target]] = partial(
                    servers.llama_cpp_server, gguf, n, ctx, interrupt, gpu_layers)
                sources.append(factory)
    from kit.bench.results import default_name, write_result

    machine = _machine(started)
    path = out / default_name("serving") if out.is_dir() or not out.suffix else out

    def checkpoint(partial_run: Any) -> None:
        write_result("serving", partial_run, path, machine)

    from kit.bench.rounds import run_rounds

    runner = run_rounds if config.rounds > 1 else run_serving
    run = runner(sources, config, conversations, progress=_progress(), checkpoint=checkpoint)
    payload: Any = run
    if load is not None:
        from kit.bench.results import to_jsonable

        payload = {**to_jsonable(run), "rag_load": load.describe()}
    _print_serving(_write("serving", payload, path, machine), run, rounds)


def _print_serving(data: dict[str, Any], run: Any, rounds: int) -> None:
    from kit.bench.report import paired_table, rounds_table, serving_table

    click.echo(_text_table(*serving_table(data)))
    by_round, paired = rounds_table(data), paired_table(data)
    if by_round:
        click.echo(f"\nround by round ({rounds} rounds, the order rotating each round):")
        click.echo(_text_table(*by_round))
    if paired:
        click.echo("\ntarget against target, round by round (first over second; an interval holding 1 is "
                   "within the machine's drift):")
        click.echo(_text_table(*paired))
    click.echo(f"energy: {run.energy}")
    for t in run.targets:
        click.echo(f"{t['name']}: {t['note'] or t['url']}")


@bench.command()
@click.option("--model", "models", multiple=True, required=True,
              help="GGUF file or installed model (repeatable); the first is the reference for KL divergence.")
@click.option("--text", "texts", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Evaluation text (repeatable; default: the shipped French and English texts).")
@click.option("--ctx", type=click.IntRange(8), default=512, show_default=True, help="Tokens per chunk (llama.cpp: -c).")
@click.option("--chunks", type=click.IntRange(1), default=None, help="Score only the first N chunks.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads (default: all).")
@click.option("--gpu-layers", type=int, default=0, show_default=True, help="Layers offloaded to the GPU.")
@click.option("--qa/--no-qa", default=True, show_default=True, help="Also score the question-answer set.")
@click.option("--qa-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Question-answer JSONL (default: benchmarks/data/qa.jsonl).")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True,
              help="Result file, or folder for quality-<time>.json.")
def quality(models: tuple[str, ...], texts: tuple[Path, ...], ctx: int, chunks: int | None, threads: int | None,
            gpu_layers: int, qa: bool, qa_file: Path | None, out: Path) -> None:
    """Perplexity, KL divergence and same top-1 against the first model; question-answer scores."""
    from kit.bench.inputs import default_texts, read_text, resolve_model
    from kit.bench.qa import run_qa
    from kit.bench.quality import evaluate
    from kit.bench.report import quality_tables

    paths = [resolve_model(m) for m in models]
    labels = [Path(m).name if Path(m).exists() else m for m in models]
    if len(set(labels)) != len(labels):
        labels = [f"{i + 1}:{label}" for i, label in enumerate(labels)]
    progress = _progress()
    machine = _machine(paths)
    runs = [evaluate(paths, read_text(t), t.name, n_ctx=ctx, chunks=chunks, threads=threads, gpu_layers=gpu_layers,
                     names=labels, progress=progress) for t in (texts or tuple(default_texts()))]
    qa_run = run_qa(paths, labels, qa_file, threads, gpu_layers, progress=progress) if qa else None
    data = _write("quality", {"runs": runs, "qa": qa_run}, out, machine)
    for title, table in quality_tables(data):
        click.echo(f"\n{title}\n{_text_table(*table)}")
    if qa_run and qa_run.note:
        click.echo(qa_run.note)


@bench.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--types", default="Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M", show_default=True, help="llama.cpp types.")
@click.option("--text", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Evaluation text (default: the shipped English text).")
@click.option("--ctx", type=click.IntRange(8), default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=click.IntRange(1), default=None, help="Score only the first N chunks.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads (default: all).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the produced GGUF files in this folder.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True,
              help="Result file, or folder for quantizations-<time>.json.")
def quantizations(source: Path, types: str, text: Path | None, ctx: int, chunks: int | None, threads: int | None,
                  keep: Path | None, out: Path) -> None:
    """From a Hugging Face folder (converted to F16) or a GGUF: size, load time, speed, PPL, KL per type."""
    from kit.bench.inputs import default_texts, read_text
    from kit.bench.quantizations import parse_types, run_quantizations
    from kit.bench.report import quantization_table

    text = text or default_texts()[1]
    machine = _machine()
    run = run_quantizations(source, parse_types(types), read_text(text), text.name, keep=keep, n_ctx=ctx,
                            chunks=chunks, threads=threads, progress=_progress())
    data = _write("quantizations", run, out, machine)
    click.echo(_text_table(*quantization_table(data)))
    for note in run.notes:
        click.echo(note)


@bench.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def rag(args: tuple[str, ...]) -> None:
    """The documents (retrieval) benchmark: recall@k; options are those of that benchmark."""
    try:
        found = importlib.util.find_spec("benchmarks.rag") is not None
    except ModuleNotFoundError:
        found = False
    main = getattr(importlib.import_module("benchmarks.rag"), "main", None) if found else None
    if not callable(main):
        raise UsageError("the documents benchmark is not installed in this kit (no benchmarks/rag.py with a main()): "
                         "it comes with the documents feature.")
    rc = main(list(args))
    if rc:
        raise SystemExit(int(rc))


@bench.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def privacy(args: tuple[str, ...]) -> None:
    """The personal-data benchmark: recall per type and per form of writing, false positives on clean text,
    scan time; options are those of benchmarks/privacy.py (--help)."""
    if importlib.util.find_spec("benchmarks") is None and Path("benchmarks/privacy.py").is_file():
        sys.path.insert(0, str(Path.cwd()))  # run from a source checkout
    try:
        main = importlib.import_module("benchmarks.privacy").main
    except ModuleNotFoundError:
        raise UsageError("the personal-data benchmark (benchmarks/privacy.py) is not in this installation: "
                         "run it from a source checkout of kit.") from None
    rc = main(list(args))
    if rc:
        raise SystemExit(int(rc))


@bench.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path), default=RESULTS)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write.")
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown summary (default: summary.md beside the HTML file).")
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Also copy both under $KIT_HOME/reports/, for the admin tab of the browser chat and `kit report`.")
def report(directory: Path, output: Path, summary: Path | None, publish: bool) -> None:
    """One self-contained HTML page (tables, PNG plots inside) and a Markdown summary of DIRECTORY's results."""
    from kit.bench.report import build_report
    from kit.config import kit_home
    from kit.files import atomic_write_text, bench_report_files

    result = build_report(directory, output, summary)
    for section in result.sections:
        click.echo(f"  {section}")
    for note in result.skipped:
        click.echo(f"  skipped {note}", err=True)
    click.echo(f"wrote {result.html} and {result.summary}")
    if publish:
        html, md = bench_report_files(kit_home())
        html.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(html, Path(result.html).read_text(encoding="utf-8"))
        atomic_write_text(md, Path(result.summary).read_text(encoding="utf-8"))
        click.echo(f"published as the latest report: {html} (admin tab, `kit report`)")


@bench.command()
@click.option("--engines", type=click.IntRange(1, 8), default=2, show_default=True,
              help="`kit engine` processes in the pool of the affinity part.")
@click.option("--concurrency", default="1,4", show_default=True, help="Concurrent streams, added-latency part.")
@click.option("--requests", type=click.IntRange(1), default=16, show_default=True, help="Requests per level and round.")
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
              help="Rounds of engine-then-gateway per level (medians are reported).")
@click.option("--conversations", type=click.IntRange(1), default=8, show_default=True,
              help="Conversations at once, affinity part.")
@click.option("--turns", type=click.IntRange(2), default=4, show_default=True, help="Turns per conversation.")
@click.option("--max-tokens", type=click.IntRange(1), default=32, show_default=True, help="Tokens per answer.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Threads of each engine.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="Sequences per engine.")
@click.option("--model", default=None, help="GGUF file or installed model (default: SmolLM2).")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True,
              help="Result file, or folder for gateway-<time>.json.")
def gateway(engines: int, concurrency: str, requests: int, rounds: int, conversations: int, turns: int,
            max_tokens: int, threads: int, parallel: int, model: str | None, out: Path) -> None:
    """The gateway's added time to first token (against its engine reached directly) and its affinity hit rate."""
    from kit.bench.gateway import GatewayConfig, run_gateway_bench
    from kit.bench.inputs import resolve_model

    gguf = resolve_model(model)
    cfg = GatewayConfig(engines=engines, concurrency=_ints(concurrency), requests=requests, rounds=rounds,
                        max_tokens=max_tokens, conversations=conversations, turns=turns, threads=threads,
                        parallel=parallel)
    machine = _machine([gguf])
    result = run_gateway_bench(gguf, cfg, progress=_progress())
    data = _write("gateway", result, out, machine)
    rows = [[r["concurrency"], r["direct_ttft_ms"]["p50"], r["gateway_ttft_ms"]["p50"], r["added_p50_ms"],
             r["direct_ttft_ms"]["p95"], r["gateway_ttft_ms"]["p95"], r["added_p95_ms"], r["failed"]]
            for r in data["latency"]]
    click.echo(_text_table(["streams", "engine TTFT p50", "gateway p50", "added p50", "engine p95", "gateway p95",
                            "added p95", "failed"], rows))
    rows = [[r["mode"], r["turns"], r["follow_ups"], r["hit_rate"], r["cached_share"],
             r["first_turn_ttft_ms"]["p50"], r["follow_up_ttft_ms"]["p50"],
             " ".join(f"{k}={v}" for k, v in r["per_engine"].items()), r["failed"]] for r in data["affinity"]]
    click.echo(_text_table(["routing", "turns", "follow-ups", "hit rate", "cached share", "TTFT 1st p50",
                            "TTFT later p50", "per engine", "failed"], rows))


def register(cli: click.Group) -> None:
    """Attach the `bench` group to the main command."""
    cli.add_command(bench)
