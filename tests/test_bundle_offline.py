"""A real bundle, end to end: `kit bundle create` here, then `install.sh --bundle` into a fresh prefix and
KIT_HOME inside a network namespace with loopback only, `kit up` answering a chat with sources from an
ingested document, `kit doctor` passing and naming the bundle, and strace seeing no connect() outside
loopback. A newer bundle then installs over it and every row, key, user and document stays."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import KIT, ROOT, install_model, write_config
from test_offline import DRIVER

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SCRIPT = str(ROOT / "scripts" / "install.sh")
STRACE = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg"]


def _can_unshare() -> bool:
    if not (shutil.which("unshare") and shutil.which("strace") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _outside(trace: Path) -> tuple[list[str], list[str]]:
    lines = trace.read_text().splitlines() if trace.exists() else []
    outside = []
    for ln in lines:
        for v4, v6 in re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', ln):
            addr = v4 or v6
            if not (addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")):
                outside.append(ln)
    outside += [ln for ln in lines if "htons(53)" in ln]
    return lines, outside


def _offline_install(bundle: Path, prefix: Path, env: dict[str, str], trace: Path) -> tuple[float, str]:
    """install.sh --bundle under `unshare -n` (loopback only) and strace; its seconds and output."""
    inner = f"ip link set lo up && exec {' '.join(STRACE)} -o {trace} /bin/bash {SCRIPT} --bundle {bundle} " \
            f"--prefix {prefix}"
    start = time.monotonic()
    r = subprocess.run(["unshare", "-n", "/bin/bash", "-c", inner], capture_output=True, text=True, env=env,
                       timeout=900)
    took = time.monotonic() - start
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return took, r.stdout + r.stderr + Path(f"{prefix}.install.log").read_text(errors="replace")


def _rows(db: Path) -> dict[str, set[tuple[object, ...]]]:
    with sqlite3.connect(db) as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                                            "'sqlite_%' AND name NOT LIKE '%fts%'")]
        return {t: set(con.execute(f'SELECT * FROM "{t}"')) for t in tables}


def _create(out: Path, env: dict[str, str]) -> dict:
    r = subprocess.run([KIT, "bundle", "create", "-o", str(out), "--cpu", "--json"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -n (root or user namespaces), strace and ip")
def test_bundle_installs_and_serves_with_no_network_then_upgrades_keeping_data(model_store: Path,
                                                                                tmp_path: Path) -> None:
    here = install_model(model_store, tmp_path / "build-home")
    env = {**os.environ, "KIT_HOME": str(here), "KIT_CONFIG": str(write_config(tmp_path / "build.yaml"))}
    first = _create(tmp_path / "kit-1.tar", env)
    assert first["parts"]["wheels"] > 0 and first["parts"]["llama.cpp"] > 0 and first["parts"]["models"] > 0
    assert subprocess.run([KIT, "bundle", "verify", str(tmp_path / "kit-1.tar")], capture_output=True,
                          env=env).returncode == 0

    # The site: a fresh prefix, KIT_HOME and configuration; no network, nothing of this machine's pip setup.
    site = tmp_path / "site"
    home, cfg, prefix = site / "home", site / "etc" / "kit.yaml", site / "venv"
    site_env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "HF_", "PYTHONPATH"))}
    site_env.update(KIT_HOME=str(home), KIT_CONFIG=str(cfg))
    took, output = _offline_install(tmp_path / "kit-1.tar", prefix, site_env, tmp_path / "install-1.trace")
    assert cfg.exists() and "deployment:" in cfg.read_text()  # install.sh wrote kit.yaml
    site_kit = str(prefix / "bin" / "kit")
    assert "model smollm2-135m-instruct: imported, sha256" in output
    write_config(cfg)  # the site fills in its purpose and contacts
    from kit.config import load_settings

    quiz = [q.answer for q in load_settings(cfg).policy.quiz]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    doc = tmp_path / "stationnement.md"
    doc.write_text("# Stationnement\n\n## Badge de parking\n\nLe badge de parking du personnel est délivré par "
                   "le service logistique, sur demande écrite.\n", encoding="utf-8")
    run_trace, ingest_trace = tmp_path / "run.trace", tmp_path / "ingest.trace"
    r = subprocess.run(["unshare", "-n", str(prefix / "bin" / "python"), str(driver), site_kit, str(run_trace),
                        "18100", "17960", str(doc), str(ingest_trace)], capture_output=True, text=True,
                       env={**site_env, "QUIZ": json.dumps(quiz)}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["started"], result.get("stderr")
    assert result["answer"] and result["page"] > 1000  # `kit up`: the API answers a chat, the browser chat a page
    assert result["ingest"][0] == 0, result["ingest"]  # `kit docs ingest` offline
    assert result["sources"] and result["sources"][0].endswith("stationnement.md"), result  # search found it

    for trace in (tmp_path / "install-1.trace", run_trace, ingest_trace):
        lines, outside = _outside(trace)
        assert trace.exists(), f"strace wrote no {trace}: the trace is not working"
        assert outside == [], f"connections out of loopback in {trace.name}:\n" + "\n".join(outside[:20])

    # kit up's chat calls its gateway on loopback, so its trace holds calls (an ingest or an install may make
    # none): an empty one means strace recorded nothing.
    assert _outside(run_trace)[0], f"strace wrote nothing to {run_trace}: the trace is not working"

    doctor = subprocess.run([site_kit, "doctor"], capture_output=True, text=True, env=site_env, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert re.search(r"bundle.*installed from .*kit-1\.tar", doctor.stdout), doctor.stdout

    # A newer bundle over this install: every row, key, user and document stays.
    created = subprocess.run([site_kit, "keys", "create", "site-app", "--no-acknowledge"], capture_output=True,
                             text=True, env=site_env, timeout=120)
    assert created.returncode == 0, created.stderr
    before = _rows(home / "kit.db")
    assert before and any(before.values())
    keys = {p.name: p.read_bytes() for p in home.rglob("*.key")}
    second = _create(tmp_path / "kit-2.tar", env)
    took_upgrade, output = _offline_install(tmp_path / "kit-2.tar", prefix, site_env, tmp_path / "install-2.trace")
    assert "model smollm2-135m-instruct: already installed" in output
    after = _rows(home / "kit.db")
    for table, rows in before.items():
        assert rows <= after[table], f"rows of {table} lost by the upgrade"
    assert {p.name: p.read_bytes() for p in home.rglob("*.key")} == keys
    listed = subprocess.run([site_kit, "keys", "list"], capture_output=True, text=True, env=site_env, timeout=120)
    assert "site-app" in listed.stdout
    audit = subprocess.run([site_kit, "audit", "verify"], capture_output=True, text=True, env=site_env, timeout=300)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    docs = subprocess.run([site_kit, "docs", "search", "badge de parking"], capture_output=True, text=True,
                          env=site_env, timeout=300)
    assert docs.returncode == 0 and "stationnement.md" in docs.stdout, docs.stdout + docs.stderr
    record = json.loads((home / "bundle.json").read_text())
    assert record["source"].endswith("kit-2.tar") and record["history"][-1]["source"].endswith("kit-1.tar")
    _, outside = _outside(tmp_path / "install-2.trace")
    assert outside == []

    figures = {"bundle_bytes": second["size"], "parts_bytes": second["parts"], "components": second["components"],
               "install_seconds": round(took, 1), "upgrade_install_seconds": round(took_upgrade, 1)}
    out = os.environ.get("KIT_BUNDLE_FIGURES")
    if out:
        Path(out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures), file=sys.stderr)
