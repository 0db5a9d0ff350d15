"""The benchmark report: one self-contained HTML page and a Markdown summary, from a folder of results.

The page has no outside asset and no link to another host: styles are inline and plots are PNG
images carried in the page (``data:`` URIs) drawn with matplotlib's Agg backend. Sections appear for
the result kinds found: serving (latency percentiles and throughput against concurrency, per
target), quality (perplexity, KL divergence, question-answer scores), quantizations (size against
quality) and retrieval (recall@k, from the documents benchmark's ``rag*.json``, read tolerantly).
``latest_summary(dir)`` gives the Markdown summary for the compliance report.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.bench import plots
from kit.bench.results import read_results
from kit.errors import UsageError

LABEL_KEYS = ("name", "method", "retriever", "mode", "label", "config", "strategy")
RECALL_KEY = re.compile(r"recall(?:@|_at_|_at|_@|@k=|_)(\d+)$")

Table = tuple[list[str], list[list[Any]]]


@dataclass
class Report:
    html: Path
    summary: Path
    sections: list[str]
    skipped: list[str] = field(default_factory=list)


def fmt_cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pc(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def _per(total: Any, count: Any) -> float | None:
    return round(total / count, 1) if isinstance(total, int | float) and isinstance(count, int) and count else None


# ------------------------------------------------------------------------------------------------ tables


def serving_table(data: dict[str, Any]) -> Table:
    head = ["target", "phase", "streams", "done", "output tok/s", "req/s", "TTFT p50 ms", "TTFT p95 ms",
            "TTFT p99 ms", "TPOT p50 ms", "ITL p95 ms", "E2E p95 ms", "in tok/req", "out tok/req", "tokens from",
            "J / 1k tokens", "errors"]
    rows = []
    for r in data.get("results") or []:
        energy = r.get("joules_per_1k_tokens")
        errors = ", ".join(f"{k} {v}" for k, v in (r.get("errors") or {}).items())
        rows.append([r.get("target"), r.get("phase"), r.get("concurrency"), f"{r.get('completed')}/{r.get('requests')}",
                     r.get("output_throughput"), r.get("request_throughput"), _pc(r.get("ttft_ms"), "p50"),
                     _pc(r.get("ttft_ms"), "p95"), _pc(r.get("ttft_ms"), "p99"), _pc(r.get("tpot_ms"), "p50"),
                     _pc(r.get("itl_ms"), "p95"), _pc(r.get("e2el_ms"), "p95"),
                     _per(r.get("total_input_tokens"), r.get("requests")),
                     _per(r.get("total_output_tokens"), r.get("requests")), r.get("token_source"),
                     energy if energy is not None else "n/a", errors or "–"])
    return head, rows


def rounds_table(data: dict[str, Any]) -> Table | None:
    """Each pass of a run with ``--rounds`` (the targets took turns): None for a one-round run."""
    head = ["streams", "round", "place", "target", "done", "output tok/s", "TTFT p50 ms", "TTFT p95 ms"]
    rows = [[r.get("concurrency"), f.get("round"), f.get("place"), r.get("target"),
             f"{f.get('completed')}/{f.get('requests')}", f.get("output_throughput"), f.get("ttft_p50_ms"),
             f.get("ttft_p95_ms")]
            for r in data.get("results") or [] for f in r.get("per_round") or []]
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    return (head, rows) if rows else None


# two-sided 95 % quantiles of Student's t, by degrees of freedom (1 to 30; beyond, the normal's 1.96)
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def paired_ratio(pairs: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """The ratio a / b over paired passes (a and b measured in the same round): its geometric mean and
    95 % interval (Student's t on the logarithms); None under 2 usable pairs. An interval that holds 1
    means the difference is within what the machine's drift from one round to the next can explain."""
    logs = [math.log(a / b) for a, b in pairs if a > 0 and b > 0]
    n = len(logs)
    if n < 2:
        return None
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * sd / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def paired_table(data: dict[str, Any]) -> Table | None:
    """Each pair of targets of a run with ``--rounds``, compared round by round: output tokens/s and TTFT
    p95 of the first over the second, with their 95 % intervals and the rounds each was ahead in."""
    head = ["streams", "target", "against", "rounds", "tok/s ratio", "95 % interval", "ahead in tok/s",
            "TTFT p95 ratio", "95 % interval", "ahead in TTFT p95"]
    levels: dict[int, list[dict[str, Any]]] = {}
    for r in data.get("results") or []:
        if r.get("per_round") and isinstance(r.get("concurrency"), int):
            levels.setdefault(r["concurrency"], []).append(r)
    rows: list[list[Any]] = []
    for level in sorted(levels):
        targets = levels[level]
        for i, a in enumerate(targets):
            for b in targets[i + 1:]:
                by_round = {f.get("round"): f for f in b["per_round"]}
                matched = [(f, by_round[f.get("round")]) for f in a["per_round"] if f.get("round") in by_round]
                row: list[Any] = [level, a.get("target"), b.get("target"), len(matched)]
                for key, higher_is_better in (("output_throughput", True), ("ttft_p95_ms", False)):
                    pairs = [(float(x[key]), float(y[key])) for x, y in matched
                             if isinstance(x.get(key), int | float) and isinstance(y.get(key), int | float)]
                    ratio = paired_ratio(pairs)
                    ahead = sum(1 for x, y in pairs if (x > y if higher_is_better else x < y))
                    row += [round(ratio[0], 3) if ratio else None,
                            f"{ratio[1]:.3f}–{ratio[2]:.3f}" if ratio else None, f"{ahead}/{len(pairs)}"]
                rows.append(row)
    return (head, rows) if rows else None


def quality_tables(data: dict[str, Any]) -> list[tuple[str, Table]]:
    out = []
    for run in data.get("runs") or []:
        kl = {d["model"]: d for d in run.get("divergence") or []}
        rows = [[p["model"], p.get("ppl"), p.get("ppl_stderr"), _pc(kl.get(p["model"]), "ppl_ratio"),
                 _pc(kl.get(p["model"]), "kl_mean"), _pc(kl.get(p["model"]), "same_top1"), p.get("tokens_scored"),
                 p.get("chunks")] for p in run.get("perplexity") or []]
        out.append((f"{run.get('text')} ({run.get('text_tokens')} tokens, n_ctx {run.get('n_ctx')})",
                    (["model", "PPL", "±", "PPL / ref", "KL vs ref", "same top-1", "tokens scored", "chunks"], rows)))
    qa = data.get("qa")
    if isinstance(qa, dict) and qa.get("scores"):
        rows = [[s["model"], s.get("items"), s.get("exact_match"), s.get("contains"), s.get("similarity")]
                for s in qa["scores"]]
        title = "Question-answer set" + (f" — {qa['note']}" if qa.get("note") else "")
        out.append((title, (["model", "items", "exact match", "contains", "embedding similarity"], rows)))
    return out


def quantization_table(data: dict[str, Any]) -> Table:
    head = ["type", "size MiB", "bits/weight", "load s", "decode tok/s", "PPL", "PPL / ref", "KL vs ref",
            "same top-1", "note"]
    rows = [[r.get("type"), r.get("size_mib"), r.get("bits_per_weight"), r.get("load_s"), r.get("decode_tokens_per_s"),
             r.get("ppl"), r.get("ppl_ratio"), r.get("kl_mean"), r.get("same_top1"), r.get("error") or ""]
            for r in data.get("rows") or []]
    return head, rows


def recall_series(obj: Any, name: str = "") -> dict[str, dict[int, float]]:
    """Every recall@k found in a retrieval result, by method: tolerant of the file's shape."""
    series: dict[str, dict[int, float]] = {}

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def walk(node: Any, label: str) -> None:
        if isinstance(node, dict):
            own = next((str(node[k]) for k in LABEL_KEYS if isinstance(node.get(k), str)), None)
            here = own or label or "retrieval"
            points: dict[int, float] = {}
            for key, value in node.items():
                k = str(key).lower().replace(" ", "")
                m = RECALL_KEY.match(k)
                if m and number(value):
                    points[int(m.group(1))] = float(value)
                elif k in ("recall", "recall@k", "recall_at_k") and isinstance(value, dict):
                    for kk, vv in value.items():
                        digits = re.sub(r"\D", "", str(kk))
                        if digits and number(vv):
                            points[int(digits)] = float(vv)
            if points:
                series.setdefault(here, {}).update(points)
            for key, value in node.items():
                if isinstance(value, dict | list) and str(key).lower() not in ("recall", "recall@k", "recall_at_k"):
                    walk(value, here if own else (f"{label}/{key}" if label else str(key)))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, label if isinstance(item, dict) and any(k in item for k in LABEL_KEYS)
                     else f"{label}[{i}]" if len(node) > 1 else label)

    walk(obj, name)
    return series


def recall_table(series: dict[str, dict[int, float]]) -> Table:
    ks = sorted({k for pts in series.values() for k in pts})
    return ["method", *[f"recall@{k}" for k in ks]], [[n, *[pts.get(k) for k in ks]] for n, pts in series.items()]


# ------------------------------------------------------------------------------------------------ output


def _machine_line(machine: Any) -> str:
    if not isinstance(machine, dict):
        return "machine not recorded"
    cpu = machine.get("cpu") or {}
    gpu = machine.get("gpu") or {}
    gpus = ", ".join(d.get("name", "?") for d in gpu.get("devices") or []) or "no GPU"
    driver = f" (driver {gpu['driver']})" if gpu.get("driver") else ""
    llama = (machine.get("llama_cpp") or {}).get("version")
    load = machine.get("load_average")
    busy = f"; load average {load[0]} at start" if isinstance(load, list) and load else ""
    threads = machine.get("thread_environment")  # thread and OpenMP settings every started server inherited
    env = "".join(f" {k}={v}" for k, v in threads.items()) if isinstance(threads, dict) else ""
    env = f"; environment{env}" if env else ""
    return (f"{cpu.get('model') or 'CPU ?'}, {cpu.get('usable_cores')} cores, {machine.get('memory_gib')} GiB; "
            f"{gpus}{driver}; llama-cpp-python {llama}; kit {machine.get('kit_version')}; {machine.get('time')}"
            f"{busy}{env}")


def _md_table(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt_cell(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    head, rows = table
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class _Section:
    title: str
    source: str
    machine: Any
    tables: list[tuple[str, Table]]
    images: list[str]
    notes: list[str]


def _sections(directory: Path, with_plots: bool) -> tuple[list[_Section], list[str]]:
    found, skipped = read_results(directory)
    sections: list[_Section] = []
    for path, data in reversed(found.get("serving", [])):
        cfg = data.get("config") or {}
        notes = [f"max_tokens {cfg.get('max_tokens')}, {cfg.get('prompts')} prompts, sampling {cfg.get('sampling')}",
                 f"energy: {data.get('energy')}"]
        notes += [f"{t.get('name')}: {t.get('note') or t.get('url')}" for t in data.get("targets") or []]
        if cfg.get("rounds", 1) > 1:
            notes.insert(0, f"{cfg['rounds']} rounds: the targets took turns at each level, the order rotating "
                            "each round; each row pools its target's passes")
        img = plots.serving(data.get("results") or []) if with_plots else None
        by_round, paired = rounds_table(data), paired_table(data)
        tables = [("", serving_table(data))] + ([("Round by round", by_round)] if by_round else [])
        if paired:
            tables.append(("Target against target, round by round", paired))
            notes.append("ratios are the first target's figure over the second's in the same round (geometric "
                          "mean of the rounds, 95 % interval); an interval that holds 1 is within the machine's "
                          "drift from one round to the next")
        sections.append(_Section("Serving", path.name, data.get("machine"), tables, [img] if img else [], notes))
    for path, data in reversed(found.get("quality", [])):
        sections.append(_Section("Quality", path.name, data.get("machine"), quality_tables(data), [],
                                 list(data.get("notes") or [])))
    for path, data in reversed(found.get("quantizations", [])):
        img = plots.quantizations(data.get("rows") or []) if with_plots else None
        notes = [f"source {data.get('source')} ({data.get('source_kind')}), reference {data.get('reference')}, "
                 f"text {data.get('text')}", *(data.get("notes") or [])]
        sections.append(_Section("Quantizations", path.name, data.get("machine"),
                                 [("", quantization_table(data))], [img] if img else [], notes))
    for path, data in reversed(found.get("rag", [])):
        series = recall_series(data)
        img = plots.recall(series) if with_plots and series else None
        notes = [] if series else ["no recall@k value found in this file"]
        sections.append(_Section("Retrieval", path.name, data.get("machine"),
                                 [("", recall_table(series))] if series else [], [img] if img else [], notes))
    return sections, skipped


def summary_markdown(directory: Path) -> str | None:
    sections, _ = _sections(directory, with_plots=False)
    if not sections:
        return None
    seen: set[str] = set()
    out = [f"# Benchmark summary\n\nFrom `{directory}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Latest result of "
           "each kind; the HTML report (`kit bench report`) has every run and the plots."]
    for s in sections:
        if s.title in seen:
            continue
        seen.add(s.title)
        out.append(f"\n## {s.title} ({s.source})\n\nMachine: {_machine_line(s.machine)}\n")
        for title, table in s.tables:
            if title:
                out.append(f"**{title}**\n")
            out.append(_md_table(table) + "\n")
        out += [f"- {n}" for n in s.notes]
    return "\n".join(out).rstrip() + "\n"


def latest_summary(directory: str | Path) -> str | None:
    """The Markdown summary of the benchmark results in ``directory``, or None when there are none."""
    d = Path(directory)
    if not d.is_dir():
        return None
    return summary_markdown(d)


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1b1b;max-width:1400px}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:2px solid #000091;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:right}th{background:#eef;text-align:center}td:first-child{text-align:left}
.meta{color:#555;font-size:.85rem}img{max-width:100%;border:1px solid #ddd;margin:.5rem 0}ul{font-size:.85rem}
"""


def build_report(directory: Path, out: Path, summary: Path | None = None) -> Report:
    """Write the HTML report and the Markdown summary (default: ``summary.md`` beside the page)."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder of benchmark results.")
    sections, skipped = _sections(directory, with_plots=True)
    if not sections:
        raise UsageError(f"no benchmark result in {directory}: run `kit bench serving`, `kit bench quality`... first.")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kit benchmark report</title>"
             f"<style>{STYLE}</style></head><body><h1>kit benchmark report</h1>"
             f"<p class=\"meta\">Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {html.escape(str(directory))}. "
             "Serving metrics use the names of vLLM's serving benchmark: TTFT (time to first token), TPOT (time "
             "per output token after the first), ITL (gap between streamed chunks), E2E (whole request). "
             "Perplexity and KL divergence follow llama.cpp's llama-perplexity method.</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)} <span class=\"meta\">{html.escape(s.source)}</span></h2>"
                     f"<p class=\"meta\">{html.escape(_machine_line(s.machine))}</p>")
        for title, table in s.tables:
            if title:
                parts.append(f"<h3>{html.escape(title)}</h3>")
            parts.append(_html_table(table))
        parts += [f"<img alt=\"{html.escape(s.title)} plot\" src=\"{img}\">" for img in s.images]
        if s.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s.notes) + "</ul>")
    if skipped:
        parts.append("<h2>Files not shown</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in skipped)
                     + "</ul>")
    parts.append("</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(parts), encoding="utf-8")
    summary = summary or out.with_name("summary.md")
    summary.write_text(summary_markdown(directory) or "", encoding="utf-8")
    return Report(html=out, summary=summary, sections=[f"{s.title} ({s.source})" for s in sections], skipped=skipped)
