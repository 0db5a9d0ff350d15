"""Attached files in the chat: sending them to the gateway (button or drag-and-drop), a chip per file with its
name, its pages and the personal data found in it before any message is sent, removing a chip (the file is
deleted at the gateway), and the task buttons (summarise, translate, correct) that work on them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.auth import Refusal
from ui.base import Base
from ui.client import ApiError
from ui.views import category

if TYPE_CHECKING:
    from ui.tabs.chat import ChatTab
    from ui.texts import Texts

TASKS = {"summarise": ("summarise", None), "translate_fr": ("translate", "fr"), "translate_en": ("translate", "en"),
         "correct": ("correct", None)}


def chip_label(item: dict[str, Any], t: Texts) -> str:
    """One chip: the file's name, its pages (and how many were read by OCR), the personal data found in it."""
    label = t("attach.chip", name=item["filename"], pages=item["pages"])
    if item.get("ocr_pages"):
        label += t("attach.chip_ocr", n=item["ocr_pages"])
    if item.get("categories"):
        label += t("attach.chip_pii", categories=", ".join(category(c, t) for c in item["categories"]))
    return label


def chips(files: list[dict[str, Any]], t: Texts) -> dict[str, Any]:
    """The chips' update: one ticked choice per attached file (untick to remove it)."""
    return gr.update(choices=[(chip_label(f, t), f["id"]) for f in files], value=[f["id"] for f in files],
                     visible=bool(files))


class AttachHandlers(Base):
    c: ChatTab

    def attach(self, paths: list[Any] | None, files: list[dict[str, Any]] | None, lang: str,
               request: gr.Request) -> dict[Any, Any]:
        """Send each dropped or chosen file to the gateway; a chip for each one kept, the reason for each refused."""
        c, t = self.c, self.t(lang)
        files = list(files or [])
        out: dict[Any, Any] = {c.attach_drop: None}
        who = self.who(request)
        if isinstance(who, Refusal):
            out[c.chat_msg] = self.status(self.refusal_text(who, t), "error")
            return out
        errors = []
        for entry in paths or []:
            path = Path(str(getattr(entry, "name", entry)))
            name = Path(str(getattr(entry, "orig_name", None) or path.name)).name
            try:
                info = self.client.upload_file(who, name, path)
            except ApiError as err:
                errors.append(self.error(err, t))
                continue
            kit = info.get("kit") or {}
            files.append({"id": info["id"], "filename": info.get("filename") or name, "pages": kit.get("pages", 0),
                          "ocr_pages": kit.get("ocr_pages", 0),
                          "categories": list((kit.get("personal_data") or {}).get("categories") or [])})
        out[c.files_state] = files
        out[c.chips] = chips(files, t)
        out[c.chat_msg] = self.status("\n\n".join(errors), "error") if errors else self.status(
            t("attach.added") if files else "")
        return out

    def remove(self, kept: list[str] | None, files: list[dict[str, Any]] | None, lang: str,
               request: gr.Request) -> dict[Any, Any]:
        """An unticked chip: its file is deleted at the gateway and leaves the conversation."""
        c, t = self.c, self.t(lang)
        files = list(files or [])
        keep = set(kept or [])
        gone = [f for f in files if f["id"] not in keep]
        if not gone:
            return {c.files_state: files}
        who = self.who(request)
        if not isinstance(who, Refusal):
            for f in gone:
                try:
                    self.client.delete_file(who, f["id"])
                except ApiError:
                    pass  # already gone (expired, or deleted with its conversation)
        files = [f for f in files if f["id"] in keep]
        return {c.files_state: files, c.chips: chips(files, t), c.chat_msg: self.status(t("attach.removed"), "info")}

    def task(self, kind: str, files: list[dict[str, Any]] | None, lang: str) -> dict[Any, Any]:
        """The message of a task button (summarise, translate, correct) on the attached files."""
        c, s, t = self.c, self.page.state, self.t(lang)
        if not files:
            return {s.pending: None, c.chat_msg: self.status(t("attach.no_file"), "info")}
        task, target = TASKS[kind]
        text = t(f"attach.ask_{kind}", names=", ".join(f["filename"] for f in files))
        body = {"task": task, **({"target_language": target} if target else {})}
        return {s.pending: {"kind": "new", "text": text, "title": text[:80], "task": body},
                c.chat_msg: self.status("")}

    def clear(self, files: list[dict[str, Any]] | None, conv: dict[str, Any] | None,
              request: gr.Request) -> dict[Any, Any]:
        """A new chat: the chips go; files of a conversation that was not kept are deleted now (a kept one's go
        with it, when it is deleted from the history or expires)."""
        c = self.c
        who = self.who(request)
        if files and not (conv or {}).get("id") and not isinstance(who, Refusal):
            for f in files:
                try:
                    self.client.delete_file(who, f["id"])
                except ApiError:
                    pass
        return {c.files_state: [], c.chips: gr.update(choices=[], value=[], visible=False)}
