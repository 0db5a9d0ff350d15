"""Cross-language keyword expansion learnt from the embedding model itself, over the corpus's own words.

At ingest, every meaningful word of the documents (three letters or more, no digits) is stored
once with the language of the chunks it appears in (French or English, by their stop words) and
its vector from the embedding model. At search, each word of the question is embedded too, and
its nearest words *of the other language* become extra keyword terms: a French question about
*congés* also searches English chunks for *holidays*, whatever the organisation's vocabulary.

Nearest words are scored with cross-domain similarity local scaling (CSLS, the usual score of
bilingual lexicon induction): ``2·cos(q, t) − r(q) − r(t)``, where ``r`` is a word's mean cosine
to its ``NEIGHBOURS`` nearest words of the other language. It discounts the "hub" words that are
close to everything (a multilingual model puts *meet* or *employment* near many French words), so
that only a word that stands out as a translation is kept: at most ``PER_WORD`` words scoring at
least ``MIN_CSLS``. These constants were chosen on the odd-numbered questions of
``benchmarks/rag.py`` and are checked on the even-numbered ones.

The table ``lexicon`` of ``docs.db`` holds the words per embedder (its *space*), so that a
``kit docs reindex`` with another model builds its own.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.documents.text import guess_language, stems, words

if TYPE_CHECKING:
    from kit.documents.embed import Embedder

NEIGHBOURS = 10
PER_WORD = 2
MIN_CSLS = 0.04
SAMPLE = 2000
_WORD = re.compile(r"^[^\W\d_]{3,40}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS lexicon (
    space TEXT NOT NULL, word TEXT NOT NULL, fr INTEGER NOT NULL DEFAULT 0, en INTEGER NOT NULL DEFAULT 0,
    vector BLOB, PRIMARY KEY (space, word)) WITHOUT ROWID;
"""


def corpus_words(texts: Iterable[str]) -> dict[str, Counter[str]]:
    """The words worth translating in ``texts``, with how many texts of each language hold them."""
    found: dict[str, Counter[str]] = {}
    for text in texts:
        language = guess_language(text)
        for word in set(words(text)):
            if _WORD.match(word):
                found.setdefault(word, Counter())[language or "?"] += 1
    return found


class _Side:
    """The words of one language with their vectors and CSLS radii towards the other language."""

    def __init__(self, names: list[str], vectors: Any, radius: Any) -> None:
        self.names, self.vectors, self.radius = names, vectors, radius
        self.position = {name: i for i, name in enumerate(names)}


class Lexicon:
    """The corpus words of one embedder, and their translations."""

    def __init__(self, path: Path, space: str) -> None:
        self.path, self.space = path, space
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._sides: dict[str, _Side] | None = None
        self._version: tuple[int, int] | None = None

    def close(self) -> None:
        self._db.close()

    def add(self, texts: Sequence[str], embedder: Embedder, batch: int = 256, threads: int | None = None) -> int:
        """Count the words of ``texts`` and embed those new to this space (``threads``: the embedder's CPU threads
        for it); returns how many were new."""
        import numpy as np

        found = corpus_words(texts)
        if not found:
            return 0
        with self._lock:
            known = {r[0] for r in self._db.execute(
                f"SELECT word FROM lexicon WHERE space = ? AND word IN ({', '.join('?' * len(found))})",
                [self.space, *found])}
        new = sorted(w for w in found if w not in known)
        vectors: dict[str, bytes] = {}
        for start in range(0, len(new), batch):
            part = new[start:start + batch]
            for word, vector in zip(part, embedder.query(part, threads), strict=True):
                vectors[word] = np.asarray(vector, dtype=np.float16).tobytes()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO lexicon (space, word, fr, en, vector) VALUES (?, ?, ?, ?, ?) ON CONFLICT (space, word) "
                "DO UPDATE SET fr = fr + excluded.fr, en = en + excluded.en",
                [(self.space, w, c["fr"], c["en"], vectors.get(w)) for w, c in found.items()])
            self._db.execute("COMMIT")
            self._sides = None
        return len(new)

    def _load(self) -> dict[str, _Side]:
        import numpy as np

        version = self._db.execute("SELECT count(*), coalesce(sum(fr + en), 0) FROM lexicon WHERE space = ?",
                                   (self.space,)).fetchone()
        if self._sides is not None and self._version == tuple(version):
            return self._sides
        names: dict[str, list[str]] = {"fr": [], "en": []}
        rows: dict[str, list[Any]] = {"fr": [], "en": []}
        for word, fr, en, blob in self._db.execute(
                "SELECT word, fr, en, vector FROM lexicon WHERE space = ? AND vector IS NOT NULL ORDER BY word",
                (self.space,)):
            if fr != en:
                side = "fr" if fr > en else "en"
                names[side].append(word)
                rows[side].append(np.frombuffer(blob, dtype=np.float16))
        matrices = {k: (np.vstack(v).astype(np.float32) if v else np.zeros((0, 1), np.float32))
                    for k, v in rows.items()}
        rng = np.random.default_rng(0)
        sides = {}
        for side, other in (("fr", "en"), ("en", "fr")):
            target, source = matrices[side], matrices[other]
            if len(source) > SAMPLE:
                source = source[rng.choice(len(source), SAMPLE, replace=False)]
            radius = _radius(target @ source.T) if len(target) and len(source) else np.zeros(len(target))
            sides[side] = _Side(names[side], target, radius)
        self._sides, self._version = sides, tuple(version)
        return sides

    def translations(self, query_words: Sequence[str], language: str | None, embedder: Embedder
                     ) -> list[frozenset[str]]:
        """For each word of a question, the stems of its nearest words in the other language."""
        empty: list[frozenset[str]] = [frozenset()] * len(query_words)
        wanted = [i for i, w in enumerate(query_words) if _WORD.match(w)]
        if not wanted:
            return empty
        with self._lock:
            sides = self._load()
        targets = [s for s in (("en",) if language == "fr" else ("fr",) if language == "en" else ("fr", "en"))
                   if len(sides[s].names)]
        if not targets:
            return empty
        vectors = self._vectors([query_words[i] for i in wanted], sides, embedder)
        out = list(empty)
        for row, i in zip(vectors, wanted, strict=True):
            found: set[str] = set()
            for side in (sides[t] for t in targets):
                found |= _nearest(row, side, query_words[i])
            out[i] = frozenset(s for w in found for s in stems(w)) - frozenset(stems(query_words[i]))
        return out


    @staticmethod
    def _vectors(found: list[str], sides: dict[str, _Side], embedder: Embedder) -> Any:
        """The words' vectors: stored for a word of the corpus, computed for the others (one batch)."""
        import numpy as np

        known: dict[str, Any] = {}
        for side in sides.values():
            for word in found:
                position = side.position.get(word)
                if position is not None:
                    known[word] = side.vectors[position]
        missing = [w for w in found if w not in known]
        if missing:
            known.update(zip(missing, embedder.query(missing), strict=True))
        return np.vstack([known[w] for w in found])


def _radius(similarities: Any) -> Any:
    import numpy as np

    k = min(NEIGHBOURS, similarities.shape[1])
    return np.sort(np.partition(similarities, -k, axis=1)[:, -k:], axis=1).mean(axis=1)


def _nearest(vector: Any, side: _Side, word: str) -> set[str]:
    import numpy as np

    similarity = side.vectors @ vector
    k = min(NEIGHBOURS, len(similarity))
    own = float(np.partition(similarity, -k)[-k:].mean())
    csls = 2 * similarity - own - side.radius
    best = np.argsort(-csls)[:PER_WORD]
    return {side.names[j] for j in best if csls[j] >= MIN_CSLS and side.names[j] != word}
