"""Text normalisation for the keyword index: accent folding, French and English stemming.

Every word is reduced to *both* its French and its English Snowball stem (after lowercasing, and
with accents folded away), and both are indexed. There is no language detector to get wrong: a
French question matches a French chunk through the French stems, an English one through the
English stems, and shared words between the languages (cognates such as *procédure* /
*procedure*, *télétravail*, acronyms, amounts and article numbers) still meet across them. BM25's
inverse document frequency keeps the extra stems from weighing much. Stop words of both languages
are dropped, except acronyms written in capitals (CET, IT, RH). Questions are also expanded with
the nearest words of the other language (:mod:`kit.documents.lexicon`) and the organisation's
synonyms (:mod:`kit.documents.synonyms`), so that a French chunk can answer an English question on
the keyword side.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "’": "'"})

STOP_FR = frozenset("""
a à afin ai aie aient aies ait al alors as au aucun aucune auquel aussi autre autres aux auxquelles auxquels avaient
avais avait avant avec avez aviez avions avoir avons ayant c ça car ce ceci cela celle celles celui cependant certain
certaine certaines certains ces cet cette ceux chacun chacune chaque chez ci comme comment d dans de des desquelles
desquels dessous dessus doit doivent donc dont du duquel durant elle elles en encore entre es est et étaient étais était
été être eu eue eues eurent eus eut eux faire fait faut hors il ils j je jusqu jusque l la laquelle le lequel les
lesquelles lesquels leur leurs lorsque lui m ma mais me même mêmes mes moi mon n ne ni nos notre nous on ont ou où par
parce pas peu peut peuvent plus plusieurs pour pourquoi pouvez puis qu quand que quel quelle quelles quels qui quoi s sa
sans se selon ses si sien soi soit sommes son sont sous suis sur t ta te tes toi ton tous tout toute toutes très tu un
une unes uns vers vos votre vous y quoi combien faut doit peut-on est-ce
""".split())

STOP_EN = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not of off on once only or other our
ours ourselves out over own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who whom why will with would
you your yours yourself yourselves must shall might can't cannot many much s t don does do
""".split())


def fold(text: str) -> str:
    """Lowercase and strip accents (NFKD, combining marks dropped; œ → oe, æ → ae)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES).lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_STOP_FOLDED = frozenset(fold(w) for w in STOP_FR | STOP_EN)


@lru_cache(maxsize=2)
def _stemmer(language: str) -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer(language)


@lru_cache(maxsize=200_000)
def stems(word: str) -> tuple[str, ...]:
    """The distinct folded stems of one lowercase word: French, then English."""
    french = fold(_stemmer("french").stemWord(word))
    english = _stemmer("english").stemWord(fold(word))
    return (french,) if french == english else (french, english)


def words(text: str) -> list[str]:
    """Lowercase words of ``text`` that carry meaning (stop words and single letters dropped)."""
    out = []
    for match in _WORD.finditer(text.translate(_LIGATURES)):
        raw = match.group().strip("_")
        word = raw.lower()
        if not word or (len(word) == 1 and not word.isdigit()):
            continue
        if fold(word) in _STOP_FOLDED and not (raw.isupper() and len(raw) <= 5):  # acronyms: CET, IT, RH
            continue
        out.append(word)
    return out


def index_terms(text: str) -> str:
    """The space-separated stems stored in the keyword index for ``text``."""
    return " ".join(stem for word in words(text) for stem in stems(word))


def guess_language(text: str) -> str | None:
    """"fr" or "en" from the stop words of a text (None when it cannot tell)."""
    tokens = [m.group().lower() for m in _WORD.finditer(text.translate(_LIGATURES))]
    french = sum(t in STOP_FR for t in tokens)
    english = sum(t in STOP_EN for t in tokens)
    return "fr" if french > english else "en" if english > french else None
