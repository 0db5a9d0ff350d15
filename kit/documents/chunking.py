"""Cut sections into chunks that follow the document's structure, with overlap.

Boundaries, strongest first: a section (a heading or a page), a numbered article ("Article 3",
"Art. 12", "Article premier", "ARTICLE L. 123-4"), a paragraph, a sentence, a word. A chunk never
spans two sections or two articles; inside one, paragraphs are packed up to ``size`` characters
and each chunk after the first starts with the last ``overlap`` characters of the one before (cut
at a word). An article heading found in a PDF page stays in force on the following pages until the
next one, so a chunk on page 4 still says it belongs to "Article 7".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kit.documents.parsers import Section

ARTICLE = re.compile(
    r"^\s*(?P<label>(?:article|art\.)\s+(?:premier|1er|unique|[LRD]\.?\s*\d[\d.\-]*|\d+(?:[.\-]\d+)*(?:\s*(?:bis|ter))?"
    r"|[IVXLC]+\b))\s*(?:[-\u2013\u2014:.)]\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)
TITLE_CHARS = 90
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Piece:
    """One chunk of text with its place in the document (before any index metadata is added)."""

    text: str
    page: int | None
    heading: tuple[str, ...]


def _article(line: str) -> tuple[str, str] | None:
    """(heading, body text on the same line) when the line opens a numbered article."""
    match = ARTICLE.match(line)
    if not match:
        return None
    label = " ".join(match.group("label").split()).rstrip(".")
    rest = (match.group("rest") or "").strip()
    if rest and len(rest) <= TITLE_CHARS and not rest.endswith((".", ";", ",")):
        return f"{label} - {rest}", ""
    return label, rest


def _split_articles(section: Section, carried: str | None) -> tuple[list[tuple[tuple[str, ...], str]], str | None]:
    """(heading path, text) per article of a section, and the article still open at its end."""
    current = carried
    out: list[tuple[tuple[str, ...], str]] = []
    buffer: list[str] = []
    for line in section.text.split("\n"):
        opened = _article(line)
        if opened:
            if "".join(buffer).strip():
                out.append((section.heading + ((current,) if current else ()), "\n".join(buffer)))
            current, rest = opened
            buffer = [rest] if rest else []
        else:
            buffer.append(line)
    if "".join(buffer).strip():
        out.append((section.heading + ((current,) if current else ()), "\n".join(buffer)))
    return out, current


def _units(text: str, size: int) -> list[tuple[str, bool]]:
    """(unit, opens a paragraph): paragraphs, cut at sentences then words when longer than ``size``."""
    units: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= size:
            units.append((paragraph, True))
            continue
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                units.append((sentence[:cut].strip(), first))
                sentence, first = sentence[cut:], False
            if sentence.strip():
                units.append((sentence.strip(), first))
                first = False
    return units


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0:
        return ""
    if len(text) <= overlap:
        return text
    window = text[len(text) - overlap:]
    sentence = _SENTENCE_END.search(window)
    if sentence and sentence.end() < len(window):
        return window[sentence.end():]
    start = window.find(" ")
    return window[start + 1:] if start >= 0 else window


def _pack(units: list[tuple[str, bool]], size: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for unit, opens in units:
        sep = "\n\n" if opens else " "
        if current and len(current) + len(sep) + len(unit) > size:
            chunks.append(current)
            tail = _tail(current, overlap)
            current = tail + sep + unit if tail else unit
        else:
            current = current + sep + unit if current else unit
    if current.strip():
        chunks.append(current)
    return chunks


def chunk_sections(sections: Iterable[Section], size: int = 800, overlap: int = 120) -> list[Piece]:
    """Chunks of at most about ``size`` characters (``size + overlap`` with the overlap)."""
    if size < 50:
        raise ValueError("chunk size must be at least 50 characters")
    overlap = max(0, min(overlap, size // 2))
    pieces: list[Piece] = []
    article: str | None = None
    for section in sections:
        carried = article if section.page is not None and not section.heading else None
        parts, article = _split_articles(section, carried)
        for heading, text in parts:
            for chunk in _pack(_units(text, size), size, overlap):
                pieces.append(Piece(chunk, section.page, heading))
    return pieces
