"""A question as the keyword index reads it: its meaningful words, their stems, and the stems of their
glossary translations (French <-> English), then the FTS5 query that matches them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kit.documents.glossary import expand
from kit.documents.text import stems, words


@dataclass(frozen=True)
class QueryWord:
    """A meaningful word of a question: its own stems, and the stems of its glossary translations."""

    stems: tuple[str, ...]
    translations: frozenset[str] = frozenset()

    @property
    def all(self) -> frozenset[str]:
        return frozenset(self.stems) | self.translations


def query_words(text: str, translate: bool = True, extra_glossary: str = "") -> list[QueryWord]:
    """The distinct meaningful words of a question, each with the stems that count as a match."""
    found = words(text)
    translations = expand(found, extra_glossary) if translate else [frozenset()] * len(found)
    seen: dict[tuple[str, ...], frozenset[str]] = {}
    for word, extra in zip(found, translations, strict=True):
        key = stems(word)
        seen[key] = seen.get(key, frozenset()) | extra
    return [QueryWord(k, v - frozenset(k)) for k, v in seen.items()]


def fts_query(query: Iterable[QueryWord]) -> str:
    """An FTS5 MATCH expression: any stem of any word or translation (BM25 ranks chunks matching
    more, and rarer, terms first)."""
    terms = dict.fromkeys(stem for word in query for stem in (*word.stems, *sorted(word.translations)))
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
