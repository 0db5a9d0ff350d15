"""The page's events: which handler runs on which click, with which inputs and outputs.

Every event is private (not part of a public API) and shows no progress overlay; the chat streams
itself and the other actions answer in a status line.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.base import Components
from ui.texts import texts

PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def _unique(items: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def wire(demo: gr.Blocks, c: Components, h: Any) -> None:
    page = _unique(
        [
            *[comp for comp, _ in c.labels],
            c.brand,
            c.who_md,
            c.banner,
            c.retry_btn,
            c.loading,
            c.gate_col,
            c.main_col,
            c.gate_head,
            c.gate_md,
            c.quiz_head,
            *c.quiz,
            c.gate_msg,
            c.report_md,
            c.fb_title,
            c.switch_title,
            c.chatbot,
            c.closed_md,
            c.templates,
            c.notice,
            c.hist_info,
            c.hist_tools,
            c.charter_md,
            c.tab_admin,
            c.admin_switch,
            c.admin_readonly,
            c.charter_state,
            c.model_state,
            c.chat_msg,
            c.pii_md,
            c.pii_send,
            c.fb_md,
            c.stats_md,
            c.fb_table,
            c.fb_none,
            c.verify_md,
            c.tab_chat,
            c.tab_history,
            c.tab_charter,
            c.tab_docs,
            c.docs_list_title,
        ]
    )

    def headings(lang: str) -> dict[Any, Any]:
        t = texts(lang)
        return {
            c.gate_head: f"# {t('gate.title')}",
            c.report_md: f"**{t('report.title')}** — {t('report.intro')}",
            c.fb_title: f"### {t('admin.feedback_title')}",
            c.switch_title: f"### {t('admin.switch_title')}",
            c.tab_chat: gr.Tab(label=t("chat.tab")),
            c.tab_history: gr.Tab(label=t("history.tab")),
            c.tab_charter: gr.Tab(label=t("charter.tab")),
            c.docs_list_title: f"### {t('docs.list_title')}",
        }

    def load(lang: str, conv: Any, request: gr.Request) -> dict[Any, Any]:
        out = h.on_load(lang, conv, request)
        out.update(headings(lang))
        out[c.loading] = gr.update(visible=False)
        return out

    def language(request: gr.Request, lang: str, *rest: Any) -> dict[Any, Any]:
        out = h.on_language(request, lang, *rest)
        out.update(headings(lang))
        out[c.lang_state] = lang
        return out

    def acknowledge(request: gr.Request, lang: str, *rest: Any) -> dict[Any, Any]:
        return {**h.acknowledge(request, lang, *rest), **headings(lang)}

    lang_outputs = _unique([*page, c.lang_state])
    demo.load(load, [c.lang_state, c.conv], page, **PRIVATE)
    c.retry_btn.click(load, [c.lang_state, c.conv], page, **PRIVATE)
    c.lang.change(
        language,
        [c.lang, c.conv, c.charter_state, c.model_state, c.pii_pending, c.fb_state, c.admin_cache, *c.quiz],
        lang_outputs,
        js="(l, ...a) => { document.documentElement.lang = l; return [l, ...a]; }",
        **PRIVATE,
    )

    # gate
    c.gate_btn.click(
        acknowledge, [c.lang_state, c.charter_state, c.confirm_cb, c.conv, c.model_state, *c.quiz], page, **PRIVATE
    )

    # chat
    chat_out = [
        c.chatbot,
        c.conv,
        c.pending,
        c.send_btn,
        c.stop_btn,
        c.another_btn,
        c.chat_msg,
        c.input_box,
        c.closed_md,
    ]
    stream_in = [c.pending, c.conv, c.lang_state, c.model_state, c.docs_cb]
    pre_out = [c.pending, c.pii_pending, c.pii_col, c.pii_md, c.pii_send, c.chat_msg, c.fb_col]
    for trigger in (c.send_btn.click, c.input_box.submit):
        trigger(h.precheck, [c.input_box, c.lang_state], pre_out, **PRIVATE).then(
            h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
        )
    c.pii_send.click(h.confirm_pii, [c.pii_pending], [c.pending, c.pii_pending, c.pii_col], **PRIVATE).then(
        h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
    )
    c.pii_edit.click(h.edit_pii, None, [c.pending, c.pii_pending, c.pii_col], **PRIVATE)
    c.another_btn.click(h.prepare_another, [c.conv, c.lang_state], [c.pending, c.chat_msg], **PRIVATE).then(
        h.stream, stream_in, chat_out, concurrency_limit=None, **PRIVATE
    )
    c.stop_btn.click(h.stop, None, None, queue=False, **PRIVATE)
    new_chat_outputs = [
        c.conv,
        c.chatbot,
        c.pending,
        c.pii_pending,
        c.fb_state,
        c.pii_col,
        c.fb_col,
        c.report_col,
        c.chat_msg,
        c.input_box,
    ]
    c.new_btn.click(h.new_chat, None, new_chat_outputs, **PRIVATE)
    c.chatbot.clear(h.new_chat, None, new_chat_outputs, **PRIVATE)
    c.templates.input(
        h.pick_template, [c.templates, c.charter_state, c.lang_state], [c.input_box, c.templates], **PRIVATE
    )

    # feedback and reports
    c.chatbot.like(h.on_like, [c.conv, c.lang_state], [c.fb_state, c.fb_col, c.fb_comment, c.fb_md], **PRIVATE)
    fb_out = [c.fb_col, c.fb_state, c.fb_comment, c.chat_msg]
    c.fb_send.click(h.send_feedback, [c.fb_state, c.fb_comment, c.conv, c.lang_state], fb_out, **PRIVATE)
    c.fb_skip.click(h.skip_feedback, [c.fb_state, c.conv, c.lang_state], fb_out, **PRIVATE)
    c.fb_close.click(h.close_feedback, None, [c.fb_col, c.fb_state], **PRIVATE)
    c.report_btn.click(h.open_report, None, [c.report_col, c.report_text, c.fb_col], **PRIVATE)
    c.report_close.click(h.close_report, None, [c.report_col], **PRIVATE)
    c.report_send.click(
        h.send_report,
        [c.report_text, c.conv, c.model_state, c.lang_state],
        [c.report_col, c.report_text, c.chat_msg],
        **PRIVATE,
    )

    # history
    hist_out = [c.hist_tools, c.hist_dd, c.hist_msg, c.conv, c.hist_confirm]
    c.tab_history.select(h.refresh_history, [c.lang_state], hist_out, **PRIVATE)
    c.hist_refresh.click(h.refresh_history, [c.lang_state], hist_out, **PRIVATE)
    c.hist_open.click(
        h.open_conversation, [c.hist_dd, c.lang_state], [c.conv, c.chatbot, c.tabs, c.hist_msg, c.chat_msg], **PRIVATE
    )
    c.hist_delete.click(h.delete_conversation, [c.hist_dd, c.conv, c.lang_state], hist_out, **PRIVATE)
    c.hist_delete_all.click(h.delete_all, [c.hist_confirm, c.conv, c.lang_state], hist_out, **PRIVATE)
    c.export_btn.click(h.export, [c.lang_state], [c.export_file, c.hist_msg], **PRIVATE)

    # admin and auditor
    admin_out = [c.admin_cache, c.admin_msg, c.stats_md, c.fb_table, c.fb_none, c.verify_md, c.close_cb, c.close_text]
    c.tab_admin.select(h.refresh_admin, [c.lang_state, c.admin_cache], admin_out, **PRIVATE)
    c.admin_refresh.click(h.refresh_admin, [c.lang_state, c.admin_cache], admin_out, **PRIVATE)
    c.verify_btn.click(h.verify, [c.lang_state, c.admin_cache], admin_out, **PRIVATE)
    c.bench_btn.click(h.bench, [c.lang_state], [c.bench_md, c.bench_file, c.admin_msg], **PRIVATE)
    c.switch_btn.click(h.switch_chat, [c.close_cb, c.close_text, c.lang_state, c.admin_cache], admin_out, **PRIVATE)

    # documents (admins)
    docs_out = [c.docs_table, c.docs_none, c.docs_pick, c.docs_msg]
    c.tab_docs.select(h.refresh_docs, [c.lang_state], docs_out, **PRIVATE)
    c.docs_refresh.click(h.refresh_docs, [c.lang_state], docs_out, **PRIVATE)
    c.docs_ingest.click(
        h.ingest_docs,
        [c.docs_files, c.docs_groups, c.docs_collection, c.lang_state],
        [*docs_out, c.docs_report, c.docs_files],
        **PRIVATE,
    )
    c.docs_remove.click(h.remove_doc, [c.docs_pick, c.lang_state], docs_out, **PRIVATE)
