"""The Charter tab: the charter acknowledged at the gate, to read again (rendered by ui.pages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.layout import Labels
from ui.texts import Texts


@dataclass
class CharterTab:
    tab: gr.Tab
    md: gr.Markdown

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.tab: gr.Tab(label=t("charter.tab"))}


def build(t: Texts, labels: Labels) -> CharterTab:
    with gr.Tab(t("charter.tab"), id="charter", elem_id="kit-tab-charter") as tab:
        md = gr.Markdown(elem_id="kit-charter-again")
    return CharterTab(tab, md)
