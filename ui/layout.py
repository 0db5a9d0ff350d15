"""The page's frame around the tabs: the states every tab reads, the header (brand, who is signed in,
language, sign out), the status lines, the acknowledgement gate, and the registry of fixed labels that
the language switch re-renders."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from kit.config import Settings
from ui.texts import Texts, language_choices
from ui.views import new_conversation

# Every event is private (not part of a public API) and shows no progress overlay; the chat streams
# itself and the other actions answer in a status line.
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}

MAX_QUIZ = 10


class Labels:
    """The fixed labels of the page: each component with its properties' translation keys."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, dict[str, str]]] = []

    def lab(self, component: Any, **props: str) -> Any:
        self.items.append((component, props))
        return component


@dataclass
class States:
    """What one browser session keeps between events."""

    lang: gr.State
    conv: gr.State
    charter: gr.State
    model: gr.State
    pending: gr.State  # the message about to be sent
    pii_pending: gr.State  # the message waiting for its personal data to be confirmed
    feedback: gr.State  # the answer being rated
    admin_cache: gr.State  # the admin tab's figures, re-rendered when the language changes


def build_states(lang: str) -> States:
    return States(
        lang=gr.State(lang),
        conv=gr.State(new_conversation()),
        charter=gr.State(None),
        model=gr.State(""),
        pending=gr.State(None),
        pii_pending=gr.State(None),
        feedback=gr.State(None),
        admin_cache=gr.State(None),
    )


def brand_html(settings: Settings, t: Texts) -> str:
    org = html.escape(settings.deployment.organisation or "")
    sub = f'<div class="kit-sub">{html.escape(t("app.subtitle", organisation=org))}</div>' if org else ""
    return (
        f'<div class="kit-brand"><span class="kit-logo" aria-hidden="true">◆</span>'
        f'<div><h1 class="kit-title">{html.escape(t("app.title"))}</h1>{sub}</div></div>'
    )


@dataclass
class Header:
    """Brand, who is signed in, the language switch (on every screen), sign out; then the status lines."""

    brand: gr.HTML
    who_md: gr.Markdown
    lang: gr.Radio
    logout: gr.Button
    loading: gr.Markdown
    banner: gr.Markdown
    retry_btn: gr.Button


def build_header(settings: Settings, lang: str, t: Texts, labels: Labels) -> Header:
    lab = labels.lab
    with gr.Row(elem_id="kit-header", equal_height=True):
        brand = gr.HTML(brand_html(settings, t), elem_id="kit-brand-box")
        who_md = gr.Markdown("", elem_id="kit-who")
        switch = lab(
            gr.Radio(
                choices=language_choices(),
                value=lang,
                label=t("a11y.language_switch"),  # its name for screen readers (kit.js names the group with it)
                show_label=False,
                container=False,
                elem_id="kit-lang",
                scale=0,
                min_width=190,
            ),
            label="a11y.language_switch",
        )
        logout = lab(
            gr.Button(
                t("app.logout"),
                link="/auth/logout" if settings.ui.auth == "oidc" else "/logout",
                size="sm",
                variant="secondary",
                scale=0,
                min_width=120,
                visible=settings.ui.auth in ("local", "oidc"),
                elem_id="kit-logout",
            ),
            value="app.logout",
        )
    return Header(
        brand=brand,
        who_md=who_md,
        lang=switch,
        logout=logout,
        loading=lab(gr.Markdown(t("app.loading"), elem_id="kit-loading"), value="app.loading"),
        banner=gr.Markdown(visible=False, elem_id="kit-banner"),
        retry_btn=gr.Button(t("app.retry"), visible=False, size="sm", elem_id="kit-retry"),
    )


@dataclass
class Gate:
    """The screen before first use: charter, limits, AI statement, contacts, sources, guide and quiz."""

    col: gr.Column
    head: gr.Markdown
    intro: gr.Markdown
    md: gr.Markdown
    quiz_head: gr.Markdown
    quiz: list[gr.Radio]
    confirm_cb: gr.Checkbox
    btn: gr.Button
    msg: gr.Markdown

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.head: f"## {t('gate.title')}"}


def build_gate(t: Texts, labels: Labels) -> Gate:
    lab = labels.lab
    with gr.Column(visible=False, elem_id="kit-gate") as col:
        head = gr.Markdown(f"## {t('gate.title')}")
        intro = lab(gr.Markdown(t("gate.intro"), elem_classes=["kit-lead"]), value="gate.intro")
        md = gr.Markdown(elem_id="kit-charter")
        with gr.Group(elem_id="kit-quiz"):
            quiz_head = gr.Markdown(visible=False)
            quiz = [gr.Radio(choices=[], visible=False, elem_classes=["kit-question"]) for _ in range(MAX_QUIZ)]
        confirm_cb = lab(gr.Checkbox(label=t("gate.confirm"), value=False, elem_id="kit-confirm"), label="gate.confirm")
        btn = lab(gr.Button(t("gate.submit"), variant="primary", elem_id="kit-ack"), value="gate.submit")
        msg = gr.Markdown(visible=False, elem_id="kit-gate-msg")
    return Gate(col, head, intro, md, quiz_head, quiz, confirm_cb, btn, msg)
