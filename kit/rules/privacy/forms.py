"""The forms a text takes before the rules read it, with the way back to the characters typed.

Office software and French typography write the same number in many ways: non-breaking or narrow
non-breaking spaces between groups (U+00A0, U+202F), dashes, dots, slashes, tabs, several spaces, a
line break; keyboards and converters give fullwidth digits (``１８５``), Arabic-Indic digits, a
fullwidth ``＠``; a zero-width space or a soft hyphen may sit inside a number, an address or a name.
The rules are written for the plain spelling, so they read one of two views of the text:

* :func:`normalize`, the plain view, read by every rule: each character with the combining marks
  that follow it goes through Unicode NFKC, then any decimal digit becomes its ASCII digit, any space
  (tab, no-break, narrow, ideographic) a plain space, any dash or minus sign ``-``, any other line
  separator a line break, and zero-width and other invisible format characters (soft hyphen included)
  are dropped;
* :func:`separated`, the grouped view of the plain one, read by the number rules only (NIR, IBAN,
  payment card, SIRET/SIREN, phone numbers): a short run of separators (spaces, ``-``, ``.``, ``/``,
  ``_``, at most one line break) between two letters or digits, one of them a digit (or both capital
  letters, as in an IBAN), becomes one space, the spelling those rules know. E-mail addresses, URLs
  and IP addresses are read in the plain view only, where their dots still mean something.

Each view keeps, for every one of its characters, the span of the characters it came from
(:meth:`View.span`), so that a finding is reported, masked and underlined on the text as typed, the
non-breaking spaces and zero-width characters inside it included. Both views cost time in proportion to
the text's length; a text with nothing to change (most texts) is its own view and costs one search.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass

DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043")
LINE_BREAKS = frozenset("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_INVISIBLE_MARKS = frozenset("\u034f\u180b\u180c\u180d\u180f") | {chr(c) for c in range(0xFE00, 0xFE10)}
# Characters a view keeps as they are: printable ASCII, line breaks, Latin-1 letters and signs,
# Latin Extended-A, French quotation marks and apostrophes. Anything else is looked at one by one.
_PLAIN = re.compile(
    "[^\x20-\x7e\n\r\u00a1-\u00a7\u00a9\u00ab\u00ac\u00ae\u00b0\u00b1\u00b6\u00b7\u00bb\u00bf-\u0131"
    "\u0134-\u013e\u0141-\u0148\u014a-\u017e\u2018\u2019\u201c\u201d\u2020\u2022\u20ac]")
_SEPARATOR_RUN = re.compile(r"(?<=[A-Za-z0-9])(?:[ \-./_]{1,4}|[ \-./_]{0,3}\r?\n[ \-./_]{0,3})(?=[A-Za-z0-9])")


@dataclass(frozen=True)
class View:
    """A form of a text: ``text``, and for each of its characters the span ``starts[i]:ends[i]`` of
    the characters it came from in the text it was made from (``None``: the same text)."""

    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span, in the text the view was made from, of the view's characters ``start:end``."""
        if self.starts is None or self.ends is None or end <= start:
            return start, end
        return self.starts[start], self.ends[end - 1]


@functools.lru_cache(maxsize=4096)
def fold_cluster(cluster: str) -> str:
    """The plain form of one character and the combining marks that follow it."""
    out = []
    for c in unicodedata.normalize("NFKC", cluster):
        category = unicodedata.category(c)
        if category == "Cf" or c in _INVISIBLE_MARKS:
            continue
        if c == "\t" or category == "Zs":
            out.append(" ")
        elif c in LINE_BREAKS:
            out.append("\n")
        elif c in DASHES:
            out.append("-")
        elif category == "Nd":
            out.append(str(unicodedata.decimal(c)))
        else:
            out.append(c)
    return "".join(out)


def normalize(text: str) -> View:
    """The plain view of ``text`` (see the module's docstring)."""
    if _PLAIN.search(text) is None:
        return View(text)
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    done = 0  # text[:done] is in the view
    for m in _PLAIN.finditer(text):
        begin = m.start()
        if begin > done and unicodedata.combining(text[begin]):
            begin -= 1  # the mark belongs with the character before it
        if begin < done:
            begin = done
        parts.append(text[done:begin])
        starts.extend(range(done, begin))
        ends.extend(range(done + 1, begin + 1))
        i = begin
        while i < m.end():
            j = i + 1
            while j < len(text) and unicodedata.combining(text[j]):
                j += 1
            folded = fold_cluster(text[i:j])
            parts.append(folded)
            starts.extend([i] * len(folded))
            ends.extend([j] * len(folded))
            i = j
        done = i
    parts.append(text[done:])
    starts.extend(range(done, len(text)))
    ends.extend(range(done + 1, len(text) + 1))
    return View("".join(parts), starts, ends)


def _canonical(run: str, before: str, after: str) -> bool:
    """True for a separator run that the grouped view writes as one space."""
    if run == " ":
        return False
    return before.isdigit() or after.isdigit() or (before.isupper() and after.isupper())


def separated(text: str) -> View | None:
    """The grouped view of a plain text (see the module's docstring), or None when it is the same text."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    done = 0
    for m in _SEPARATOR_RUN.finditer(text):
        s, e = m.span()
        if not _canonical(m.group(), text[s - 1], text[e]):
            continue
        parts += [text[done:s], " "]
        starts.extend(range(done, s))
        ends.extend(range(done + 1, s + 1))
        starts.append(s)
        ends.append(e)
        done = e
    if not parts:
        return None
    parts.append(text[done:])
    starts.extend(range(done, len(text)))
    ends.extend(range(done + 1, len(text) + 1))
    return View("".join(parts), starts, ends)


_SEPARATORS = re.compile(r"[\s\-./_]+")


def separator_kinds(text: str, start: int, end: int) -> set[str]:
    """The kinds of separator between the groups of ``text[start:end]``: each run of separators counts
    as its characters other than spaces (``" - "`` is a dash), or as ``" "`` if it holds only spaces and
    line breaks."""
    return {"".join(sorted({c for c in run if not c.isspace()})) or " "
            for run in _SEPARATORS.findall(text, start, end)}


def value_key(kind: str, value: str) -> str:
    """The value of a finding of type ``kind`` in one spelling, so that the same datum written twice, in
    the same form or not, gets the same placeholder when masked."""
    value = normalize(value).text
    if kind in ("PERSON", "LOCATION", "EMAIL_ADDRESS"):
        return " ".join(value.split()).casefold()
    if kind == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value.casefold()
    compact = re.sub(r"[^0-9A-Za-z+]", "", value).upper()
    if kind == "PHONE_NUMBER":
        compact = re.sub(r"^(?:\+|00)33(0?)", "0", compact)
    return compact
