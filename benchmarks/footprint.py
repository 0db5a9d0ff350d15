"""Start-up time and memory of kit beside llama.cpp's own server, and the latency of the command line.

Side by side, in one run, on the same model file, threads, sequences and context per sequence:

* ``llama-server`` (built by ``scripts/build-reference.sh``): seconds from the start of the process to
  ``/health`` 200, resident memory (VmRSS) once ready;
* ``kit serve`` with every usage rule on (personal-data scan, charter, audit log, limits): the same, where
  ``/health`` is 200 only once the model and the personal-data detector are loaded; the resident memory of
  the process is broken down by mapping (``/proc/PID/smaps``: the model file, the heap, each shared
  library), so the note can say where it goes;
* ``kit up`` (gateway and browser chat): seconds until the chat's page answers 200 with the gateway ready,
  and the memory of both processes;
* the command line: ``kit docs search "télétravail"`` on the labelled documents (``benchmarks/data/rag/docs``,
  ingested first) and ``kit privacy scan`` of "Bonjour Marie" on standard input: wall seconds and peak
  resident memory of the command (``wait4``), each run ``--runs`` times (the first run of each is shown
  apart: it may fill a cache), alone, then with ``kit serve`` running on this machine (they ask it).

    python benchmarks/footprint.py [--model PATH] [--runs 3] [--skip-up] [--source CHECKOUT]
                                   [--before CHECKOUT] [--out benchmarks/results/footprint.json]

Each figure is the median of ``--runs`` starts. The machine line (CPU, cores, load average) is recorded
with them: figures taken on a busy machine are slower, and only those of one run compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kit.bench.servers import stop

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "footprint.json"
DOCS = ROOT / "benchmarks" / "data" / "rag" / "docs"
GB = 1024 ** 3


def rss_bytes(pid: int) -> int:
    """VmRSS of one process, in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(p) for p in descendants(pid))


def smaps_breakdown(pid: int, top: int = 12) -> list[dict[str, Any]]:
    """Resident memory of a process by mapping: each file (the model, each shared library) and ``[anon]``
    (the heaps: Python objects, arrays, llama.cpp's buffers), largest first."""
    sizes: dict[str, int] = defaultdict(int)
    name = "[anon]"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else "[anon]"
            name = path if path.startswith("/") else "[anon]" if path in ("[heap]", "[anon]") else path
            if path.startswith("/"):
                parts = Path(path).parts
                lib = next((parts[i + 1] for i, p in enumerate(parts) if p == "site-packages" and i + 1 < len(parts)),
                           None)
                name = f"site-packages/{lib}" if lib else path
        elif head[0] == "Rss:":
            sizes[name] += int(head[1]) * 1024
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
    rows = [{"mapping": k, "rss_mb": round(v / 2**20, 1)} for k, v in ranked[:top]]
    rest = sum(v for _, v in ranked[top:])
    return rows + [{"mapping": "(others)", "rss_mb": round(rest / 2**20, 1)}]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    """Poll ``url`` every 50 ms until it answers 200; the monotonic time it did."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def start_measured(argv: list[str], urls: list[str], env: dict[str, str], timeout: float = 300,
                   settle_s: float = 1.0) -> dict[str, Any]:
    """Start ``argv``; seconds until every URL answers 200 (in turn), then the memory of its processes."""
    log = Path(tempfile.mkstemp(prefix="kit-footprint-", suffix=".log")[1])
    with log.open("wb") as fh:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=env["PYTHONPATH"])  # `python -m` puts the working folder first on the path
        try:
            ready = max(wait_http(url, proc, timeout, log) for url in urls)
            time.sleep(settle_s)  # what a server allocates right after it answers counts too
            pids = descendants(proc.pid)
            return {"ready_s": round(ready - t0, 2), "rss_gb": round(tree_rss(proc.pid) / GB, 3),
                    "processes": {str(p): round(rss_bytes(p) / GB, 3) for p in pids},
                    "smaps": smaps_breakdown(proc.pid)}
        finally:
            stop(proc)
            log.unlink(missing_ok=True)


def free_port() -> int:
    from kit.bench.servers import free_port as free

    return free()


def kit_home(model: Path, root: Path) -> tuple[Path, Path]:
    """A KIT_HOME holding ``model`` as its default, every usage rule on, and its kit.yaml (outside the home)."""
    import yaml

    from kit.files import sha256_file
    from kit.models.lock import LockEntry, write_lock_entry

    home = root / "home"
    (home / "models" / "bench").mkdir(parents=True)
    (home / "models" / "bench" / model.name).symlink_to(model.resolve())
    write_lock_entry(home, LockEntry(name="bench", file=f"bench/{model.name}", sha256=sha256_file(model),
                                     size=model.stat().st_size, source={"kind": "local", "path": str(model)},
                                     quant="", licence=""))
    cfg = root / "etc" / "kit.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump({"deployment": {"purpose": "benchmark"}, "models": {"default": "bench"}}),
                   encoding="utf-8")
    return home, cfg


def run_cli(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> dict[str, Any]:
    """Wall seconds and peak resident memory of one command."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=env["PYTHONPATH"])
    proc.stdin.write(stdin)  # type: ignore[union-attr]
    proc.stdin.close()  # type: ignore[union-attr]
    out = proc.stdout.read()  # type: ignore[union-attr]
    err = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {"s": round(seconds, 2), "max_rss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
            "output": out.decode(errors="replace")[:300]}


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from kit.bench.machine import machine_info
    from kit.bench.servers import find_llama_server

    model = Path(args.model).resolve()
    threads = args.threads or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="kit-footprint-"))
    results: dict[str, Any] = {"model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model.name),
                               "source": args.source.resolve().name,
                               "before": args.before.resolve().name if args.before else None,
                               "threads": threads, "parallel": args.parallel,
                               "ctx": args.ctx, "runs": args.runs,
                               "machine": machine_info(model), "load_average_before": os.getloadavg()}
    try:
        home, cfg = kit_home(model, work)
        env = {**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(cfg), "PYTHONPATH": str(args.source),
               "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))}
        kit = [sys.executable, "-m", "kit.cli"]
        before_env = {**env, "PYTHONPATH": str(args.before)} if args.before else None
        server = find_llama_server()
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _ in range(args.runs):  # the servers take turns, so a slow moment of the machine hits both
            if server is not None:
                port = free_port()
                rows["llama-server"].append(start_measured(
                    [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
                     "-np", str(args.parallel), "-c", str(args.ctx * args.parallel)],
                    [f"http://127.0.0.1:{port}/health"], env))
            for name, source_env in (("kit serve", env), ("kit serve (before)", before_env)):
                if source_env is None:
                    continue
                port = free_port()
                rows[name].append(start_measured(
                    kit + ["serve", "--port", str(port), "--threads", str(threads), "--parallel", str(args.parallel),
                           "--ctx", str(args.ctx)], [f"http://127.0.0.1:{port}/health"], source_env))
            if not args.skip_up:
                api, ui = free_port(), free_port()
                rows["kit up"].append(start_measured(
                    kit + ["up", "--port", str(ui), "--api-port", str(api)],
                    [f"http://127.0.0.1:{api}/health", f"http://127.0.0.1:{ui}/"], env))
        for name, runs in rows.items():
            results[name] = {"ready_s": median_of(runs, "ready_s"), "rss_gb": median_of(runs, "rss_gb"),
                             "runs": runs}
        if "llama-server" in results:
            results["kit serve over llama-server"] = {
                "ready_s_ratio": round(results["kit serve"]["ready_s"] / results["llama-server"]["ready_s"], 2),
                "extra_rss_gb": round(results["kit serve"]["rss_gb"] - results["llama-server"]["rss_gb"], 3)}
        results["cli"] = cli_latencies(kit, env, args.runs)
        if before_env is not None:
            results["cli (before)"] = cli_before(kit, before_env, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()
    return results


def cli_latencies(kit: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    """Each command alone (it loads what it needs), then with ``kit serve`` running on this machine (the commands
    ask it)."""
    ingest = run_cli(kit + ["docs", "ingest", str(DOCS)], env)
    out: dict[str, Any] = {"docs ingest": {"s": ingest["s"], "report": ingest["output"].strip().splitlines()[-1:]}}
    commands = {
        "docs search": (kit + ["docs", "search", "télétravail"], b""),
        "privacy scan": (kit + ["privacy", "scan"], b"Bonjour Marie\n"),
        "--help": (kit + ["--help"], b""),
    }
    port = free_port()
    for mode in ("alone", "gateway running"):
        server = None
        if mode == "gateway running":
            server = subprocess.Popen(kit + ["serve", "--port", str(port)], env=env, cwd=env["PYTHONPATH"],
                                      stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            log = Path(tempfile.mkstemp(prefix="kit-footprint-", suffix=".log")[1])
            wait_http(f"http://127.0.0.1:{port}/health", server, 300, log)
            log.unlink(missing_ok=True)
        try:
            for name, (argv, stdin) in commands.items():
                if name == "--help" and server is not None:
                    continue
                measured = [run_cli(argv, {**env, "KIT_SERVER__PORT": str(port)}, stdin) for _ in range(runs + 1)]
                later = measured[1:]
                out[f"{name} ({mode})"] = {
                    "s": median_of(later, "s"), "max_rss_gb": median_of(later, "max_rss_gb"),
                    "first_s": measured[0]["s"], "runs_s": [m["s"] for m in later], "output": later[-1]["output"]}
        finally:
            if server is not None:
                stop(server)
    return out


def cli_before(kit: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    """``kit privacy scan`` alone as the ``--before`` checkout runs it (not the document search: the index this run
    ingested is the current code's, whose format an earlier checkout may not read)."""
    out: dict[str, Any] = {}
    for name, argv, stdin in (("privacy scan", ["privacy", "scan"], b"Bonjour Marie\n"),):
        measured = [run_cli(kit + argv, env, stdin) for _ in range(runs + 1)]
        later = measured[1:]
        out[f"{name} (alone)"] = {"s": median_of(later, "s"), "max_rss_gb": median_of(later, "max_rss_gb"),
                                  "first_s": measured[0]["s"], "runs_s": [m["s"] for m in later]}
    return out


def report(results: dict[str, Any]) -> str:
    lines = [f"{'':28} {'ready (s)':>10} {'memory (GB)':>12}"]
    for name in ("llama-server", "kit serve", "kit serve (before)", "kit up"):
        if name in results:
            lines.append(f"{name:28} {results[name]['ready_s']:>10.2f} {results[name]['rss_gb']:>12.3f}")
    if "kit serve over llama-server" in results:
        r = results["kit serve over llama-server"]
        lines.append(f"{'kit serve - llama-server':28} {'x' + str(r['ready_s_ratio']):>10} {r['extra_rss_gb']:>+12.3f}")
    lines.append("")
    lines.append(f"{'command':40} {'s (median)':>10} {'first s':>8} {'peak GB':>8}")
    for name, row in [*results.get("cli", {}).items(),
                      *((f"{k} before", v) for k, v in results.get("cli (before)", {}).items())]:
        if "max_rss_gb" in row:
            lines.append(f"{'kit ' + name:40} {row['s']:>10.2f} {row['first_s']:>8.2f} {row['max_rss_gb']:>8.3f}")
    smaps = results.get("kit serve", {}).get("runs", [{}])[-1].get("smaps", [])
    if smaps:
        lines.append("")
        lines.append("kit serve's resident memory by mapping (last run):")
        lines += [f"  {row['rss_mb']:>8.1f} MB  {row['mapping']}" for row in smaps]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from kit.bench.inputs import packaged_default

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: the embedded default model).")
    parser.add_argument("--runs", type=int, default=3, help="Starts of each server, runs of each command.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores).")
    parser.add_argument("--parallel", type=int, default=8, help="Sequences of both servers (kit's default).")
    parser.add_argument("--ctx", type=int, default=4096, help="Context per sequence (kit's default).")
    parser.add_argument("--skip-up", action="store_true", help="Leave out `kit up`.")
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="Checkout whose kit is started (default: this one; another: the figures before a change).")
    parser.add_argument("--before", type=Path, default=None,
                        help="Another checkout (the code before a change): its kit serve and commands are measured "
                             "too, in the same rounds.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.model = args.model or str(packaged_default())
    results = measure(args)
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
