"""The organisation's own synonyms: acronyms, local names, in-house terms (none built in).

kit holds no vocabulary of its own: cross-language matches come from the embedding model
(:mod:`kit.documents.lexicon`). What no model can know — that *CET* is the *compte épargne-temps*,
that *the Annex* is the building at 12 rue Pasteur — an administrator writes in a plain text file,
``$KIT_HOME/synonyms.txt`` by default (``rag.synonyms_file`` names another), empty unless written.
One group of equivalent terms a line, separated by ``;``; ``#`` starts a comment::

    CET; compte épargne-temps; time savings account
    DSI; direction des systèmes d'information; IT department

A word of a question found in a group also searches, on the keyword side, for every other term of
its group; a term of several words is matched as a whole, the longest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from kit.documents.text import stems, words

Key = tuple[frozenset[str], ...]


def synonyms_path(home: Path, configured: str | None = None) -> Path:
    """``rag.synonyms_file`` when set (relative to ``$KIT_HOME``), else ``$KIT_HOME/synonyms.txt``."""
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else home / path
    return home / "synonyms.txt"


def load_synonyms(path: Path) -> str:
    """The file's text ('' when there is none)."""
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""


def _groups(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        terms = [t.strip() for t in line.replace("|", ";").split(";") if t.strip()]
        if len(terms) > 1:
            out.append(terms)
    return out


def _key(term: str) -> Key:
    return tuple(frozenset(stems(w)) for w in words(term))


@lru_cache(maxsize=4)
def _table(text: str) -> tuple[dict[Key, frozenset[str]], dict[str, list[Key]]]:
    """Each term (as a sequence of stem sets) -> the stems of the other terms of its groups; and the
    terms by their first stem, longest first."""
    table: dict[Key, set[str]] = {}
    for group in _groups(text):
        for term in group:
            key = _key(term)
            if key:
                others = {s for t in group if t != term for w in words(t) for s in stems(w)}
                table.setdefault(key, set()).update(others)
    first: dict[str, list[Key]] = {}
    for key in table:
        for stem in key[0]:
            first.setdefault(stem, []).append(key)
    for keys in first.values():
        keys.sort(key=len, reverse=True)
    return {k: frozenset(v) for k, v in table.items()}, first


def expand(query_words: Iterable[str], text: str) -> list[frozenset[str]]:
    """For each word of the question, the stems of its synonyms (empty when none is written)."""
    sets = [frozenset(stems(w)) for w in query_words]
    out: list[set[str]] = [set() for _ in sets]
    if not text.strip():
        return [frozenset()] * len(sets)
    table, first = _table(text)
    i = 0
    while i < len(sets):
        candidates = sorted({k for s in sets[i] for k in first.get(s, ())}, key=len, reverse=True)
        step = 1
        for key in candidates:
            window = sets[i:i + len(key)]
            if len(window) == len(key) and all(a & b for a, b in zip(window, key, strict=True)):
                for j in range(i, i + len(key)):
                    out[j] |= table[key]
                step = len(key)
                break
        i += step
    return [frozenset(s) for s in out]
