"""The administrators' Documents tab: upload files with their groups, read the ingest report
(personal-data findings included), list what is indexed and remove a document. Everything goes
through the gateway's document endpoints, which refuse these actions to other roles whatever the
page shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.base import Base
from ui.client import ApiError, Who
from ui.texts import Texts
from ui.views import category

if TYPE_CHECKING:
    from ui.tabs.documents import DocumentsTab

ACCEPTED = [".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".odt"]
PUBLIC = "public"  # the gateway's group of documents every member of staff may read
_SPLIT = re.compile(r"[,;\s]+")


def parse_groups(text: str | None) -> list[str]:
    """Groups typed as "rh, finances" (commas, semicolons or spaces); none: every member of staff."""
    return [g for g in _SPLIT.split(text or "") if g]


def _names(items: list[Any]) -> str:
    return ", ".join(str(i) for i in items)


def _issues(items: list[dict[str, Any]], t: Texts) -> str:
    """Each file not indexed, by its name (never a path), and why, in the page's language."""
    return "; ".join(
        t(
            "docs.issue",
            name=Path(str(i.get("source") or "?")).name,
            reason=t.get_optional(f"docs.reasons.{i.get('reason')}") or t("docs.reasons.unreadable"),
        )
        for i in items
    )


def report_markdown(report: dict[str, Any], t: Texts) -> str:
    """The ingest report: what was indexed, left unchanged, refused or unreadable, and personal data found."""
    lines = [
        t(
            "docs.report_title",
            seconds=f"{float(report.get('seconds') or 0):.1f}",
            files=report.get("files", 0),
            chunks=report.get("chunks", 0),
        )
    ]
    if report.get("ingested"):
        lines.append("- " + t("docs.report_ingested", names=_names(report["ingested"])))
    if report.get("skipped"):
        lines.append("- " + t("docs.report_skipped", names=_names(report["skipped"])))
    if report.get("refused"):
        lines.append("- ⚠ " + t("docs.report_refused", items=_issues(report["refused"], t)))
    if report.get("failed"):
        lines.append("- ✖ " + t("docs.report_failed", items=_issues(report["failed"], t)))
    if report.get("ignored"):
        lines.append("- " + t("docs.report_ignored", names=_names(report["ignored"])))
    found = report.get("pii") or {}
    if found:
        per_file = [
            f"{name} : " + ", ".join(f"{category(k, t)} ×{n}" for k, n in sorted(counts.items()))
            for name, counts in sorted(found.items())
        ]
        lines.append("- " + t("docs.report_pii", items="; ".join(per_file)))
    else:
        lines.append("- " + t("docs.report_no_pii"))
    return "\n".join(lines)


def documents_table(data: list[dict[str, Any]], t: Texts) -> tuple[list[str], list[list[Any]]]:
    head = [
        t("docs.col_source"),
        t("docs.col_groups"),
        t("docs.col_collection"),
        t("docs.col_chunks"),
        t("docs.col_pii"),
        t("docs.col_time"),
    ]
    rows = []
    for d in data:
        pii = ", ".join(f"{category(k, t)} ×{n}" for k, n in sorted((d.get("pii") or {}).items()))
        rows.append(
            [
                d.get("source", ""),
                ", ".join(t("docs.public") if g == PUBLIC else g for g in d.get("groups") or []) or t("docs.public"),
                d.get("collection", ""),
                d.get("chunks", 0),
                pii or t("admin.none"),
                str(d.get("ingested_at") or "")[:16].replace("T", " "),
            ]
        )
    return head, rows


class DocumentHandlers(Base):
    c: DocumentsTab

    def docs_listing(self, who: Who, t: Texts) -> dict[Any, Any]:
        c = self.c
        data = self.client.documents(who).get("data") or []
        head, rows = documents_table(data, t)
        choices = [(f"{d.get('source')} · {d.get('collection')}", str(d.get("id"))) for d in data]
        return {
            c.table: gr.update(
                value={"headers": head, "data": rows} if rows else None, headers=head, visible=bool(rows)
            ),
            c.none: gr.update(visible=not rows, value=t("docs.none")),
            c.pick: gr.update(choices=choices, value=None),
        }

    def refresh_docs(self, lang: str, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        try:
            return {**self.docs_listing(who, t), c.msg: self.status("")}
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}

    def ingest_docs(
        self, files: list[str] | None, groups: str, collection: str, lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        paths = [Path(f) for f in files or [] if f]
        if not paths:
            return {c.msg: self.status(t("docs.no_files"), "info")}
        try:
            report = self.client.upload_documents(
                who, [(p.name, p) for p in paths], parse_groups(groups), (collection or "").strip() or None
            )
            out = self.docs_listing(who, t)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        issues = len(report.get("failed") or []) + len(report.get("refused") or [])
        return {
            **out,
            c.report: gr.update(value=report_markdown(report, t), visible=True),
            c.files: None,
            c.msg: (
                self.status(t("docs.done_issues", n=issues), "error") if issues else self.status(t("docs.done"), "ok")
            ),
        }

    def ask_remove(self, doc_id: str | None, lang: str, request: gr.Request) -> dict[Any, Any]:
        """Removal is asked first, naming the document."""
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        if not doc_id:
            return {c.msg: self.status(t("docs.pick_first"), "info"), c.confirm_col: gr.update(visible=False)}
        try:
            data = self.client.documents(who).get("data") or []
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        name = next((str(d.get("source")) for d in data if str(d.get("id")) == doc_id), doc_id)
        return {
            c.confirm_col: gr.update(visible=True),
            c.confirm_md: t("docs.remove_ask", name=self.esc(name)),
            c.msg: self.status(""),
        }

    def cancel_remove(self) -> dict[Any, Any]:
        return {self.c.confirm_col: gr.update(visible=False)}

    def remove_doc(self, doc_id: str | None, lang: str, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        if not doc_id:
            return {c.msg: self.status(t("docs.pick_first"), "info"), c.confirm_col: gr.update(visible=False)}
        try:
            removed = self.client.remove_document(who, doc_id).get("removed") or []
            out = self.docs_listing(who, t)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        return {
            **out,
            c.msg: self.status(t("docs.removed", n=len(removed)), "ok"),
            c.confirm_col: gr.update(visible=False),
        }
