"""`kit report`: every section present and filled from the configuration, the lock and the audit log."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import KIT, PURPOSE, free_port, run_kit, wait_healthy, write_config

from kit.ops.report import SECTIONS


def test_report_sections_filled(installed_home: Path, tmp_path: Path) -> None:
    from kit.files import bench_report_files

    _, summary = bench_report_files(installed_home)  # as `kit bench report` publishes it
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text("# Benchmark summary\n\n| target | TTFT p95 |\n|---|---|\n| kit | 412 ms |\n", encoding="utf-8")
    r = run_kit("report", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for section in SECTIONS:
        assert data[section], section
    assert data["purpose"]["purpose"] == PURPOSE
    assert data["governance"]["dpo"] == "dpo@example.org"
    model = data["models"]["installed"][0]
    assert model["sha256"] and model["licence"] == "Apache-2.0" and model["verified"]
    assert data["retention"]["audit_days"] == 180 and data["audit"]["chain"]["ok"] is True
    assert any(c["name"] == "api exposure" for c in data["security_checks"])
    md = run_kit("report", "-o", str(tmp_path / "pack.md"))
    assert md.returncode == 0, md.stderr
    text = (tmp_path / "pack.md").read_text(encoding="utf-8")
    for heading in ("Finalité", "Gouvernance", "Charte", "Flux", "Données personnelles", "Conservation", "Modèles",
                    "Contrôles de sécurité", "Journal d'audit", "Benchmarks", "Sources"):
        assert heading in text, heading
    assert "### Benchmark summary" in text and "| kit | 412 ms |" in text  # the latest bench summary, nested
    assert "Confier à l'assistant une décision" in text and PURPOSE in text


# --- what the pack states: the running addresses, the keys as `kit doctor` counts them, words not Python values,
# the indexed documents and their personal data, feedback retention, the demonstration model, the usage figures --


def report_json(*args: str) -> dict[str, Any]:
    r = run_kit("report", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def report_md(*args: str) -> str:
    r = run_kit("report", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def wait_for(check: Any, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what} did not start in {timeout} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_report_states_the_ports_of_the_running_services(installed_home: Path, tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    assert 8000 not in (api_port, ui_port) and 7860 not in (api_port, ui_port)
    procs = []
    try:
        with (tmp_path / "serve.log").open("w") as log:
            procs.append(subprocess.Popen([KIT, "serve", "--port", str(api_port), "--ctx", "512", "--parallel", "1"],
                                          stdout=log, stderr=subprocess.STDOUT))
        wait_healthy(f"http://127.0.0.1:{api_port}", procs[0], tmp_path / "serve.log", "kit serve")
        with (tmp_path / "ui.log").open("w") as log:
            procs.append(subprocess.Popen([KIT, "ui", "--port", str(ui_port), "--server-url",
                                           f"http://127.0.0.1:{api_port}"], stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: (installed_home / "run" / "ui.json").exists(), "kit ui")
        flows = report_json()["data_flows"]
        assert (flows["api"]["port"], flows["api"]["running"]) == (api_port, True)
        assert (flows["browser_chat"]["port"], flows["browser_chat"]["running"]) == (ui_port, True)
        text = report_md()
        assert f"127.0.0.1:{api_port} (" in text and f"127.0.0.1:{ui_port} (" in text
        assert ":8000" not in text and ":7860" not in text
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    flows = report_json()["data_flows"]  # stopped: the configured addresses, said to be not running
    assert (flows["api"]["port"], flows["api"]["running"]) == (8000, False)
    assert (flows["browser_chat"]["port"], flows["browser_chat"]["running"]) == (7860, False)
    assert "not running at the time of this report" in report_md()


@pytest.mark.slow  # nine `kit` processes, two of them `kit doctor`
def test_report_counts_keys_as_doctor_does(installed_home: Path) -> None:
    def doctor_count() -> int:
        r = run_kit("doctor", "--json")
        (check,) = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "api exposure"]
        return int(re.search(r"(\d+) user key", check["detail"]).group(1))  # type: ignore[union-attr]

    assert run_kit("keys", "create", "ui-front", "--role", "service").returncode == 0
    assert doctor_count() == 0 and report_json()["data_flows"]["api_keys"] == 0  # the chat's own key is no user key
    assert report_json()["data_flows"]["service_keys"] == 1
    for name, role in (("appli-rh", "user"), ("dpo", "auditor")):
        assert run_kit("keys", "create", name, "--role", role).returncode == 0
    assert doctor_count() == 2 and report_json()["data_flows"]["api_keys"] == 2
    assert "2 clé(s) utilisateur / user key(s)" in report_md()


def test_report_writes_words_not_python_values(installed_home: Path) -> None:
    text = report_md()
    for raw in (r"\bNone\b", r"\bTrue\b", r"\bFalse\b", r"\{'", r"\['", r"\[\]", r"\{\}"):
        assert not re.search(raw, text), (raw, [line for line in text.splitlines() if re.search(raw, line)])
    assert "oui / yes" in text and "non / no" in text


@pytest.mark.slow
def test_report_covers_documents_personal_data_feedback_and_the_demo_model(installed_home: Path,
                                                                           tmp_path: Path) -> None:
    note = tmp_path / "note-rh.md"
    note.write_text("# Congés\n\nContact : marie.dupont@example.org, 01 45 67 89 10.\n\nLes congés se posent "
                    "dans l'outil RH un mois avant.\n", encoding="utf-8")
    plain = tmp_path / "parking.md"
    plain.write_text("# Parking\n\nLe badge est délivré par la logistique.\n", encoding="utf-8")
    r = run_kit("docs", "ingest", str(note), str(plain), "--group", "rh")
    assert r.returncode == 0, r.stderr
    data = report_json()
    docs = data["documents"]
    assert docs["indexed"] == 2 and docs["groups"] == {"rh": 2} and docs["documents_with_personal_data"] == 1
    assert docs["personal_data"]["EMAIL_ADDRESS"] == {"documents": 1, "occurrences": 1}
    assert data["retention"]["feedback_days"] == 365
    assert data["models"]["served"] == "smollm2-135m-instruct" and data["models"]["demo"] is True
    text = report_md()
    assert "## 8. Documents indexés / Indexed documents" in text and "documents: 2," in text
    assert "EMAIL_ADDRESS: 1 occurrence(s) dans / in 1 document(s)" in text
    assert "marie.dupont" not in text and "note-rh" not in text  # counts only: no text, no file name
    assert "avis et signalements / feedback and problem reports: 365 jours / days" in text
    assert "modèle de démonstration / is a demonstration model" in text


def test_report_usage_figures_from_the_audit_log(installed_home: Path) -> None:
    from kit.audit import AuditEvent
    from kit.config import load_settings
    from kit.storage.state import open_state

    state = open_state(load_settings())
    try:
        for i in range(6):
            state.audit.record(AuditEvent(action="chat", user=f"agent{i}", model="m", completion_tokens=10,
                                          latency_ms=100 * (i + 1)))
        state.audit.record(AuditEvent(action="chat", user="agent0", status="refused", detail={"reason": "charter"}))
    finally:
        state.close()
    today = datetime.now(UTC).date().isoformat()
    usage = report_json("--from", today, "--to", today, "--by", "day")["usage"]
    (row,) = usage["rows"]
    assert (row["requests"], row["active_users"], row["tokens"], row["refusals"]) == (7, 6, 60, {"charter": 1})
    assert (row["latency_p50_ms"], row["latency_p95_ms"]) == (300, 600)
    text = report_md("--from", today, "--to", today, "--by", "day")
    assert f"| {today} | 7 | 6 | 1 | 0 | 0 | 60 | 300 | 600 |" in text
    assert "charte non acceptée / charter not accepted: 1" in text
    bad = run_kit("report", "--from", "2026-13-01")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr


def test_doctor_warns_of_a_demo_model_under_the_production_profile(installed_home: Path, tmp_path: Path) -> None:
    def demo_line(config: Path) -> str:
        r = run_kit("doctor", env={"KIT_CONFIG": str(config)})
        return next(line for line in r.stdout.splitlines() if "demo model" in line)

    assert demo_line(write_config(tmp_path / "eval.yaml")).startswith("PASS")
    line = demo_line(write_config(tmp_path / "prod.yaml", deployment={"profile": "production"}))
    assert line.startswith("WARN") and "smollm2-135m-instruct is a demonstration model" in line
