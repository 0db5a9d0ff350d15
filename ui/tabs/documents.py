"""The Documents tab (admins): upload files with their groups, read the ingest report, list what is
indexed and remove a document. Handlers in ui.documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.documents import ACCEPTED
from ui.layout import PRIVATE, Labels, States
from ui.texts import Texts

if TYPE_CHECKING:
    from ui.documents import DocumentHandlers


@dataclass
class DocumentsTab:
    tab: gr.Tab
    intro: gr.Markdown
    files: gr.File
    groups: gr.Textbox
    collection: gr.Textbox
    ingest: gr.Button
    msg: gr.Markdown
    report: gr.Markdown
    list_title: gr.Markdown
    none: gr.Markdown
    table: gr.Dataframe
    pick: gr.Dropdown
    remove: gr.Button
    refresh: gr.Button
    confirm_col: gr.Column
    confirm_md: gr.Markdown
    confirm_yes: gr.Button
    confirm_no: gr.Button

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {self.list_title: f"## {t('docs.list_title')}"}


def build(t: Texts, labels: Labels) -> DocumentsTab:
    lab = labels.lab
    with gr.Tab(t("docs.tab"), id="documents", visible=False, elem_id="kit-tab-docs") as tab:
        intro = lab(gr.Markdown(t("docs.intro")), value="docs.intro")
        files = lab(
            gr.File(
                label=t("docs.files"),
                file_count="multiple",
                file_types=ACCEPTED,
                type="filepath",
                elem_id="kit-docs-files",
                elem_classes=["kit-upload"],
            ),
            label="docs.files",
        )
        with gr.Row():
            groups = lab(
                gr.Textbox(label=t("docs.groups"), placeholder=t("docs.groups_placeholder"), scale=3),
                label="docs.groups",
                placeholder="docs.groups_placeholder",
            )
            collection = lab(
                gr.Textbox(label=t("docs.collection"), placeholder="default", scale=1), label="docs.collection"
            )
        ingest = lab(gr.Button(t("docs.ingest"), variant="primary", elem_id="kit-docs-ingest"), value="docs.ingest")
        msg = gr.Markdown(visible=False, elem_id="kit-docs-msg")
        report = gr.Markdown(visible=False, elem_id="kit-docs-report")
        list_title = gr.Markdown(f"## {t('docs.list_title')}")
        none = gr.Markdown(visible=False)
        table = gr.Dataframe(visible=False, interactive=False, wrap=True, elem_id="kit-docs-table")
        with gr.Row(equal_height=True):
            pick = lab(
                gr.Dropdown(choices=[], value=None, label=t("docs.remove_pick"), scale=3, elem_id="kit-docs-pick"),
                label="docs.remove_pick",
            )
            remove = lab(
                gr.Button(t("docs.remove"), variant="stop", size="sm", scale=1, elem_id="kit-docs-remove"),
                value="docs.remove",
            )
            refresh = lab(gr.Button(t("admin.refresh"), size="sm", scale=1), value="admin.refresh")
        with gr.Column(visible=False, elem_id="kit-docs-confirm") as confirm_col:
            confirm_md = gr.Markdown()
            with gr.Row():
                confirm_no = lab(
                    gr.Button(t("docs.remove_cancel"), variant="primary", size="sm", elem_id="kit-docs-remove-no"),
                    value="docs.remove_cancel",
                )
                confirm_yes = lab(
                    gr.Button(t("docs.remove_confirm"), variant="stop", size="sm", elem_id="kit-docs-remove-yes"),
                    value="docs.remove_confirm",
                )
    return DocumentsTab(tab, intro, files, groups, collection, ingest, msg, report, list_title, none, table, pick,
                        remove, refresh, confirm_col, confirm_md, confirm_yes, confirm_no)


def wire(c: DocumentsTab, h: DocumentHandlers, s: States) -> None:
    docs_out = [c.table, c.none, c.pick, c.msg]
    c.tab.select(h.refresh_docs, [s.lang], docs_out, **PRIVATE)
    c.refresh.click(h.refresh_docs, [s.lang], docs_out, **PRIVATE)
    c.ingest.click(h.ingest_docs, [c.files, c.groups, c.collection, s.lang], [*docs_out, c.report, c.files], **PRIVATE)
    c.remove.click(h.ask_remove, [c.pick, s.lang], [c.confirm_col, c.confirm_md, c.msg], **PRIVATE)
    c.confirm_no.click(h.cancel_remove, None, [c.confirm_col], **PRIVATE)
    c.confirm_yes.click(h.remove_doc, [c.pick, s.lang], [*docs_out, c.confirm_col], **PRIVATE)
    c.pick.change(h.cancel_remove, None, [c.confirm_col], **PRIVATE)  # a confirmation is for the document it names
