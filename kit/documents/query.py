"""A question as the keyword index reads it: its meaningful words, their stems, and the stems of their
expansions (the organisation's synonyms, and the nearest words of the other language found by
:mod:`kit.documents.lexicon`), then the FTS5 query that matches them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kit.documents.synonyms import expand
from kit.documents.text import stems, words


@dataclass(frozen=True)
class QueryWord:
    """A meaningful word of a question: its own stems, and the stems of its expansions."""

    stems: tuple[str, ...]
    translations: frozenset[str] = frozenset()
    weight: float = 1.0  # less for a word of the conversation before the question

    @property
    def all(self) -> frozenset[str]:
        return frozenset(self.stems) | self.translations


def query_words(text: str, synonyms: str = "",
                translations: Sequence[frozenset[str]] | None = None) -> list[QueryWord]:
    """The distinct meaningful words of a question, each with the stems that count as a match.

    ``translations``: for each word of ``words(text)``, the stems of its cross-language neighbours."""
    found = words(text)
    extra = expand(found, synonyms)
    if translations is not None:
        extra = [a | b for a, b in zip(extra, translations, strict=True)]
    seen: dict[tuple[str, ...], frozenset[str]] = {}
    for word, more in zip(found, extra, strict=True):
        key = stems(word)
        seen[key] = seen.get(key, frozenset()) | more
    return [QueryWord(k, v - frozenset(k)) for k, v in seen.items()]


def fts_query(query: Iterable[QueryWord]) -> str:
    """An FTS5 MATCH expression: any stem of any word or expansion (BM25 ranks chunks matching
    more, and rarer, terms first)."""
    terms = dict.fromkeys(stem for word in query for stem in (*word.stems, *sorted(word.translations)))
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
