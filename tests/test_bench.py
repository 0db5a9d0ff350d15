"""`kit bench`: machine description, shipped data, serving load client against a real server on
loopback, perplexity and KL divergence with the real SmolLM2 (checked against llama.cpp's
llama-perplexity when scripts/build-reference.sh has built it), and the self-contained report."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

from kit.bench.results import data_dir


def _model() -> Path:
    from kit.bench.inputs import packaged_default
    from kit.errors import KitError

    try:
        return packaged_default()
    except KitError as exc:
        pytest.skip(f"the packaged SmolLM2 is not installed: {exc}")


# ------------------------------------------------------------------------------------------------ fast


def test_cli_module_imports_no_heavy_module() -> None:
    code = ("import sys, kit.cli.bench; heavy = [m for m in ('llama_cpp', 'matplotlib', 'sentence_transformers', "
            "'numpy', 'torch') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_machine_info_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.bench.machine import THREAD_VARIABLES, machine_info

    for name in [k for k in os.environ if k.startswith(THREAD_VARIABLES)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GOMP_SPINCOUNT", "7500000")  # inherited by every server the run starts
    monkeypatch.setenv("OMPX_UNRELATED", "1")

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 60)
    info = machine_info(model)
    for key in ("time", "cpu", "memory_bytes", "gpu", "llama_cpp", "kit_version", "models"):
        assert key in info, key
    assert info["cpu"]["logical_cores"] >= 1 and info["memory_bytes"] > 0
    assert "driver" in info["gpu"] and "devices" in info["gpu"]
    assert info["llama_cpp"]["version"] and "CPU" in (info["llama_cpp"]["system_info"] or "")
    assert info["models"][0]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert info["thread_environment"] == {"GOMP_SPINCOUNT": "7500000"}
    json.dumps(info)  # embeddable in every result


def test_shipped_data() -> None:
    from kit.bench.qa import load_qa
    from kit.bench.serving import load_prompts

    prompts = load_prompts()
    assert len(prompts) >= 20
    assert sum(1 for p in prompts if sum(m["role"] == "user" for m in p) > 1) >= 4, "follow-up turns"
    assert all(p[0]["role"] == "system" for p in prompts)  # every server renders the same text
    lines = [json.loads(line) for line in (data_dir() / "prompts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {p["lang"] for p in lines} == {"fr", "en"}
    qa = load_qa()
    assert 25 <= len(qa) <= 40 and {q.lang for q in qa} == {"fr", "en"}
    for name in ("eval-fr.txt", "eval-en.txt"):
        words = len((data_dir() / name).read_text(encoding="utf-8").split())
        assert 3000 <= words <= 5000, (name, words)
    readme = (data_dir() / "README.md").read_text(encoding="utf-8")
    assert "written for kit" in readme.split("\n\n")[1]


def test_qa_normalisation() -> None:
    from kit.bench.qa import QAItem, score_answer

    item = QAItem("x", "fr", "Quel fleuve traverse Paris ?", "Seine", ["la Seine"])
    assert score_answer("La Seine.", item) == (True, True)
    assert score_answer("C'est la Seine qui traverse Paris.", item) == (False, True)
    assert score_answer("La Loire", item) == (False, False)
    assert score_answer("Libérté, égalité, fraternité !", QAItem("y", "fr", "?", "Liberté, Égalité, Fraternité")) \
        == (True, True)


def test_level_summary_metrics() -> None:
    from kit.bench.serving import RequestRecord, summarise

    ok = [RequestRecord(True, 0.1 * (i + 1), 1.0 + i * 0.1, [0.1 * (i + 1), 0.5, 0.9], 10, 20, "usage", "length")
          for i in range(4)]
    bad = RequestRecord(False, None, 0.2, [], 0, None, "chunks", None, "http_503", "busy")
    r = summarise("t", "measured", 2, [*ok, bad], 2.0)
    assert (r.completed, r.failed, r.completion_rate) == (4, 1, 0.8)
    assert r.output_throughput == 20.0 and r.request_throughput == 2.0 and r.errors == {"http_503": 1}
    assert r.ttft_ms.p50 == 250.0 and r.token_source == "usage"
    assert r.tpot_ms.p50 is not None and r.itl_ms.p95 is not None and r.e2el_ms.p99 is not None


def test_energy_says_why_not_available(tmp_path: Path) -> None:
    from kit.bench.energy import EnergyMeter

    meter = EnergyMeter.open(tmp_path / "no-powercap")
    meter.start()
    reading = meter.stop()
    if not meter.available:
        assert reading.joules is None and reading.reason.startswith("not available on this machine: ")
    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text("1000000")
    (zone / "max_energy_range_uj").write_text("262143328850")
    meter = EnergyMeter.open(tmp_path / "powercap")
    meter.start()
    (zone / "energy_uj").write_text("3500000")
    reading = meter.stop()
    assert reading.joules == 2.5 and reading.per_1k_tokens(500) == 5.0


def _serving_result() -> dict[str, Any]:
    def pc(x: float) -> dict[str, float]:
        return {"mean": x, "p50": x, "p95": x * 1.5, "p99": x * 2}

    results = []
    for target, speed in (("kit", 1.0), ("llama-server", 1.1)):
        for phase, conc in (("cold", 4), ("measured", 1), ("measured", 2), ("measured", 4)):
            results.append({"target": target, "phase": phase, "concurrency": conc, "requests": 8, "completed": 8,
                            "failed": 0, "completion_rate": 1.0, "output_throughput": 50 * conc * speed,
                            "request_throughput": 1.0, "ttft_ms": pc(100 * conc), "tpot_ms": pc(10.0),
                            "itl_ms": pc(10.0), "e2el_ms": pc(900.0), "token_source": "usage", "errors": {},
                            "joules_per_1k_tokens": None, "energy_note": "not available on this machine: test"})
    machine = {"cpu": {"model": "test"}, "thread_environment": {"GOMP_SPINCOUNT": "7500000"}}
    return {"benchmark": "serving", "machine": machine, "config": {"max_tokens": 8},
            "targets": [{"name": "kit", "url": "http://127.0.0.1:1", "note": "kit serve"}],
            "results": results, "energy": "not available on this machine: test"}


def test_report_is_self_contained(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib draws the report's plots: pip install matplotlib")
    from kit.bench.report import build_report, latest_summary

    results = tmp_path / "results"
    results.mkdir()
    (results / "serving-1.json").write_text(json.dumps(_serving_result()))
    rows = [{"type": t, "size_mib": s, "ppl": p, "kl_mean": k, "same_top1": 1 - k} for t, s, p, k in
            (("F16", 258.0, 18.3, 0.0), ("Q8_0", 138.0, 18.36, 0.002), ("Q4_K_M", 101.0, 19.07, 0.05))]
    (results / "quantizations-1.json").write_text(json.dumps({"benchmark": "quantizations", "rows": rows}))
    (results / "rag.json").write_text(json.dumps({"retrieval": [
        {"method": "hybrid", "recall@1": 0.6, "recall@5": 0.9}, {"method": "dense", "recall": {"1": 0.5, "5": 0.8}}]}))
    (results / "old.json").write_text(json.dumps({"results": []}))
    report = build_report(results, tmp_path / "out" / "report.html")
    page = report.html.read_text(encoding="utf-8")
    assert page.count('<img alt="') == 3 and '<img alt="Serving plot" src="data:image/png;base64,' in page
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]*)""", page, flags=re.IGNORECASE):
        assert attr.startswith(("data:", "#")), f"outside reference: {attr[:80]}"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page), "no outside CSS asset"
    assert "@import" not in page
    summary = report.summary.read_text(encoding="utf-8")
    assert "## Serving" in summary and "## Retrieval" in summary and "recall@5" in summary
    assert "environment GOMP_SPINCOUNT=7500000" in summary  # how the servers' threads waited, with the figures
    assert any("old.json" in s for s in report.skipped)
    assert latest_summary(results) is not None and latest_summary(tmp_path / "empty") is None


def test_recall_series_tolerates_shapes() -> None:
    from kit.bench.report import recall_series

    assert recall_series({"retrieval": {"recall_at_3": 0.5, "recall_at_10": 0.75}}) == \
        {"retrieval": {3: 0.5, 10: 0.75}}
    nested = recall_series({"modes": {"bm25": {"recall@5": 0.4}, "hybrid": {"Recall@5": 0.7}}})
    assert nested == {"modes/bm25": {5: 0.4}, "modes/hybrid": {5: 0.7}}
    assert recall_series({"nothing": 1}) == {}


def test_cli_report_and_rag(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib draws the report's plots: pip install matplotlib")
    from click.testing import CliRunner

    from kit.cli.bench import bench
    from kit.errors import UsageError

    (tmp_path / "serving.json").write_text(json.dumps(_serving_result()))
    out = tmp_path / "r.html"
    res = CliRunner().invoke(bench, ["report", str(tmp_path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "summary.md").is_file()
    from kit.config import kit_home
    from kit.files import bench_report_files

    html, md = bench_report_files(kit_home())  # published for the admin tab and `kit report`
    assert html.read_bytes() == out.read_bytes() and md.read_bytes() == (tmp_path / "summary.md").read_bytes()
    if not importlib.util.find_spec("benchmarks.rag"):
        res = CliRunner().invoke(bench, ["rag"])
        assert isinstance(res.exception, UsageError) and "not installed" in str(res.exception)


def test_rag_benchmark_names_a_model_it_cannot_load_without_a_traceback(tmp_path: Path) -> None:
    """``python benchmarks/rag.py`` run as a script: an embedder that is not in the catalogue or not installed
    gets kit's message (what to run), no traceback, a failing exit code, and no results file."""
    out = tmp_path / "rag.json"
    for name, says in (("no-such-model", "kit models list"), ("multilingual-e5-base", "kit models pull")):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rag.py"), "--embedders", name,
                               "--quality-only", "--out", str(out)], capture_output=True, text=True, timeout=120,
                              cwd=ROOT, env={**os.environ, "KIT_HOME": str(tmp_path / "home")})
        assert done.returncode == 1 and done.stderr.startswith("Error: ") and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not out.exists()


# ------------------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_serving_against_llama_cpp_server(tmp_path: Path) -> None:
    """The load client against a real OpenAI-compatible server on loopback, through the CLI command."""
    pytest.importorskip("sse_starlette", reason="llama-cpp-python's server needs the test extras (sse-starlette)")
    pytest.importorskip("starlette_context", reason="llama-cpp-python's server needs starlette-context")
    from click.testing import CliRunner

    from kit.bench.servers import llama_cpp_server
    from kit.cli.bench import bench

    model = _model()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in [
        {"messages": [{"role": "user", "content": "Dis bonjour."}]},
        {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Again, shorter."}]}]) + "\n")
    with llama_cpp_server(model, threads=1, ctx=512, interrupt_requests=False) as target:
        res = CliRunner().invoke(bench, ["serving", "--url", target.url, "--name", "ref", "--concurrency", "1,2",
                                         "--requests", "2", "--max-tokens", "8", "--prompts", str(prompts),
                                         "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["benchmark"] == "serving" and data["machine"]["llama_cpp"]["version"]
    rows = data["results"]
    assert [(r["phase"], r["concurrency"]) for r in rows] == [("cold", 2), ("measured", 1), ("measured", 2)]
    for r in rows:
        assert r["completion_rate"] == 1.0, r
        assert r["total_output_tokens"] > 0 and r["ttft_ms"]["p50"] > 0 and r["e2el_ms"]["p99"] > 0
        assert r["token_source"] in ("usage", "chunks")
        assert r["joules_per_1k_tokens"] is not None or r["energy_note"].startswith("not available")
    assert "ref" in res.output and "TTFT p95 ms" in res.output


@pytest.mark.slow  # runs the real model behind llama-cpp-python's server
def test_serving_rounds_run_the_targets_together_taking_turns(tmp_path: Path) -> None:
    """`--rounds 2`: every target is started before the first is measured, the order rotates each round
    (a b, then b a), and each level's row pools both passes of its target."""
    pytest.importorskip("sse_starlette", reason="llama-cpp-python's server needs the test extras (sse-starlette)")
    pytest.importorskip("starlette_context", reason="llama-cpp-python's server needs starlette-context")
    from click.testing import CliRunner

    from kit.bench.report import rounds_table
    from kit.bench.rounds import run_rounds
    from kit.bench.servers import llama_cpp_server
    from kit.bench.serving import Target, make_config
    from kit.cli.bench import bench
    from kit.errors import UsageError

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "Dis bonjour."}]}) + "\n")
    with pytest.raises(UsageError, match="--rounds"):
        make_config([1], 2, 8, prompts, rounds=0)
    events: list[str] = []
    with llama_cpp_server(_model(), threads=1, ctx=512, interrupt_requests=False) as server:
        def started(name: str) -> Any:
            @contextlib.contextmanager
            def source() -> Iterator[Target]:  # the real server, under another name, noting start and stop
                events.append(f"start {name}")
                yield Target(name=name, url=server.url)
                events.append(f"stop {name}")
            return source

        config, conversations = make_config([1, 2], 2, 8, prompts, rounds=2)
        run = run_rounds([started("a"), started("b")], config, conversations)
        assert events == ["start a", "start b", "stop b", "stop a"]  # both up for the whole run
        rows = [(r.target, r.phase, r.concurrency) for r in run.results]
        assert rows == [("a", "cold", 2), ("a", "measured", 1), ("a", "measured", 2),
                        ("b", "cold", 2), ("b", "measured", 1), ("b", "measured", 2)]
        for r in run.results:
            if r.phase == "cold":
                assert r.rounds == 1 and r.per_round == [] and r.requests == 2
                continue
            assert r.rounds == 2 and r.requests == 4 and r.completion_rate == 1.0
            places = [f["place"] for f in r.per_round]
            assert places == ([1, 2] if r.target == "a" else [2, 1]), r.per_round
            assert sum(f["completed"] for f in r.per_round) == r.completed
            assert abs(sum(f["duration_s"] for f in r.per_round) - r.duration_s) < 0.01
        head, table = rounds_table({"results": [dataclasses.asdict(r) for r in run.results]}) or ([], [])
        assert len(table) == 8 and head[:3] == ["streams", "round", "place"]

        res = CliRunner().invoke(bench, ["serving", "--url", server.url, "--name", "a", "--url", server.url,
                                         "--name", "b", "--rounds", "2", "--concurrency", "1", "--requests", "1",
                                         "--max-tokens", "4", "--prompts", str(prompts),
                                         "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["config"]["rounds"] == 2
    assert [len(r["per_round"]) for r in data["results"] if r["phase"] == "measured"] == [2, 2]
    assert "round by round" in res.output
    assert "target against target" in res.output  # a against b at 1 stream, over the 2 rounds
    paired = re.search(r"^\s*1\s+a\s+b\s+2\s", res.output, re.M)
    assert paired, res.output


def test_paired_ratios_compare_passes_of_the_same_round() -> None:
    """The target-against-target table pairs each target's pass with the other's in the same round: the
    drift that moves both alike cancels, what stays is their difference and its interval."""
    from kit.bench.report import paired_ratio, paired_table

    # the machine slows down round after round, a stays 10 % ahead of b: the ratio is exact
    ratio = paired_ratio([(110.0, 100.0), (88.0, 80.0), (66.0, 60.0)])
    assert ratio is not None and all(abs(x - 1.1) < 1e-9 for x in ratio)
    # ratios 1.0 and 1.2: geometric mean sqrt(1.2), Student's t with 1 degree of freedom (12.706)
    mean, low, high = paired_ratio([(100.0, 100.0), (120.0, 100.0)]) or (0.0, 0.0, 0.0)
    half = 12.706 * (math.log(1.2) / math.sqrt(2)) / math.sqrt(2)
    assert abs(mean - math.sqrt(1.2)) < 1e-9
    centre = math.log(1.2) / 2
    assert abs(low - math.exp(centre - half)) < 1e-6 and abs(high - math.exp(centre + half)) < 1e-6
    assert paired_ratio([(100.0, 90.0)]) is None  # one round: no interval

    def row(target: str, figures: list[tuple[int, float, float]]) -> dict[str, Any]:
        return {"target": target, "concurrency": 8, "per_round": [
            {"round": r, "output_throughput": tok, "ttft_p95_ms": ttft} for r, tok, ttft in figures]}

    # b's rounds are listed in another order, and its round 3 is missing: only rounds 1 and 2 pair up
    data = {"results": [row("a", [(1, 150.0, 100.0), (2, 130.0, 140.0), (3, 170.0, 90.0)]),
                        row("b", [(2, 120.0, 120.0), (1, 160.0, 110.0)]),
                        {"target": "a", "phase": "cold", "concurrency": 8, "per_round": []}]}
    head, rows = paired_table(data) or ([], [])
    assert len(rows) == 1
    got = dict(zip(head, rows[0], strict=False))
    assert (got["streams"], got["target"], got["against"], got["rounds"]) == (8, "a", "b", 2)
    assert got["tok/s ratio"] == round(math.sqrt(150 / 160 * 130 / 120), 3)
    assert got["ahead in tok/s"] == "1/2" and got["ahead in TTFT p95"] == "1/2"
    assert paired_table({"results": [row("a", [(1, 1.0, 1.0)])]}) is None  # one target: nothing to pair


@pytest.mark.slow
def test_serving_starts_kit_with_the_personal_data_scan_off(tmp_path: Path) -> None:
    """`--kit-scan-off` starts kit's whole gateway (charter acknowledged, every other rule on) with
    policy.pii_detection false, so that the scan's cost shows apart; the table names the target."""
    from click.testing import CliRunner

    from kit.cli.bench import bench

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "Écris à claire.martin@exemple.fr."}]},
                                  ensure_ascii=False) + "\n")
    res = CliRunner().invoke(bench, ["serving", "--kit-scan-off", "--concurrency", "1", "--requests", "2",
                                     "--max-tokens", "8", "--prompts", str(prompts), "--threads", "1",
                                     "--ctx", "512", "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((tmp_path / "s.json").read_text())
    [target] = data["targets"]
    assert target["name"] == "kit-scan-off" and "personal-data scan off" in target["note"]
    assert all(r["completion_rate"] == 1.0 and r["total_output_tokens"] > 0 for r in data["results"])


@pytest.mark.parametrize("spec, says", [("OMP_WAIT_POLICY", "NAME=VALUE"), ("1X=2", "NAME=VALUE"),
                                         ("A=1,", "NAME=VALUE"), ("KIT_HOME=/tmp", "cannot set KIT_HOME")])
def test_kit_env_that_is_not_name_equals_value_is_refused_with_an_example(spec: str, says: str,
                                                                          tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kit.cli.bench import bench
    from kit.errors import UsageError

    res = CliRunner().invoke(bench, ["serving", "--kit-env", spec, "--out", str(tmp_path / "s.json")])
    assert res.exit_code != 0 and isinstance(res.exception, UsageError) and says in str(res.exception)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_kit_env_starts_one_more_kit_with_those_variables(tmp_path: Path) -> None:
    """`--kit-env A=1,B=2` starts another kit whose process has A and B in its environment (so that a thread
    or OpenMP setting can be compared with --kit on the same run); the table and the note name it."""
    from click.testing import CliRunner

    from kit.bench import servers
    from kit.cli.bench import bench

    seen: list[dict[str, str]] = []
    real = servers.kit_server

    @contextlib.contextmanager
    def spying(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as target:
            raw = Path(f"/proc/{target.pid}/environ").read_bytes().split(b"\0")
            seen.append(dict(x.decode().partition("=")[::2] for x in raw if b"=" in x))
            yield target

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "Bonjour."}]}) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(servers, "kit_server", spying)
        res = CliRunner().invoke(bench, ["serving", "--kit-env", "KIT_BENCH_PROBE=1,GOMP_SPINCOUNT=300000",
                                         "--concurrency", "1", "--requests", "2", "--max-tokens", "4",
                                         "--prompts", str(prompts), "--threads", "1", "--ctx", "512",
                                         "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    [env] = seen
    assert env["KIT_BENCH_PROBE"] == "1" and env["GOMP_SPINCOUNT"] == "300000"
    assert env["KIT_HOME"] != os.environ.get("KIT_HOME")
    [target] = json.loads((tmp_path / "s.json").read_text())["targets"]
    assert target["name"] == "kit[KIT_BENCH_PROBE=1,GOMP_SPINCOUNT=300000]"
    assert "environment KIT_BENCH_PROBE=1 GOMP_SPINCOUNT=300000" in target["note"]
    assert "kit[KIT_BENCH_PROBE=1,GOMP_SPINCOUNT=300000]" in res.output


@pytest.mark.slow
def test_kl_of_a_model_against_itself_is_zero() -> None:
    from kit.bench.quality import evaluate

    model = _model()
    text = (data_dir() / "eval-en.txt").read_text(encoding="utf-8")
    run = evaluate([model, model], text, "eval-en.txt", n_ctx=256, chunks=2, threads=1, names=["a", "b"])
    a, b = run.perplexity
    assert 1 < a.ppl < 1000 and a.tokens_scored == 2 * 127
    assert abs(a.ppl - b.ppl) / a.ppl < 1e-4
    d = run.divergence[0]
    assert d.kl_mean < 1e-3 and d.same_top1 == 1.0 and abs(d.ppl_ratio - 1) < 1e-4


@pytest.mark.slow
def test_perplexity_agrees_with_llama_perplexity() -> None:
    from kit.bench.quality import evaluate
    from kit.bench.servers import find_llama_perplexity

    binary = find_llama_perplexity()
    if binary is None:
        pytest.skip("llama-perplexity is not built: run scripts/build-reference.sh (10 to 40 minutes on 2 cores)")
    model = _model()
    text_file = data_dir() / "eval-en.txt"
    proc = subprocess.run([str(binary), "-m", str(model), "-f", str(text_file), "-c", "512", "--chunks", "2",
                           "-t", "1"], capture_output=True, text=True, timeout=300)
    found = re.search(r"Final estimate: PPL = ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, (proc.stdout + proc.stderr)[-2000:]
    reference = float(found.group(1))
    run = evaluate([model], text_file.read_text(encoding="utf-8"), "eval-en.txt", n_ctx=512, chunks=2, threads=1)
    ours = run.perplexity[0].ppl
    assert abs(ours - reference) / reference < 0.01, (ours, reference)


@pytest.mark.slow
def test_question_answer_scores(tmp_path: Path) -> None:
    from kit.bench.qa import run_qa

    qa = tmp_path / "qa.jsonl"
    items = [{"id": "en-1", "lang": "en", "question": "What is the capital of France?", "answer": "Paris"},
             {"id": "fr-1", "lang": "fr", "question": "Quelle est la capitale de l'Italie ?", "answer": "Rome"}]
    qa.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    run = run_qa([_model()], ["smol"], qa, threads=1, max_tokens=12)
    score = run.scores[0]
    assert score.items == 2 and set(score.by_lang) == {"en", "fr"} and all(a.prediction for a in score.answers)
    assert 0.0 <= score.exact_match <= score.contains <= 1.0
    if run.embedding_model is None:
        assert run.note.startswith("embedding similarity skipped") and score.similarity is None
    else:
        assert score.similarity is not None and -1.0 <= score.similarity <= 1.0
