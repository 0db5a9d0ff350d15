"""The excerpts' personal-data findings kept with the index (kit.documents.scans): written at ingest, read by the
chat's excerpt policy instead of scanning again, valid for one detector only. Real detector, real index (Chroma,
the default embedder, SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import write_config

NOTE = """# Dossier de mutation

## Demande

Mme Jeanne Valmont a demandé sa mutation au service des archives de Lyon le 4 mars. Sa demande est suivie
par M. Paul Garnier, joignable à paul.garnier@exemple.fr ou au 01 42 68 53 00.

## Procédure

Toute demande de mutation passe par le chef de service, qui la transmet aux ressources humaines dans les
quinze jours. La décision est notifiée par écrit à l'agent.
"""


def _index(tmp_path: Path, **rag: Any) -> Any:
    from kit.config import load_settings
    from kit.documents.index import open_index
    from kit.documents.ingest import ingest

    settings = load_settings(write_config(tmp_path / "kit-scans.yaml", rag={"chunk_size": 200, **rag}))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "mutation.md").write_text(NOTE, encoding="utf-8")
    index = open_index(settings)
    report = ingest([folder], [], settings=settings, index=index)
    assert report.ok and report.chunks >= 2, report
    return index


def _chunks(index: Any) -> list[Any]:
    from kit.documents.ingest import list_documents

    doc = list_documents(index.settings, index=index)[0]
    rows = index.catalog.chunks_by_key([(doc.id, i) for i in range(doc.chunks)], None, None)
    return [rows[key] for key in sorted(rows)]


@pytest.mark.parametrize("action", ["report", "mask"])
def test_ingest_keeps_what_a_scan_of_each_excerpt_finds(tmp_path: Path, detector: Any, action: str) -> None:
    """Every chunk's text, heading path and shown name has its findings kept for this detector; they are those a scan
    of that text alone finds (types and values), whether taken from the section's scan or from the chunk's own."""
    from kit.rules.privacy.detector import memo_key

    index = _index(tmp_path, pii_action=action)
    try:
        chunks = _chunks(index)
        texts = {t for row in chunks for t in (row.text, " > ".join(row.heading), row.source) if t}
        kept = index.scans.recall(detector.fingerprint, [memo_key(t) for t in texts])
        assert len(kept) == len(texts)
        found = set()
        for text in texts:
            spans = kept[memo_key(text)]
            fresh = detector.scan(text)
            assert {(t, text[s:e]) for t, s, e, _ in spans} == {(f.type, f.text) for f in fresh}, text
            found |= {t for t, *_ in spans}
        if action == "report":  # the names, the e-mail and the phone number are in the excerpts as written
            assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= found
        assert index.scans.recall("another-detector", [memo_key(t) for t in texts]) == {}
    finally:
        index.close()


def test_the_excerpt_policy_reads_kept_findings_instead_of_scanning(tmp_path: Path, detector: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway that never scanned these excerpts (its memo empty) polices them from the kept findings: the same
    outcome as a scan, and the detector's parser is not called; without the store it is."""
    from kit.config import load_settings
    from kit.documents.retrieve import SearchResult
    from kit.gateway.excerpts import police
    from kit.rules.policy import Gate
    from kit.storage.state import open_state

    index = _index(tmp_path)
    try:
        results = [SearchResult(r.source, r.page, " > ".join(r.heading), 1.0, r.text, r.doc_id, r.chunk_index)
                   for r in _chunks(index)]
        settings = load_settings(write_config(tmp_path / "gate.yaml", policy={"pii_actions": {"PERSON": "mask"}}))
        gate = Gate(settings, open_state(settings))
        parsed: list[int] = []
        scan_many = detector.scan_many
        monkeypatch.setattr(detector, "scan_many", lambda texts: parsed.append(len(texts)) or scan_many(texts))
        detector._memo.clear()
        kept = police(gate, results, index.scans)
        assert parsed == []
        detector._memo.clear()
        scanned = police(gate, results)
        assert parsed  # without the store: scanned
        assert kept.to_dict() == scanned.to_dict() and kept.results == scanned.results
        assert "PERSON" in kept.categories and any("[PERSON_" in r.text for r in kept.results)
    finally:
        index.close()
