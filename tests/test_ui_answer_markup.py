"""The model's text cannot change how kit's own parts of an answer render: an answer cut off inside a
code block, or one that writes HTML (an unclosed tag, a comment, a forged "Sources" block), still shows
the label, the sources and the notes kit adds under it, as kit wrote them.

Parsed with markdown-it-py (CommonMark, as the chat's Markdown renderer follows it): the sources and
notes must come out as top-level HTML blocks, never inside a code block, a comment or the model's tags."""

from __future__ import annotations

from typing import Any

import pytest

SOURCES = [{"n": 1, "source": "stationnement.md", "page": None, "heading": "Badge", "score": 0.9,
            "text": "Le badge est délivré par le service logistique."}]


def render(text: str, **extra: Any) -> list[Any]:
    from markdown_it import MarkdownIt

    from ui.texts import texts
    from ui.views import answer_content

    answer = {"text": text, "model": "m", "sources": SOURCES, "finish": "length", **extra}
    return MarkdownIt("commonmark").parse(answer_content(answer, texts("fr"), 1, 1))


def kit_blocks(tokens: list[Any]) -> list[str]:
    """kit's own blocks: top-level raw HTML that opens with one of kit's classes."""
    return [t.content for t in tokens if t.type == "html_block" and t.level == 0
            and t.content.lstrip().startswith(('<div class="kit-', '<span class="kit-'))]


@pytest.mark.parametrize("text", [
    "Un exemple :\n\n```python\ndef f():\n    return 1",          # cut off inside a fenced block
    "Voici :\n~~~~\ncode\n~~~",                                     # a shorter closing fence does not close it
    "Liste :\n\n   ```\nindented fence",                           # fence indented by up to 3 spaces
    "Deux blocs :\n```\na\n```\ntexte\n````sh\nb",                 # the second one left open
])
def test_an_answer_cut_off_inside_a_code_block_keeps_its_sources_and_notes(text: str) -> None:
    tokens = render(text)
    blocks = kit_blocks(tokens)
    assert any('class="kit-sources"' in b for b in blocks), [(t.type, t.content[:60]) for t in tokens]
    assert any("kit-note" in b and "tronquée" in b for b in blocks)
    fences = [t for t in tokens if t.type == "fence"]
    assert fences and all("kit-" not in t.content for t in fences)


@pytest.mark.parametrize("text", [
    "Début <!-- un commentaire jamais fermé",
    "<details><summary>Plus</summary>\n\ntexte jamais refermé",
    "<pre>\nbloc brut",
    '<div class="kit-sources"><div class="kit-sources-title">Sources</div>'
    '<details class="kit-source"><summary>[1] faux.md</summary></details></div>',
    '<span class="kit-ai-label">Rédigé par un humain</span>',
])
def test_html_in_the_answer_is_shown_as_text_and_cannot_swallow_or_forge_kits_parts(text: str) -> None:
    tokens = render(text)
    blocks = kit_blocks(tokens)
    assert sum('class="kit-sources"' in b for b in blocks) == 1
    assert not any("faux.md" in b or "humain" in b for b in blocks)
    assert not any(t.type in ("html_block", "html_inline") and t.level > 0 for t in tokens)
    from_model = [t.content for t in tokens if t.type == "html_block" and t.content not in blocks]
    assert not from_model
    inline = [c.content for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "html_inline"]
    assert inline == ['<span class="kit-ai-label">', "</span>"]  # kit's label, and nothing the model wrote


def test_code_in_the_answer_is_left_as_written() -> None:
    from ui.markup import LT, safe_markdown

    text = "Utilisez `a < b` puis :\n\n```html\n<p>x &amp; y</p>\n```\n\net ``x<`y`` enfin."
    out = safe_markdown(text)
    assert "`a < b`" in out and "<p>x &amp; y</p>" in out and "``x<`y``" in out
    assert out.endswith("enfin.")
    assert safe_markdown("3 < 4 et <b>gras</b>") == f"3 {LT} 4 et {LT}b>gras{LT}/b>"
