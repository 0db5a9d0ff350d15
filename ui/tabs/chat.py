"""The Chat tab: the conversation, the personal-data check, feedback and problem reports, the message box
and its actions. Handlers in ui.chat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.layout import PRIVATE, Labels, States
from ui.texts import Texts

if TYPE_CHECKING:
    from ui.attach import AttachHandlers
    from ui.chat import ChatHandlers

FILE_TYPES = [".pdf", ".docx", ".odt", ".txt", ".md", ".html", ".htm", ".png", ".jpg", ".jpeg", ".tif", ".tiff"]


@dataclass
class ChatTab:
    tab: gr.Tab
    closed_md: gr.Markdown
    chatbot: gr.Chatbot
    pii_col: gr.Column
    pii_md: gr.Markdown
    pii_send: gr.Button
    pii_edit: gr.Button
    del_col: gr.Column
    del_md: gr.Markdown
    del_confirm: gr.Button
    del_cancel: gr.Button
    fb_col: gr.Column
    fb_md: gr.Markdown
    fb_comment: gr.Textbox
    fb_send: gr.Button
    fb_skip: gr.Button
    fb_close: gr.Button
    report_col: gr.Column
    report_md: gr.Markdown
    report_text: gr.Textbox
    report_send: gr.Button
    report_close: gr.Button
    chat_msg: gr.Markdown
    input_box: gr.Textbox
    keys_hint: gr.Markdown
    send_btn: gr.Button
    stop_btn: gr.Button
    docs_cb: gr.Checkbox
    templates: gr.Dropdown
    another_btn: gr.Button
    new_btn: gr.Button
    report_btn: gr.Button
    notice: gr.HTML
    attach_btn: gr.UploadButton
    attach_drop: gr.File
    chips: gr.CheckboxGroup
    task_btns: dict[str, gr.Button]
    files_state: gr.State

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.report_md: f"**{t('report.title')}** — {t('report.intro')}", self.tab: gr.Tab(label=t("chat.tab"))}


def _chatbot(t: Texts) -> gr.Chatbot:
    return gr.Chatbot(
        [],
        label=t("chat.label"),
        show_label=False,
        height="42vh",
        min_height=260,
        buttons=["copy"],
        feedback_options=("Like", "Dislike"),
        layout="bubble",
        elem_id="kit-chatbot",
        sanitize_html=True,
        allow_tags=False,
        autoscroll=True,
        placeholder=None,
        group_consecutive_messages=False,
    )


def _panels(t: Texts, lab: Any) -> dict[str, Any]:
    """The personal-data, feedback and report panels above the message box."""
    p: dict[str, Any] = {}
    with gr.Column(visible=False, elem_id="kit-pii") as p["pii_col"]:
        p["pii_md"] = gr.Markdown()
        with gr.Row():  # the safe action is the primary one: edit, or send the masked version (ui.chat)
            p["pii_edit"] = lab(gr.Button(t("pii.edit"), variant="primary", elem_id="kit-pii-edit"), value="pii.edit")
            p["pii_send"] = gr.Button(t("pii.confirm"), variant="secondary", elem_id="kit-pii-send")
    with gr.Column(visible=False, elem_id="kit-delete") as p["del_col"]:
        p["del_md"] = gr.Markdown()
        with gr.Row():
            p["del_cancel"] = lab(
                gr.Button(t("chat.delete_cancel"), variant="primary", size="sm", elem_id="kit-delete-cancel"),
                value="chat.delete_cancel",
            )
            p["del_confirm"] = lab(
                gr.Button(t("chat.delete_confirm"), variant="stop", size="sm", elem_id="kit-delete-confirm"),
                value="chat.delete_confirm",
            )
    with gr.Column(visible=False, elem_id="kit-feedback") as p["fb_col"]:
        p["fb_md"] = gr.Markdown()
        p["fb_comment"] = lab(
            gr.Textbox(label=t("feedback.comment"), lines=2, placeholder=t("feedback.comment_placeholder")),
            label="feedback.comment",
            placeholder="feedback.comment_placeholder",
        )
        with gr.Row():
            p["fb_send"] = lab(gr.Button(t("feedback.send"), variant="primary", size="sm"), value="feedback.send")
            p["fb_skip"] = lab(gr.Button(t("feedback.skip"), size="sm"), value="feedback.skip")
            p["fb_close"] = lab(gr.Button(t("feedback.close"), size="sm"), value="feedback.close")
    with gr.Column(visible=False, elem_id="kit-report") as p["report_col"]:
        p["report_md"] = gr.Markdown(f"**{t('report.title')}** — {t('report.intro')}")
        p["report_text"] = lab(
            gr.Textbox(label=t("report.comment"), lines=3, placeholder=t("feedback.comment_placeholder")),
            label="report.comment",
            placeholder="feedback.comment_placeholder",
        )
        with gr.Row():
            p["report_send"] = lab(gr.Button(t("report.send"), variant="stop", size="sm"), value="report.send")
            p["report_close"] = lab(gr.Button(t("feedback.close"), size="sm"), value="feedback.close")
    return p


def _compose(t: Texts, lab: Any) -> dict[str, Any]:
    """The message box, send and stop, the documents switch and the actions under it."""
    p: dict[str, Any] = {"chat_msg": gr.Markdown(visible=False, elem_id="kit-chat-msg")}
    with gr.Row(elem_id="kit-compose", equal_height=True):
        p["input_box"] = lab(
            gr.Textbox(
                label=t("chat.input_label"),
                show_label=False,
                lines=1,  # one line to start: Enter sends, Shift+Enter adds a line (said under the box); grows to 12
                max_lines=12,
                placeholder=t("chat.input_placeholder"),
                elem_id="kit-input",
                scale=8,
            ),
            label="chat.input_label",
            placeholder="chat.input_placeholder",
        )
        with gr.Column(scale=1, min_width=140):
            p["send_btn"] = lab(gr.Button(t("chat.send"), variant="primary", elem_id="kit-send"), value="chat.send")
            p["stop_btn"] = lab(
                gr.Button(t("chat.stop"), variant="stop", visible=False, elem_id="kit-stop"), value="chat.stop"
            )
    p["keys_hint"] = lab(gr.Markdown(t("chat.keys_hint"), elem_id="kit-keys-hint"), value="chat.keys_hint")
    p["docs_cb"] = lab(
        gr.Checkbox(label=t("docs.switch"), value=False, elem_id="kit-docs-switch", container=False),
        label="docs.switch",
    )
    with gr.Row(elem_id="kit-actions", equal_height=False):
        p["templates"] = lab(
            gr.Dropdown(
                choices=[],
                value=None,
                label=t("chat.templates"),
                elem_id="kit-templates",
                interactive=True,
                scale=3,
                min_width=200,
            ),
            label="chat.templates",
        )
        p["another_btn"] = lab(
            gr.Button(t("chat.another"), size="sm", elem_id="kit-another", scale=0, min_width=120),
            value="chat.another",
        )
        p["new_btn"] = lab(
            gr.Button(t("chat.new"), size="sm", elem_id="kit-new", scale=0, min_width=120), value="chat.new"
        )
        p["report_btn"] = lab(
            gr.Button(t("chat.report"), size="sm", elem_id="kit-report-btn", scale=0, min_width=120),
            value="chat.report",
        )
    p["notice"] = gr.HTML("", elem_id="kit-notice-box")
    return p


def _files(t: Texts, lab: Any) -> dict[str, Any]:
    """Attached files: a button and a drop zone, a chip per file (untick to remove it), the task buttons."""
    p: dict[str, Any] = {"files_state": gr.State([])}
    with gr.Row(elem_id="kit-attach-row", equal_height=True):
        p["attach_btn"] = lab(gr.UploadButton(t("attach.button"), file_count="multiple", file_types=FILE_TYPES,
                                              size="sm", elem_id="kit-attach-btn", scale=0, min_width=160),
                              label="attach.button")
        p["attach_drop"] = lab(gr.File(label=t("attach.drop"), file_count="multiple", file_types=FILE_TYPES,
                                       height=80, elem_id="kit-attach-drop", elem_classes=["kit-upload"], scale=4),
                               label="attach.drop")  # kit-upload: Gradio's own words in the page's language
    p["chips"] = lab(gr.CheckboxGroup(choices=[], value=[], label=t("attach.chips"), visible=False,
                                      elem_id="kit-chips"), label="attach.chips")
    with gr.Row(elem_id="kit-tasks"):
        p["task_btns"] = {kind: lab(gr.Button(t(f"attach.{kind}"), size="sm", elem_id=f"kit-task-{kind}", scale=0,
                                              min_width=120), value=f"attach.{kind}")
                          for kind in ("summarise", "translate_fr", "translate_en", "correct")}
    return p


def build(t: Texts, labels: Labels) -> ChatTab:
    with gr.Tab(t("chat.tab"), id="chat", elem_id="kit-tab-chat") as tab:
        closed_md = gr.Markdown(visible=False, elem_id="kit-closed")
        chatbot = labels.lab(_chatbot(t), label="chat.label")
        panels = _panels(t, labels.lab)
        files = _files(t, labels.lab)
        compose = _compose(t, labels.lab)
    return ChatTab(tab=tab, closed_md=closed_md, chatbot=chatbot, **panels, **compose, **files)


def wire_files(c: ChatTab, h: ChatHandlers, a: AttachHandlers, s: States) -> None:
    """Attaching (button, drop), removing a chip, the task buttons, and a new chat clearing the chips."""
    attach_out = [c.files_state, c.chips, c.chat_msg, c.attach_drop]
    c.attach_btn.upload(a.attach, [c.attach_btn, c.files_state, s.lang], attach_out, **PRIVATE)
    c.attach_drop.upload(a.attach, [c.attach_drop, c.files_state, s.lang], attach_out, **PRIVATE)
    c.chips.input(a.remove, [c.chips, c.files_state, s.lang], [c.files_state, c.chips, c.chat_msg], **PRIVATE)
    chat_out = [c.chatbot, s.conv, s.pending, c.send_btn, c.stop_btn, c.another_btn, c.chat_msg, c.input_box,
                c.closed_md]
    stream_in = [s.pending, s.conv, s.lang, s.model, c.docs_cb, c.files_state]
    for kind, button in c.task_btns.items():
        button.click(lambda files, lang, k=kind: a.task(k, files, lang), [c.files_state, s.lang],
                     [s.pending, c.chat_msg], **PRIVATE).then(h.stream, stream_in, chat_out, concurrency_limit=None,
                                                              **PRIVATE)
    for clearing in (c.new_btn.click, c.chatbot.clear):
        clearing(a.clear, [c.files_state, s.conv], [c.files_state, c.chips], **PRIVATE)


def wire(c: ChatTab, h: ChatHandlers, s: States) -> None:
    """Sending (after the personal-data check), stop, another answer, new chat, templates, feedback, reports."""
    chat_out = [c.chatbot, s.conv, s.pending, c.send_btn, c.stop_btn, c.another_btn, c.chat_msg, c.input_box,
                c.closed_md]
    stream_in = [s.pending, s.conv, s.lang, s.model, c.docs_cb, c.files_state]
    pre_out = [s.pending, s.pii_pending, c.pii_col, c.pii_md, c.pii_send, c.pii_edit, c.chat_msg, c.fb_col]
    for trigger in (c.send_btn.click, c.input_box.submit):
        trigger(h.precheck, [c.input_box, s.lang], pre_out, **PRIVATE).then(
            h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
        )
    c.pii_send.click(h.confirm_pii, [s.pii_pending], [s.pending, s.pii_pending, c.pii_col], **PRIVATE).then(
        h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
    )
    c.pii_edit.click(h.edit_pii, None, [s.pending, s.pii_pending, c.pii_col], **PRIVATE)
    c.another_btn.click(h.prepare_another, [s.conv, s.lang], [s.pending, c.chat_msg], **PRIVATE).then(
        h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
    )
    c.stop_btn.click(h.stop, None, None, queue=False, **PRIVATE)
    new_chat_outputs = [s.conv, c.chatbot, s.pending, s.pii_pending, s.feedback, c.pii_col, c.fb_col, c.report_col,
                        c.chat_msg, c.input_box]
    c.new_btn.click(h.new_chat, None, new_chat_outputs, **PRIVATE)
    # the chatbot's trash icon: the conversation comes back on screen and its deletion is asked first
    del_out = [c.chatbot, c.del_col, c.del_md, c.chat_msg, *new_chat_outputs]
    c.chatbot.clear(h.ask_delete, [s.conv, s.lang], _unique_list(del_out), **PRIVATE)
    c.del_cancel.click(h.cancel_delete, None, [c.del_col], **PRIVATE)
    c.del_confirm.click(h.confirm_delete, [s.conv, s.lang], _unique_list([c.del_col, *new_chat_outputs]), **PRIVATE)
    c.templates.input(h.pick_template, [c.templates, s.charter, s.lang], [c.input_box, c.templates], **PRIVATE)

    # feedback and reports
    c.chatbot.like(h.on_like, [s.conv, s.lang], [s.feedback, c.fb_col, c.fb_comment, c.fb_md], **PRIVATE)
    fb_out = [c.fb_col, s.feedback, c.fb_comment, c.chat_msg]
    c.fb_send.click(h.send_feedback, [s.feedback, c.fb_comment, s.conv, s.lang], fb_out, **PRIVATE)
    c.fb_skip.click(h.skip_feedback, [s.feedback, s.conv, s.lang], fb_out, **PRIVATE)
    c.fb_close.click(h.close_feedback, None, [c.fb_col, s.feedback], **PRIVATE)
    c.report_btn.click(h.open_report, None, [c.report_col, c.report_text, c.fb_col], **PRIVATE)
    c.report_close.click(h.close_report, None, [c.report_col], **PRIVATE)
    c.report_send.click(
        h.send_report, [c.report_text, s.conv, s.model, s.lang], [c.report_col, c.report_text, c.chat_msg], **PRIVATE
    )


def _unique_list(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if all(item is not seen for seen in out):
            out.append(item)
    return out
