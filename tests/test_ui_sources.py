"""The sources under an answer: a relevance on the same scale for every question (a percentage of the fixed
0..1 relevance, never rescaled per question), the file's name rather than a server path, and an excerpt
in the page's body text colour (readable), not the subdued grey."""

from __future__ import annotations

import re

from helpers import ROOT


def test_relevance_is_shown_as_a_percentage_of_its_fixed_scale() -> None:
    from ui.texts import texts
    from ui.views import sources_html

    sources = [{"n": 1, "source": "rh/conges.md", "page": None, "heading": "Congés > Durée", "score": 0.934,
                "text": "Chaque agent a <b>25</b> jours."},
               {"n": 2, "source": "note.md", "page": 3, "heading": "", "score": 0.41, "text": "x"}]
    fr, en = sources_html(sources, texts("fr")), sources_html(sources, texts("en"))
    assert "pertinence 93 %" in fr and "pertinence 41 %" in fr and "relevance 93%" in en
    assert "&lt;b&gt;25&lt;/b&gt;" in fr  # the excerpt is text, never markup
    assert "Aucune source trouvée" in sources_html([], texts("fr")) and "No source" in sources_html([], texts("en"))


def test_excerpt_uses_the_body_text_colour() -> None:
    css = (ROOT / "ui" / "static" / "kit.css").read_text(encoding="utf-8")
    rule = re.search(r"\.kit-source blockquote\s*\{([^}]*)\}", css)
    assert rule is not None
    assert "color: var(--body-text-color);" in rule.group(1) and "subdued" not in rule.group(1)
