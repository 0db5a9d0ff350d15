"""`kit report`: every section present and filled from the configuration, the lock and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import PURPOSE, run_kit

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
    assert (data["models"][0]["sha256"] and data["models"][0]["licence"] == "Apache-2.0"
            and data["models"][0]["verified"])
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
