"""The History tab: the conversations kept, open one, delete one or all, export everything the
gateway holds about the user. Handlers in ui.history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.layout import PRIVATE, Labels, States
from ui.tabs.chat import ChatTab
from ui.texts import Texts

if TYPE_CHECKING:
    from ui.history import HistoryHandlers


@dataclass
class HistoryTab:
    tab: gr.Tab
    info: gr.Markdown
    tools: gr.Column
    dd: gr.Dropdown
    open: gr.Button
    delete: gr.Button
    refresh: gr.Button
    confirm: gr.Checkbox
    delete_all: gr.Button
    export_btn: gr.Button
    export_file: gr.HTML
    msg: gr.Markdown
    ask_col: gr.Column
    ask_md: gr.Markdown
    ask_yes: gr.Button
    ask_no: gr.Button

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.tab: gr.Tab(label=t("history.tab"))}


def build(t: Texts, labels: Labels) -> HistoryTab:
    lab = labels.lab
    with gr.Tab(t("history.tab"), id="history", elem_id="kit-tab-history") as tab:
        info = gr.Markdown(elem_id="kit-hist-info")
        with gr.Column(visible=True) as tools:
            dd = lab(gr.Dropdown(choices=[], label=t("history.list"), elem_id="kit-hist-list"), label="history.list")
            with gr.Row():
                open_btn = lab(gr.Button(t("history.open"), variant="primary", size="sm"), value="history.open")
                delete = lab(gr.Button(t("history.delete"), size="sm"), value="history.delete")
                refresh = lab(gr.Button(t("history.refresh"), size="sm"), value="history.refresh")
            with gr.Column(visible=False, elem_id="kit-hist-ask") as ask_col:  # deleting one is asked first
                ask_md = gr.Markdown()
                with gr.Row():
                    ask_no = lab(
                        gr.Button(t("chat.delete_cancel"), variant="primary", size="sm", elem_id="kit-hist-ask-no"),
                        value="chat.delete_cancel",
                    )
                    ask_yes = lab(
                        gr.Button(t("chat.delete_confirm"), variant="stop", size="sm", elem_id="kit-hist-ask-yes"),
                        value="chat.delete_confirm",
                    )
            with gr.Row():
                confirm = lab(
                    gr.Checkbox(label=t("history.delete_all_confirm"), value=False), label="history.delete_all_confirm"
                )
                delete_all = lab(
                    gr.Button(t("history.delete_all"), variant="stop", size="sm"), value="history.delete_all"
                )
        export_btn = lab(gr.Button(t("history.export"), size="sm", elem_id="kit-export"), value="history.export")
        export_file = gr.HTML(visible=False, elem_id="kit-export-file")
        msg = gr.Markdown(visible=False)
    return HistoryTab(
        tab, info, tools, dd, open_btn, delete, refresh, confirm, delete_all, export_btn, export_file, msg, ask_col,
        ask_md, ask_yes, ask_no,
    )


def wire(c: HistoryTab, h: HistoryHandlers, s: States, chat: ChatTab, tabs: gr.Tabs) -> None:
    """Opening a conversation shows it in the chat and selects the Chat tab."""
    hist_out = [c.tools, c.dd, c.msg, s.conv, c.confirm]
    c.tab.select(h.refresh_history, [s.lang], hist_out, **PRIVATE)
    c.refresh.click(h.refresh_history, [s.lang], hist_out, **PRIVATE)
    c.open.click(
        h.open_conversation, [c.dd, s.lang], [s.conv, chat.chatbot, chat.docs_cb, tabs, c.msg, chat.chat_msg], **PRIVATE
    )
    c.delete.click(h.ask_delete, [c.dd, s.lang], [c.ask_col, c.ask_md, c.msg], **PRIVATE)
    c.ask_no.click(h.cancel_delete, None, [c.ask_col], **PRIVATE)
    c.dd.change(h.cancel_delete, None, [c.ask_col], **PRIVATE)  # the question is about the one it names
    c.ask_yes.click(h.delete_conversation, [c.dd, s.conv, s.lang], [*hist_out, c.ask_col], **PRIVATE)
    c.delete_all.click(h.delete_all, [c.confirm, s.conv, s.lang], hist_out, **PRIVATE)
    c.export_btn.click(h.export, [s.lang], [c.export_file, c.msg], **PRIVATE)
