"""The accessibility statement (déclaration d'accessibilité) the RGAA asks every public service to publish:
conformity state, test results, content that is not accessible, how it was made, a contact, and the
recourse to the Défenseur des droits. Reachable from every page (ui.standalone.footer_link), signed in
or not, in French and English."""

from __future__ import annotations

import html
from typing import Any

from kit import __version__
from kit.config import Settings
from ui.standalone import frame
from ui.texts import Texts


def _markdown(text: str) -> str:
    """Inline Markdown of the translation files (bold, links) as HTML, with raw HTML escaped."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": False}).renderInline(text))


def _contact(settings: Settings) -> str:
    contacts: Any = settings.deployment.contacts
    return str(contacts.point_of_contact or contacts.dpo or contacts.business_owner or "")


def statement_html(settings: Settings, t: Texts) -> str:
    """The statement in the language of `t`, for this deployment (its organisation and contact)."""
    org = settings.deployment.organisation or t("app.title")
    title = t("app.page_title", organisation=org) if settings.deployment.organisation else t("app.title")
    s = "a11y.statement."
    contact = _contact(settings)

    def section(key: str, *paragraphs: str) -> str:
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        return f"<h2>{html.escape(t(s + key + '_title'))}</h2>{body}"

    def items(key: str) -> str:
        return "<ul>" + "".join(f"<li>{_markdown(item)}</li>" for item in t.items(s + key)) + "</ul>"

    contact_text = (t(s + "contact", contact="\0") if contact else t(s + "contact_none"))
    contact_html = html.escape(contact_text).replace("\0", f"<strong>{html.escape(contact)}</strong>")
    body = "\n".join([
        '<div class="kit-card">',
        f'<h1>{html.escape(t(s + "heading"))}</h1>',
        f'<p>{html.escape(t(s + "commitment", organisation=org, title=t("app.title")))}</p>',
        section("state", _markdown(t(s + "state"))),
        section("tests", html.escape(t(s + "tests"))),
        f'<h2>{html.escape(t(s + "issues_title"))}</h2>{items("issues")}',
        section("made", html.escape(t(s + "made", version=__version__))),
        section("contact", contact_html),
        section("recourse", html.escape(t(s + "recourse"))) + items("recourse_ways"),
        f'<p><a href="./?lang={t.lang}">{html.escape(t(s + "back"))}</a></p>',
        "</div>",
    ])
    return frame(settings, t, t(s + "page_title", title=title), body)
