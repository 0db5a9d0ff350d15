"""A message's text made safe to render: the model's answer before kit's own parts (label, sources, notes),
and what a user wrote.

The chat renders an answer as one Markdown document: the model's text, then kit's HTML blocks. Left as it
is, the text could change how those blocks render: an answer cut off inside a fenced code block puts them
in the code block, an unclosed HTML comment or tag swallows or hides them, and a page read by the model
could make it write a block that looks like kit's sources. So the model's text is made inert:

- a fenced code block left open at the end is closed;
- outside code (fenced or indented blocks, inline code spans), every ``<`` becomes the entity ``&#60;``:
  HTML in the text is shown as text, never as markup; code is left exactly as written.

Blocks are found with markdown-it-py (CommonMark, as the chat's renderer follows it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

LT = "&#60;"  # what ``<`` becomes outside code (the copy button turns it back, ui/static/kit.js)
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


def close_fence(text: str, tokens: list[Any] | None = None) -> str:
    """``text`` with a fenced code block that is still open at its end closed (a fence in a list item or a
    quote ends with it, at the blank line before kit's blocks; only one at the top level runs on).
    ``tokens``: the text's tokens when the caller has parsed it already."""
    if "```" not in text and "~~~" not in text:
        return text
    tokens = _parser().parse(text) if tokens is None else tokens
    fences = [t for t in tokens if t.type == "fence" and t.level == 0 and t.map]
    if not fences:
        return text
    last, lines = fences[-1], text.split("\n")
    end = lines[last.map[1] - 1] if last.map[1] - 1 > last.map[0] else ""
    indent = len(end) - len(end.lstrip(" "))
    closing = end.strip(" \t")
    if indent <= 3 and len(closing) >= len(last.markup) and set(closing) == {last.markup[0]}:
        return text
    return text + ("" if text.endswith("\n") else "\n") + last.markup


def _code_lines(tokens: list[Any]) -> set[int]:
    """Indexes of the lines inside fenced or indented code blocks (at any depth: in lists, in quotes)."""
    lines: set[int] = set()
    for token in tokens:
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(*token.map))
    return lines


def _escape_outside_spans(text: str) -> str:
    """``<`` → entity, except inside inline code spans (a run of n backticks closed by the next run of n,
    within one paragraph)."""
    out: list[str] = []
    pos = 0
    while (m := _BACKTICKS.search(text, pos)) is not None:
        out.append(text[pos:m.start()].replace("<", LT))
        close = next((c for c in _BACKTICKS.finditer(text, m.end()) if len(c.group()) == len(m.group())), None)
        if close is None or _BLANK_LINE.search(text, m.end(), close.start()):
            out.append(m.group())  # literal backticks, not a span
            pos = m.end()
        else:
            out.append(text[m.start():close.end()])
            pos = close.end()
    out.append(text[pos:].replace("<", LT))
    return "".join(out)


@lru_cache(maxsize=512)  # a conversation is rendered again at each step of an answer: earlier messages once
def safe_markdown(text: str) -> str:
    """A message (the model's answer, or what a user wrote) as Markdown that shows its HTML as text and
    cannot open, hide or forge anything after it."""
    if "<" not in text:
        return close_fence(text)
    # one parse: closing a fence left open at the end adds only its closing line, which holds no "<"
    tokens = _parser().parse(text)
    code = _code_lines(tokens)
    text = close_fence(text, tokens)
    lines = text.split("\n")
    out: list[str] = []
    run: list[str] = []
    for i, line in enumerate(lines):
        if i in code:
            if run:
                out.append(_escape_outside_spans("\n".join(run)))
                run = []
            out.append(line)
        else:
            run.append(line)
    if run:
        out.append(_escape_outside_spans("\n".join(run)))
    return "\n".join(out)
