"""Answer a question with chunks of the documents the caller may see.

Hybrid search: the question's vector against Chroma (top ``candidates`` by cosine) and its folded
French and English stems, with their glossary translations, against the FTS5 index (top
``candidates`` by BM25). Both queries carry the caller's group and collection filter and exclude
unfinished generations *inside* the query (on the vector side, only the Chroma partitions of the
caller's groups are searched, see :mod:`kit.docs.vectors`). The two rankings are fused by reciprocal rank fusion
keyed on (document, chunk), with k = 10: the usual 60 flattens lists of 20 candidates (chosen on
the benchmark's labelled documents, where k = 60 gave recall@1 0.66 and k = 10 gave 0.70). When the
question's language is not one the embedding model was trained on (a French question with the
English all-MiniLM-L6-v2), the vector side counts half in the fusion.

Relevance threshold, so that a question about nothing in the documents gets no source instead of
the nearest noise. A chunk is kept if one of these holds:

* keyword coverage ≥ ``MIN_COVERAGE`` (0.3): the share of the question's meaningful words (or their
  translations) found in the chunk, each word weighted by its BM25 inverse document frequency (a
  word absent from every chunk weighs the most) — a test independent of the embedding model;
* cosine ≥ ``rag.min_similarity`` (0.3 for all-MiniLM-L6-v2), plus ``FOREIGN_OFFSET`` (0.2) when the
  model does not cover the question's language: an English model gives any two French texts a
  high baseline similarity;
* both sides agree weakly: some keyword in common and cosine ≥ the floor minus 0.1.

How the floors were chosen: on the benchmark's 10 off-topic questions (``benchmarks/rag.py``) over
its labelled documents, the best chunk reached at most cosine 0.17 for English questions, 0.46 for
French ones, and coverage 0.28; the floors sit above these, and still leave every answerable
question of the set with a result.
They are calibrated on that set, so a site with another model should check them (``kit docs
search`` shows ``similarity`` and ``keyword`` for each result).

Modes ``vector`` and ``keyword`` use one side only (for the benchmark), with that side's test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kit.config import Settings, load_settings
from kit.docs import store
from kit.docs.index import DocIndex, open_index
from kit.docs.query import QueryWord, fts_query, query_words
from kit.docs.text import guess_language

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 10
MIN_COVERAGE = 0.3
FOREIGN_OFFSET = 0.2
FOREIGN_WEIGHT = 0.5
AGREEMENT_MARGIN = 0.1
CANDIDATES = 20
MAX_DF = 0.1
PRUNE_ABOVE = 2000


@dataclass
class SearchResult:
    """One retrieved chunk. ``score`` is the fused RRF score scaled to 0..1 (1: first on both sides)."""

    source: str
    page: int | None
    heading: str
    score: float
    text: str
    document_id: str
    chunk_index: int
    similarity: float | None = None
    keyword: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coverage(query: list[QueryWord], idf: dict[str, float], terms: frozenset[str]) -> float:
    total = matched = 0.0
    for word in query:
        weight = min(idf[s] for s in word.stems)
        total += weight
        if not word.all.isdisjoint(terms):
            matched += weight
    return matched / total if total else 0.0


def search(query: str, k: int = 5, groups: Sequence[str] | None = None, collection: str | None = None,
           settings: Settings | None = None, *, mode: Mode = "hybrid", index: DocIndex | None = None,
           candidates: int = CANDIDATES, min_similarity: float | None = None,
           min_coverage: float = MIN_COVERAGE, translate: bool = True) -> list[SearchResult]:
    """The ``k`` best chunks for ``query`` among ready documents of ``collection`` (None: all) that
    ``groups`` may see (None: no restriction; the public group and collection are always visible).

    ``translate=False`` turns off the glossary expansion (for the benchmark's ablation)."""
    settings = settings or (index.settings if index else load_settings())
    own = index is None
    index = index or open_index(settings)
    try:
        floor = settings.rag.min_similarity if min_similarity is None else min_similarity
        return _search(index, query, k, groups, collection, mode, max(candidates, k), floor, min_coverage,
                       translate)
    finally:
        if own:
            index.close()


def _search(index: DocIndex, query: str, k: int, groups: Sequence[str] | None, collection: str | None,
            mode: Mode, candidates: int, min_similarity: float, min_coverage: float,
            translate: bool) -> list[SearchResult]:
    words = query_words(query, translate, index.glossary)
    total, frequency = index.catalog.frequencies([s for w in words for s in w.all])
    idf = {term: store.idf(total, n) for term, n in frequency.items()}
    ranks: dict[tuple[str, int], float] = {}
    similarity: dict[tuple[str, int], float] = {}
    # On a large index, terms found in more than MAX_DF of the chunks weigh little in BM25 but cost
    # the most to rank: they count for coverage, not in the keyword query (unless no rarer term
    # of the question is in the index at all).
    match = fts_query(words)
    if total >= PRUNE_ABOVE:
        rare = [QueryWord(tuple(s for s in w.stems if frequency[s] <= MAX_DF * total),
                          frozenset(s for s in w.translations if frequency[s] <= MAX_DF * total)) for w in words]
        if any(frequency[s] for w in rare for s in w.all):
            match = fts_query(rare)
    if mode in ("hybrid", "keyword") and words:
        hits = index.catalog.keyword_search(match, candidates, collection, groups)
        for rank, hit in enumerate(hits):
            key = (hit.doc_id, hit.chunk_index)
            ranks[key] = ranks.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
    floor = min_similarity
    weight = 1.0
    if mode in ("hybrid", "vector") and query.strip():
        if not index.embedder.covers(guess_language(query)):
            floor, weight = min_similarity + FOREIGN_OFFSET, FOREIGN_WEIGHT
        vector = index.embedder.encode([query])[0]
        partitions = index.catalog.visible_partitions(collection, groups)
        vector_hits = index.vectors.query(vector, candidates, partitions, index.catalog.hidden_generations())
        for rank, vhit in enumerate(vector_hits):
            key = (vhit.doc_id, vhit.chunk_index)
            ranks[key] = ranks.get(key, 0.0) + weight / (RRF_K + rank + 1)
            similarity[key] = vhit.similarity
    if not ranks:
        return []
    rows = index.catalog.chunks_by_key(list(ranks), collection, groups)
    best = (1.0 + weight if mode == "hybrid" else 1.0) / (RRF_K + 1)
    results = []
    for key, score in sorted(ranks.items(), key=lambda item: -item[1]):
        row = rows.get(key)
        if row is None:  # not ready or not visible per SQL: never returned
            continue
        coverage = _coverage(words, idf, row.terms) if words else 0.0
        cosine = similarity.get(key)
        if not _relevant(mode, coverage, cosine, floor, min_coverage):
            continue
        results.append(SearchResult(row.source, row.page, " > ".join(row.heading), round(score / best, 4), row.text,
                                    row.doc_id, row.chunk_index,
                                    None if cosine is None else round(cosine, 4), round(coverage, 4)))
        if len(results) == k:
            break
    return results


def _relevant(mode: Mode, coverage: float, cosine: float | None, floor: float, min_coverage: float) -> bool:
    keyword = mode != "vector" and coverage >= min_coverage
    vector = mode != "keyword" and cosine is not None and cosine >= floor
    both = mode == "hybrid" and cosine is not None and coverage > 0 and cosine >= floor - AGREEMENT_MARGIN
    return keyword or vector or both


def search_json(query: str, k: int = 5, groups: Sequence[str] | None = None, collection: str | None = None,
                settings: Settings | None = None, *, index: DocIndex | None = None) -> dict[str, Any]:
    """The contract of ``kit docs search --json`` and ``POST /v1/documents/search``:
    ``{"results": [{"source", "page", "heading", "score", "text", ...}]}``, best first."""
    started = time.perf_counter()
    results = search(query, k, groups, collection, settings, index=index)
    return {"results": [r.to_dict() for r in results], "seconds": round(time.perf_counter() - started, 4)}
