"""The Admin tab (admins and auditors): usage figures, feedback and reports, the audit log's check, the
latest benchmark, and the switch that closes the chat (admins only). Handlers in ui.admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.layout import PRIVATE, Labels, States
from ui.texts import Texts

if TYPE_CHECKING:
    from ui.admin import AdminHandlers


@dataclass
class AdminTab:
    tab: gr.Tab
    readonly: gr.Markdown
    refresh: gr.Button
    msg: gr.Markdown
    stats_md: gr.Markdown
    verify_btn: gr.Button
    verify_md: gr.Markdown
    bench_btn: gr.Button
    bench_md: gr.Markdown
    bench_file: gr.HTML
    fb_title: gr.Markdown
    fb_none: gr.Markdown
    fb_table: gr.Dataframe
    switch: gr.Column
    switch_title: gr.Markdown
    close_cb: gr.Checkbox
    close_text: gr.Textbox
    switch_btn: gr.Button

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.fb_title: f"## {t('admin.feedback_title')}", self.switch_title: f"## {t('admin.switch_title')}"}


def build(t: Texts, labels: Labels) -> AdminTab:
    lab = labels.lab
    with gr.Tab(t("admin.tab"), id="admin", visible=False, elem_id="kit-tab-admin") as tab:
        readonly = lab(gr.Markdown(t("admin.readonly"), visible=False), value="admin.readonly")
        refresh = lab(gr.Button(t("admin.refresh"), size="sm"), value="admin.refresh")
        msg = gr.Markdown(visible=False)
        stats_md = gr.Markdown(elem_id="kit-stats")
        verify_btn = lab(gr.Button(t("admin.verify"), size="sm", elem_id="kit-verify"), value="admin.verify")
        verify_md = gr.Markdown(elem_id="kit-verify-result")
        bench_btn = lab(gr.Button(t("admin.bench"), size="sm", elem_id="kit-bench"), value="admin.bench")
        bench_md = gr.Markdown(visible=False, elem_id="kit-bench-summary")
        bench_file = gr.HTML(visible=False, elem_id="kit-bench-file")
        fb_title = gr.Markdown(f"## {t('admin.feedback_title')}")
        fb_none = gr.Markdown(visible=False)
        fb_table = gr.Dataframe(visible=False, interactive=False, wrap=True, elem_id="kit-fb-table")
        with gr.Column(visible=False, elem_id="kit-switch") as switch:
            switch_title = gr.Markdown(f"## {t('admin.switch_title')}")
            close_cb = lab(gr.Checkbox(label=t("admin.close_chat"), value=False), label="admin.close_chat")
            close_text = lab(
                gr.Textbox(label=t("admin.close_message"), placeholder=t("admin.close_placeholder")),
                label="admin.close_message",
                placeholder="admin.close_placeholder",
            )
            switch_btn = lab(gr.Button(t("admin.apply"), variant="primary", size="sm"), value="admin.apply")
    return AdminTab(tab, readonly, refresh, msg, stats_md, verify_btn, verify_md, bench_btn, bench_md, bench_file,
                    fb_title, fb_none, fb_table, switch, switch_title, close_cb, close_text, switch_btn)


def wire(c: AdminTab, h: AdminHandlers, s: States) -> None:
    admin_out = [s.admin_cache, c.msg, c.stats_md, c.fb_table, c.fb_none, c.verify_md, c.close_cb, c.close_text]
    c.tab.select(h.refresh_admin, [s.lang, s.admin_cache], admin_out, **PRIVATE)
    c.refresh.click(h.refresh_admin, [s.lang, s.admin_cache], admin_out, **PRIVATE)
    c.verify_btn.click(h.verify, [s.lang, s.admin_cache], admin_out, **PRIVATE)
    c.bench_btn.click(h.bench, [s.lang], [c.bench_md, c.bench_file, c.msg], **PRIVATE)
    c.switch_btn.click(h.switch_chat, [c.close_cb, c.close_text, s.lang, s.admin_cache], admin_out, **PRIVATE)
