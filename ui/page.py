"""The whole page: the frame (ui.layout) around the tabs (ui.tabs), and the page's own events (first
load, retry, language switch, the gate) before each tab wires its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from kit.config import Settings
from ui.layout import PRIVATE, Gate, Header, Labels, States, build_gate, build_header, build_states
from ui.standalone import footer_link
from ui.tabs import admin, charter, chat, documents, history, usage
from ui.tabs.admin import AdminTab
from ui.tabs.charter import CharterTab
from ui.tabs.chat import ChatTab
from ui.tabs.documents import DocumentsTab
from ui.tabs.history import HistoryTab
from ui.tabs.usage import UsageTab
from ui.texts import LANGUAGES, Texts, texts

if TYPE_CHECKING:
    from ui.admin import AdminHandlers
    from ui.attach import AttachHandlers
    from ui.chat import ChatHandlers
    from ui.documents import DocumentHandlers
    from ui.history import HistoryHandlers
    from ui.pages import PageHandlers
    from ui.usage import UsageHandlers


@dataclass
class Page:
    labels: Labels
    state: States
    header: Header
    gate: Gate
    main_col: gr.Column
    tabs: gr.Tabs
    chat: ChatTab
    history: HistoryTab
    charter: CharterTab
    admin: AdminTab
    documents: DocumentsTab
    usage: UsageTab
    footer: gr.HTML

    def headings(self, lang: str) -> dict[Any, Any]:
        """The headings and tab labels written with their text around them (not in the label registry)."""
        t = texts(lang)
        return {
            **self.gate.headings(t),
            **self.chat.headings(t),
            **self.admin.headings(t),
            **self.history.headings(t),
            **self.charter.headings(t),
            **self.documents.headings(t),
            self.footer: footer_html(t),
            **self.usage.headings(t),
        }

    def outputs(self) -> list[Any]:
        """Everything the first load and the language switch may update, each once."""
        s, hd, g, c, h, a, d = self.state, self.header, self.gate, self.chat, self.history, self.admin, self.documents
        return _unique(
            [
                *[comp for comp, _ in self.labels.items],
                hd.brand, hd.who_md, hd.banner, hd.retry_btn, hd.loading,
                g.col, self.main_col, g.head, g.md, g.quiz_head, *g.quiz, g.msg,
                c.report_md, a.fb_title, a.switch_title, c.chatbot, c.closed_md, c.templates, c.notice,
                h.info, h.tools, self.charter.md, a.tab, a.switch, a.readonly, s.charter, s.model,
                c.chat_msg, c.pii_md, c.pii_send, c.fb_md, a.stats_md, a.fb_table, a.fb_none, a.verify_md,
                c.tab, h.tab, self.charter.tab, d.tab, d.list_title, self.footer, s.lang, hd.lang,
                self.usage.tab, self.usage.intro, self.usage.by,
            ]
        )  # fmt: skip


@dataclass
class Handlers:
    """One handler object per part of the page, composed explicitly (each holds its own tab)."""

    page: PageHandlers
    chat: ChatHandlers
    history: HistoryHandlers
    admin: AdminHandlers
    documents: DocumentHandlers
    usage: UsageHandlers
    attach: AttachHandlers


def footer_html(t: Texts) -> str:
    return f'<p class="kit-footer">{footer_link(t)}</p>'


def _unique(items: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def build(settings: Settings, lang: str, t: Texts) -> Page:
    """Lay the page out (inside a gr.Blocks): states, header, gate, then the tabs in their order."""
    labels = Labels()
    state = build_states(lang)
    header = build_header(settings, lang, t, labels)
    gate = build_gate(t, labels)
    with gr.Column(visible=False, elem_id="kit-main") as main_col:
        with gr.Tabs(selected="chat", elem_id="kit-tabs") as tabs:
            chat_tab = chat.build(t, labels)
            history_tab = history.build(t, labels)
            charter_tab = charter.build(t, labels)
            admin_tab = admin.build(t, labels)
            documents_tab = documents.build(t, labels)
            usage_tab = usage.build(t, labels, settings.policy.usage_min_users)
    footer = gr.HTML(footer_html(t), elem_id="kit-footer")  # on every screen: the accessibility statement
    return Page(labels, state, header, gate, main_col, tabs, chat_tab, history_tab, charter_tab, admin_tab,
                documents_tab, usage_tab, footer)


def wire(demo: gr.Blocks, p: Page, h: Handlers) -> None:
    """The page's own events, then each tab's (in this order: chat, history, admin, documents, usage)."""
    s = p.state

    def load(lang: str, conv: Any, request: gr.Request) -> dict[Any, Any]:
        wanted = str(getattr(request, "query_params", {}).get("lang") or "")  # the sign-in page's language
        lang = wanted if wanted in LANGUAGES else lang
        out = h.page.on_load(lang, conv, request)
        out.update(p.headings(lang))
        out[p.header.loading] = gr.update(visible=False)
        out[s.lang] = lang
        out[p.header.lang] = gr.update(value=lang)
        return out

    def language(request: gr.Request, lang: str, *rest: Any) -> dict[Any, Any]:
        out = h.page.on_language(request, lang, *rest)
        out.update(p.headings(lang))
        out[s.lang] = lang
        return out

    def acknowledge(request: gr.Request, lang: str, *rest: Any) -> dict[Any, Any]:
        return {**h.page.acknowledge(request, lang, *rest), **p.headings(lang)}

    page = p.outputs()
    demo.load(load, [s.lang, s.conv], page, **PRIVATE)
    p.header.retry_btn.click(load, [s.lang, s.conv], page, **PRIVATE)
    p.header.lang.change(
        language,
        [p.header.lang, s.conv, s.charter, s.model, s.pii_pending, s.feedback, s.admin_cache, *p.gate.quiz],
        _unique([*page, s.lang]),
        js="(l, ...a) => { document.documentElement.lang = l; return [l, ...a]; }",
        **PRIVATE,
    )
    p.gate.btn.click(
        acknowledge, [s.lang, s.charter, p.gate.confirm_cb, s.conv, s.model, *p.gate.quiz], page, **PRIVATE
    )
    chat.wire(p.chat, h.chat, s)
    chat.wire_files(p.chat, h.chat, h.attach, s)
    history.wire(p.history, h.history, s, p.chat, p.tabs)
    admin.wire(p.admin, h.admin, s)
    documents.wire(p.documents, h.documents, s)
    usage.wire(p.usage, h.usage, s, p.header)
