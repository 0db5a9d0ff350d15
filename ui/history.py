"""History handlers: list the conversations kept, open one, delete one or all, and export the user's data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.auth import Refusal
from ui.base import Base
from ui.client import ApiError
from ui.views import conversation_from_api, history_choices, render_chat

if TYPE_CHECKING:
    from ui.tabs.history import HistoryTab


class HistoryHandlers(Base):
    c: HistoryTab

    def refresh_history(self, lang: str, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.msg: self.status(self.refusal_text(who, t), "error")}
        try:
            data = self.client.conversations(who)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        if not data.get("enabled"):
            return {c.tools: gr.update(visible=False), c.msg: self.status("")}
        choices = history_choices(data.get("data") or [], t)
        return {
            c.tools: gr.update(visible=True),
            c.dd: gr.update(choices=choices, value=choices[0][1] if choices else None),
            c.msg: self.status("" if choices else t("history.empty"), "info"),
        }

    def open_conversation(self, cid: str | None, lang: str, request: gr.Request) -> dict[Any, Any]:
        c, s, chat, t = self.c, self.page.state, self.page.chat, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal) or not cid:
            return {c.msg: self.status(t("history.pick_first"), "info")}
        try:
            conv = conversation_from_api(self.client.conversation(who, cid))
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        return {
            s.conv: conv,
            chat.chatbot: render_chat(conv, t),
            chat.docs_cb: bool(conv.get("documents")),  # as its last answer was asked
            self.page.tabs: gr.Tabs(selected="chat"),
            c.msg: self.status(""),
            chat.chat_msg: self.status(t("chat.loaded", title=self.esc(conv.get("title") or t("history.untitled")))),
        }

    def ask_delete(self, cid: str | None, lang: str, request: gr.Request) -> dict[Any, Any]:
        """Deleting a conversation is asked first, naming it."""
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal) or not cid:
            return {c.msg: self.status(t("history.pick_first"), "info"), c.ask_col: gr.update(visible=False)}
        try:
            data = self.client.conversations(who).get("data") or []
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        title = next((str(x.get("title") or "") for x in data if str(x.get("id")) == cid), "") or t("history.untitled")
        return {
            c.ask_col: gr.update(visible=True),
            c.ask_md: t("history.delete_ask", title=self.esc(title)),
            c.msg: self.status(""),
        }

    def cancel_delete(self) -> dict[Any, Any]:
        return {self.c.ask_col: gr.update(visible=False)}

    def delete_conversation(
        self, cid: str | None, conv: dict[str, Any] | None, lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        c, s, t = self.c, self.page.state, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal) or not cid:
            return {c.msg: self.status(t("history.pick_first"), "info")}
        try:
            self.client.delete_conversation(who, cid)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        out = self.refresh_history(lang, request)
        out[c.msg] = self.status(t("history.deleted"), "ok")
        out[c.ask_col] = gr.update(visible=False)
        if conv and conv.get("id") == cid:
            out[s.conv] = {**conv, "id": None}
        return out

    def delete_all(
        self, confirmed: bool, conv: dict[str, Any] | None, lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        c, s, t = self.c, self.page.state, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.msg: self.status(self.refusal_text(who, t), "error")}
        if not confirmed:
            return {c.msg: self.status(t("history.delete_all_confirm"), "info")}
        try:
            n = self.client.delete_all(who).get("deleted", 0)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        out = self.refresh_history(lang, request)
        out.update({c.msg: self.status(t("history.deleted_all", n=n), "ok"), c.confirm: False})
        if conv and conv.get("id"):
            out[s.conv] = {**conv, "id": None}
        return out

    def export(self, lang: str, request: gr.Request) -> dict[Any, Any]:
        """The user's data as a JSON file offered to this session only, once (ui.downloads): nothing is
        written to Gradio's cache, whose files any signed-in user holding the link may fetch."""
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.msg: self.status(self.refusal_text(who, t), "error")}
        try:
            data = self.client.export_me(who)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        name = f"kit-export-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json"
        label = t("history.export_link", name=name, minutes=max(1, round(self.downloads.ttl_s / 60)))
        link = self.offer(request, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"), name, label)
        if link is None:
            return {c.msg: self.status(t("auth.no_user"), "error")}
        return {
            c.export_file: gr.update(value=link, visible=True),
            c.msg: self.status(t("history.export_ready"), "ok"),
        }
