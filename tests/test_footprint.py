"""What a process that scans text loads, and the cache of compiled patterns that keeps its start short."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from kit.rules.privacy import nlp

ROOT = Path(__file__).resolve().parents[1]


def _long_pattern() -> str:
    words = [f"mot{i}[-‐]suffixe{i}" for i in range(1500)]
    return "(?iu)" + "|".join(f"(?:^{w}$)" for w in words)


def test_long_pattern_is_compiled_once_then_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pattern = _long_pattern()
    assert len(pattern) >= nlp.LARGE_PATTERN
    first = nlp.compile_cached(pattern, re.IGNORECASE)
    files = list((tmp_path / "kit" / "regex").glob("*.marshal"))
    assert len(files) == 1
    read_back = nlp.compile_cached(pattern, re.IGNORECASE)
    expected = re.compile(pattern, re.IGNORECASE)
    for text in ("MOT7-suffixe7", "mot1499‐SUFFIXE1499", "mot7-suffixe8", "mot7 suffixe7", ""):
        assert bool(read_back.match(text)) == bool(expected.match(text)) == bool(first.match(text)), text
    assert read_back.pattern == pattern and read_back.flags == expected.flags


def test_unreadable_or_foreign_cache_files_are_compiled_again(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pattern = _long_pattern()
    nlp.compile_cached(pattern)
    (path,) = (tmp_path / "kit" / "regex").glob("*.marshal")
    path.write_bytes(b"not marshal data")
    assert nlp.compile_cached(pattern).match("mot3-suffixe3")
    # A file holding another pattern's code (the same name by accident) is not used for this one.
    nlp.compile_cached(_long_pattern().replace("mot", "nom"))
    (other_path,) = [p for p in (tmp_path / "kit" / "regex").glob("*.marshal") if p != path]
    path.write_bytes(other_path.read_bytes())
    compiled = nlp.compile_cached(pattern)
    assert compiled.match("mot3-suffixe3") and not compiled.match("nom3-suffixe3")


def test_unwritable_cache_still_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert nlp.compile_cached(_long_pattern()).match("mot0-suffixe0")


@pytest.mark.slow
def test_detector_loads_neither_torch_nor_third_party_factories(tmp_path: Path) -> None:
    """The detector's process holds spaCy and its French pipeline, not torch, transformers or Presidio
    (which spaCy would import for its entry point), and torch stays importable afterwards."""
    code = (
        "import sys, json\n"
        "from kit.rules.privacy import Detector\n"
        "d = Detector()\n"
        "found = [(f.type, f.text) for f in d.scan('Bonjour, je suis Marie Dupont, de Lyon.')]\n"
        "loaded = [m for m in ('torch', 'transformers', 'presidio_analyzer') "
        "if m in sys.modules]\n"
        "pipes = d.nlp.pipe_names\n"
        "import torch\n"  # still importable for whatever else needs it
        "print(json.dumps({'found': found, 'loaded': loaded, 'pipes': pipes}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert ["PERSON", "Marie Dupont"] in result["found"] and ["LOCATION", "Lyon"] in result["found"]
    assert "parser" not in result["pipes"] and "lemmatizer" not in result["pipes"]
    assert {"senter", "ner", "morphologizer"} <= set(result["pipes"])
    assert list((tmp_path / "kit" / "regex").glob("*.marshal")), "the French tokenizer's patterns were cached"


def test_same_excerpts_give_the_same_quoted_block() -> None:
    """Follow-up questions on the same documents send the same prompt prefix (the engine's prompt cache reuses
    it); other excerpts get another tag, and the tag is no plain hash of the excerpts anyone could compute."""
    import hashlib

    from kit.documents.prompt import render, with_documents
    from kit.documents.retrieve import SearchResult

    def result(text: str, index: int) -> SearchResult:
        return SearchResult("teletravail.md", None, "Jours de télétravail", 0.9, text, "doc1", index)

    excerpts = [result("Deux jours de télétravail par semaine au plus.", 0), result("Demande au manager.", 1)]
    first, again = render(excerpts, "fr"), render(list(excerpts), "fr")
    assert first.block == again.block
    one = with_documents([{"role": "system", "content": "S"}, {"role": "user", "content": "Combien ?"}], first)
    two = with_documents([{"role": "system", "content": "S"}, {"role": "user", "content": "Et le vendredi ?"}], again)
    assert one[0] == two[0] and one[1]["content"].split("Question :")[0] == two[1]["content"].split("Question :")[0]
    other = render([result("Trois jours de télétravail.", 0)], "fr")
    tag = first.block.split("\n")[0].split()[-1]
    assert other.block.split("\n")[0].split()[-1] != tag
    body = "\n".join(first.block.split("\n")[1:-1])
    assert tag not in hashlib.sha256(body.encode()).hexdigest() and tag not in hashlib.sha256(
        "\n".join(first.block.split("\n")[2:-1]).encode()).hexdigest()


@pytest.mark.slow
def test_cli_asks_the_running_gateway_and_works_without_one(echo_gateway: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`kit privacy scan` and `kit docs search` ask this machine's running gateway (its models loaded: the scan
    is audited there, the search reads its index); with --local, or with no gateway, they work in-process."""
    import httpx
    from click.testing import CliRunner
    from helpers import free_port

    from kit.cli.main import cli
    from kit.documents.ingest import ingest

    gw = echo_gateway
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "teletravail.md").write_text("# Télétravail\n\nChaque agent peut télétravailler deux jours par "
                                           "semaine, avec l'accord de son responsable.\n", encoding="utf-8")
    assert ingest([folder], [], settings=gw.settings, index=gw.app.state.context.documents.index()).ok
    charter = httpx.get(gw.url + "/v1/charter").json()  # the local operator (no key) acknowledges the charter
    answers = [q.answer for q in gw.settings.policy.quiz]
    httpx.post(gw.url + "/v1/charter/acknowledge", json={"version": charter["version"], "quiz_answers": answers})
    monkeypatch.setenv("KIT_SERVER__PORT", str(urlparse(gw.url).port))
    runner = CliRunner()

    def scans() -> int:
        return len(list(gw.state.audit.rows(action="privacy_scan")))

    before = scans()
    asked = runner.invoke(cli, ["privacy", "scan", "--json"], input="Bonjour Marie Dupont")
    assert asked.exit_code == 0, asked.output
    assert [f["text"] for f in json.loads(asked.output)["findings"]] == ["Marie Dupont"]
    assert scans() == before + 1
    local = runner.invoke(cli, ["privacy", "scan", "--json", "--local"], input="Bonjour Marie Dupont")
    assert json.loads(local.output) == json.loads(asked.output) and scans() == before + 1

    found = runner.invoke(cli, ["docs", "search", "télétravail", "--json"])
    assert found.exit_code == 0, found.output
    assert [r["source"] for r in json.loads(found.output)["results"]][:1] == ["teletravail.md"]
    own = runner.invoke(cli, ["docs", "search", "télétravail", "--json", "--local"])  # this test's empty home
    assert own.exit_code != 0 or not json.loads(own.output)["results"]

    monkeypatch.setenv("KIT_SERVER__PORT", str(free_port()))  # no gateway there: the work is done here
    alone = runner.invoke(cli, ["privacy", "scan", "--json"], input="Bonjour Marie Dupont")
    assert alone.exit_code == 0 and json.loads(alone.output) == json.loads(asked.output)


@pytest.mark.slow
def test_serve_is_ready_only_once_the_detector_is_loaded(installed_home: Path, tmp_path: Path) -> None:
    """`kit serve` loads the personal-data detector beside the model: /health says "starting" (503) while the
    pipeline loads (made 4 s slower here), and its first 200 comes after the pipeline is in, so the first scan
    waits for no model."""
    import os
    import time

    import httpx
    from helpers import free_port

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "pipeline-loaded"
    (hooks / "sitecustomize.py").write_text(
        "import time\nfrom kit.rules.privacy import detector\n_load = detector.load_pipeline\n"
        "def slow(name):\n    time.sleep(4)\n    out = _load(name)\n"
        f"    open({str(marker)!r}, 'w').write(str(time.time()))\n    return out\n"
        "detector.load_pipeline = slow\n", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "kit.cli", "serve", "--port", str(port), "--parallel", "1",
                             "--ctx", "512", "--threads", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                r = httpx.get(url + "/health", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if r.status_code == 200:
                ready_at = time.time()
                break
            seen.append(r.json()["status"])
            time.sleep(0.05)
        else:
            raise AssertionError("kit serve did not become ready")
        assert "starting" in seen
        assert marker.exists() and float(marker.read_text()) <= ready_at
        scan = httpx.post(url + "/v1/privacy/scan", json={"text": "Bonjour Marie Dupont"}, timeout=30)
        assert scan.status_code == 200 and [f["text"] for f in scan.json()["findings"]] == ["Marie Dupont"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
