"""What the chat's own pages outside Gradio share (the sign-in page, ui.signin; the accessibility
statement, ui.statement; served by ui.ownpages): one language at a time (``?lang=fr`` or ``?lang=en``, else
the configured one), and the frame: brand, language links, footer link to the statement."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from kit.config import Settings
from ui.texts import LANGUAGES, Texts, catalog

STATIC = Path(__file__).resolve().parent / "static"
STATEMENT_PATH = "/accessibility"


def page_lang(scope: dict[str, Any], default: str) -> str:
    """The language a request asks for (``?lang=``), else ``default``."""
    query = parse_qs(bytes(scope.get("query_string") or b"").decode("latin-1"))
    wanted = (query.get("lang") or [""])[0]
    return wanted if wanted in LANGUAGES else default


def relative_path(scope: dict[str, Any]) -> str:
    path = str(scope.get("path") or "/")
    root = str(scope.get("root_path") or "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


def footer_link(t: Texts) -> str:
    """The line every page ends with: the conformity state, a link to the accessibility statement."""
    href = f"{STATEMENT_PATH.lstrip('/')}?lang={t.lang}"
    return f'<a href="{href}" id="kit-a11y-link">{html.escape(t("a11y.footer"))}</a>'


def language_links(t: Texts, path: str = "") -> str:
    """The language switch: a named list of links, the current one marked, each in its own language."""
    items = []
    for lang in LANGUAGES:
        name = html.escape(str(catalog(lang)["language_name"]))
        current = ' aria-current="true"' if lang == t.lang else ""
        items.append(f'<li><a href="{path}?lang={lang}" hreflang="{lang}" lang="{lang}"{current}>{name}</a></li>')
    return (f'<nav class="kit-langs" aria-label="{html.escape(t("a11y.language_switch"))}">'
            f'<ul>{"".join(items)}</ul></nav>')


def frame(settings: Settings, t: Texts, title: str, body: str, *, path: str = "", script: str = "") -> str:
    """A whole page: skip link, header (brand, languages), main content, footer."""
    org = settings.deployment.organisation or ""
    sub = f'<p class="kit-sub">{html.escape(t("app.subtitle", organisation=org))}</p>' if org else ""
    css = (STATIC / "page.css").read_text(encoding="utf-8")
    return (
        f'<!doctype html>\n<html lang="{t.lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex,nofollow">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{css}</style>\n</head>\n<body>\n"
        f'<a class="kit-skip" href="#main">{html.escape(t("a11y.skip"))}</a>\n'
        f'<header class="kit-top"><div class="kit-brand"><span class="kit-logo" aria-hidden="true">◆</span>'
        f'<div><p class="kit-title">{html.escape(t("app.title"))}</p>{sub}</div></div>'
        f"{language_links(t, path)}</header>\n"
        f'<main id="main" tabindex="-1">\n{body}\n</main>\n<footer>{footer_link(t)}</footer>\n'
        f"{script}</body>\n</html>\n"
    )
