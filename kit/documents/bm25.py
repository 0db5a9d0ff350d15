"""BM25 as SQLite's FTS5 computes it (``bm25()``, k1 = 1.2, b = 0.75), from statistics given by the caller.

FTS5's own ``bm25()`` takes its statistics (row count, average length, rows holding each term) over every
row of the index. :mod:`kit.documents.store` gives these functions the statistics of the chunks a caller may
read instead, so that no score depends on a document the caller may not read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

K1, B = 1.2, 0.75  # FTS5's constants
_TOKEN = re.compile(r"[^\W_]+")
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def tokens(terms: str) -> list[str]:
    """The tokens FTS5's ``unicode61`` tokenizer reads in a string of stored terms (letters and digits)."""
    return _TOKEN.findall(terms)


def phrases_of(match: str) -> list[tuple[str, ...]]:
    """The distinct quoted terms of an FTS5 ``MATCH`` expression made by :func:`kit.documents.query.fts_query`,
    each as its tokens."""
    found = [tuple(tokens(m.replace('""', '"'))) for m in _QUOTED.findall(match)]
    return [p for p in dict.fromkeys(found) if p]


def occurrences(seq: Sequence[str], phrase: tuple[str, ...]) -> int:
    """How many times ``phrase`` occurs in the token sequence ``seq``."""
    n = len(phrase)
    return sum(1 for i in range(len(seq) - n + 1) if tuple(seq[i:i + n]) == phrase)


def idf(total: int, hits: int) -> float:
    """FTS5's inverse document frequency: a term in more than half the rows still weighs a little."""
    return max(math.log((total - hits + 0.5) / (hits + 0.5)), 1e-6)


def bm25_scores(counts: Sequence[Sequence[int]], lengths: Sequence[int], total: int, length: int) -> list[float]:
    """The BM25 score of each row, given the occurrences of each phrase in it (``counts``), its length in
    tokens, and the statistics of the rows it is ranked among: their number ``total`` and their summed
    ``length``. A phrase's row count is taken as the rows of ``counts`` that hold it (every row holding a
    phrase of the query is among them)."""
    if not counts:
        return []
    weights = [idf(total, sum(1 for c in counts if c[i])) for i in range(len(counts[0]))]
    average = length / total if total and length else 1.0
    out = []
    for row, size in zip(counts, lengths, strict=True):
        norm = K1 * (1 - B + B * size / average)
        out.append(sum(w * tf * (K1 + 1) / (tf + norm) for w, tf in zip(weights, row, strict=True) if tf))
    return out
