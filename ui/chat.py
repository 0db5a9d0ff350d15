"""Chat handlers: personal-data check before sending, streaming with stop, another answer,
prompt templates, thumbs up/down with a comment, and problem reports."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.auth import Refusal
from ui.base import Base
from ui.client import ApiError, Who
from ui.texts import Texts
from ui.views import api_messages, conversation_title, locate, new_conversation, pick, pii_panel, render_chat

if TYPE_CHECKING:
    from ui.tabs.chat import ChatTab

STREAM_EVERY_S = 0.08


def pii_buttons(c: ChatTab, state: str, t: Texts) -> dict[Any, Any]:
    """The safe choice is the primary button: send the masked version when the policy masks, else edit the
    message; "send anyway" is the secondary one."""
    masked = state == "masked"
    return {
        c.pii_send: gr.update(
            visible=state != "blocked",
            value=t("pii.confirm_masked" if masked else "pii.confirm"),
            variant="primary" if masked else "secondary",
        ),
        c.pii_edit: gr.update(value=t("pii.edit"), variant="secondary" if masked else "primary"),
    }


class ChatHandlers(Base):
    c: ChatTab

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stops: dict[str, bool] = {}
        self.running: set[str] = set()

    # --- before sending -------------------------------------------------------------------------

    def precheck(self, text: str, lang: str, request: gr.Request) -> dict[Any, Any]:
        """Scan the message; send at once when clean, else show what was found and the action."""
        c, s, t = self.c, self.page.state, self.t(lang)
        out: dict[Any, Any] = {
            s.pending: None,
            s.pii_pending: None,
            c.pii_col: gr.update(visible=False),
            c.fb_col: gr.update(visible=False),
        }
        who = self.who(request)
        if isinstance(who, Refusal):
            out[c.chat_msg] = self.status(self.refusal_text(who, t), "error")
            return out
        if not (text or "").strip():
            out[c.chat_msg] = self.status(t("chat.empty"), "info")
            return out
        if request.session_hash in self.running:
            out[c.chat_msg] = self.status(t("chat.busy_sending"), "info")
            return out
        try:
            scan = self.client.scan(who, text)
        except ApiError as err:
            out[c.chat_msg] = self.status(self.error(err, t), "error")
            return out
        markdown, state = pii_panel(scan, t)
        title = conversation_title(text, scan)
        item = {"kind": "new", "text": text, "title": title}
        out[c.chat_msg] = self.status("")
        if state == "clean":
            out[s.pending] = item
            return out
        out[s.pii_pending] = {**item, "scan": scan}
        out[c.pii_col] = gr.update(visible=True)
        out[c.pii_md] = markdown
        out.update(pii_buttons(c, state, t))
        return out

    def confirm_pii(self, item: dict[str, Any] | None) -> dict[Any, Any]:
        c, s = self.c, self.page.state
        scan = (item or {}).get("scan") or {}
        if not item or scan.get("blocked"):
            return {s.pending: None}
        return {
            s.pending: {k: v for k, v in item.items() if k != "scan"},
            s.pii_pending: None,
            c.pii_col: gr.update(visible=False),
        }

    def edit_pii(self) -> dict[Any, Any]:
        c, s = self.c, self.page.state
        return {s.pending: None, s.pii_pending: None, c.pii_col: gr.update(visible=False)}

    def prepare_another(self, conv: dict[str, Any], lang: str) -> dict[Any, Any]:
        c, s, t = self.c, self.page.state, self.t(lang)
        turns = (conv or {}).get("turns") or []
        if not turns or not turns[-1].get("user"):
            return {s.pending: None, c.chat_msg: self.status(t("chat.nothing_to_redo"), "info")}
        return {s.pending: {"kind": "another"}, c.chat_msg: self.status("")}

    # --- streaming ------------------------------------------------------------------------------

    def stop(self, request: gr.Request) -> None:
        if request.session_hash:
            self.stops[request.session_hash] = True

    def _controls(self, running: bool) -> dict[Any, Any]:
        c = self.c
        return {
            c.send_btn: gr.update(visible=not running),
            c.stop_btn: gr.update(visible=running),
            c.another_btn: gr.update(interactive=not running),
        }

    def _open_turn(
        self, who: Who, pending: dict[str, Any], conv: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str | None]:
        """A copy of the conversation with the new turn (and, kept conversations, its id at the gateway)."""
        conv = conv or new_conversation()
        conv = {**conv, "turns": [dict(turn, answers=list(turn.get("answers") or [])) for turn in conv["turns"]]}
        if pending.get("kind") == "another":
            return conv, None
        if conv.get("id") is None and self.settings.policy.conversation_retention_days > 0:
            try:
                created = self.client.new_conversation(who, pending.get("title") or "")
                if created.get("stored"):
                    conv["id"] = created.get("id")
                    conv["title"] = str(created.get("title", pending.get("title") or ""))  # as stored: policed
            except ApiError:
                pass  # the answer matters more than the history; sending goes on unstored
        conv["turns"].append({"user": pending["text"], "answers": []})
        return conv, conv.get("id")

    @staticmethod
    def _apply(answer: dict[str, Any], kind: str, value: Any, t: Texts) -> None:
        """One event of the gateway's stream into the answer being shown."""
        if kind == "meta":
            answer["model"] = value.get("model") or answer["model"]
            answer["answer_id"] = value.get("answer_id")
            found = value.get("personal_data") or {}
            answer["masked"] = list(found.get("masked") or [])
            answer["withheld"] = list((found.get("sources") or {}).get("withheld") or [])
            if "sources" in value:  # a chat with documents: its sources ([] when none was found)
                answer["sources"] = list(value.get("sources") or [])
            if value.get("attachments"):  # attached files: the pages used, shown under the answer
                answer["attachments"] = list(value["attachments"])
        elif kind == "progress":  # long work on a file, section by section
            answer["progress"] = value
        elif kind == "delta":
            answer["text"] += value
        elif kind == "error":
            answer["error"] = t("errors.generation")
        elif kind == "stopped":
            answer["stopped"] = True
        elif kind == "done":
            answer["finish"] = value

    def _failed(
        self, err: ApiError, conv: dict[str, Any], answer: dict[str, Any], pending: dict[str, Any], t: Texts
    ) -> dict[Any, Any]:
        """The page after a failed answer: the answer gone, the text given back, the reason said once."""
        c, s = self.c, self.page.state
        another = pending.get("kind") == "another"
        turn = conv["turns"][-1]
        turn["answers"].remove(answer)
        if not turn["answers"] and not another:
            conv["turns"].pop()
        out: dict[Any, Any] = {
            c.chatbot: render_chat(conv, t),
            s.conv: conv,
            c.chat_msg: self.status(self.error(err, t), "error"),
            **self._controls(False),
        }
        if not another:
            out[c.input_box] = pending["text"]  # give the text back so nothing typed is lost
        if err.kind == "closed":  # the banner says it, and why Send is off; no second message
            out[c.closed_md] = gr.update(visible=True, value=t("chat.closed", message=self.esc(err.message)))
            out[c.chat_msg] = self.status("")
            out[c.send_btn] = gr.update(visible=True, interactive=False)
        return out

    def stream(
        self,
        pending: dict[str, Any] | None,
        conv: dict[str, Any] | None,
        lang: str,
        model: str,
        documents: bool,
        files: list[dict[str, Any]] | None,
        request: gr.Request,
    ) -> Iterator[dict[Any, Any]]:
        c, s, t = self.c, self.page.state, self.t(lang)
        if not pending:
            yield {s.pending: None}  # nothing to send (the check found something to confirm first)
            return
        who = self.who(request)
        if isinstance(who, Refusal):
            yield {s.pending: None, c.chat_msg: self.status(self.refusal_text(who, t), "error")}
            return
        session = request.session_hash or ""
        another = pending.get("kind") == "another"
        conv, cid = self._open_turn(who, pending, conv)
        answer: dict[str, Any] = {"text": "", "model": model or "?", "finish": None}
        conv["turns"][-1]["answers"].append(answer)
        messages = api_messages(conv, self.settings.policy.system_prompt.get(t.lang))
        self.stops[session] = False
        self.running.add(session)
        first: dict[Any, Any] = {
            s.pending: None,
            s.conv: conv,
            c.chatbot: render_chat(conv, t),
            c.chat_msg: self.status(""),
            **self._controls(True),
        }
        if not another:
            first[c.input_box] = ""
        yield first
        last = time.monotonic()
        try:
            kwargs: dict[str, Any] = {
                "max_tokens": self.max_tokens,
                "conversation_id": cid,
                "should_stop": lambda: self.stops.get(session, False),
                "documents": bool(documents),
                "files": [f["id"] for f in files or []],
                "task": pending.get("task"),
            }
            if another:
                kwargs.update(temperature=0.9, seed=random.randint(0, 2**31))
            for kind, value in self.client.chat_stream(who, messages, **kwargs):
                self._apply(answer, kind, value, t)
                if kind == "meta" and value.get("sent_to_model") and not another:  # show what was sent: masked
                    conv["turns"][-1]["user"] = str(value["sent_to_model"][0])
                if time.monotonic() - last >= STREAM_EVERY_S or kind in ("meta", "progress", "stopped", "done"):
                    last = time.monotonic()
                    yield {c.chatbot: render_chat(conv, t), s.conv: conv}
            yield {c.chatbot: render_chat(conv, t), s.conv: conv, **self._controls(False)}
        except ApiError as err:
            yield self._failed(err, conv, answer, pending, t)
        finally:
            self.running.discard(session)
            self.stops.pop(session, None)

    def new_chat(self) -> dict[Any, Any]:
        c, s = self.c, self.page.state
        conv = new_conversation()
        return {
            s.conv: conv,
            c.chatbot: [],
            s.pending: None,
            s.pii_pending: None,
            s.feedback: None,
            c.pii_col: gr.update(visible=False),
            c.fb_col: gr.update(visible=False),
            c.report_col: gr.update(visible=False),
            c.chat_msg: self.status(""),
            c.input_box: "",
        }

    # --- deleting the conversation (the chatbot's trash icon) ------------------------------------

    def ask_delete(self, conv: dict[str, Any] | None, lang: str) -> dict[Any, Any]:
        """The trash icon has just emptied the screen: a kept conversation comes back and its deletion from the
        history is asked; one that is not kept is only cleared, and the page says so."""
        c, t = self.c, self.t(lang)
        conv = conv or new_conversation()
        if not conv.get("id"):
            out = self.new_chat()
            if conv.get("turns"):
                out[c.chat_msg] = self.status(t("chat.cleared_unkept"), "info")
            return out
        title = self.esc(conv.get("title") or t("history.untitled"))
        return {
            c.chatbot: render_chat(conv, t),
            c.del_col: gr.update(visible=True),
            c.del_md: t("chat.delete_ask", title=title),
            c.chat_msg: self.status(""),
        }

    def cancel_delete(self) -> dict[Any, Any]:
        return {self.c.del_col: gr.update(visible=False)}

    def confirm_delete(self, conv: dict[str, Any] | None, lang: str, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.chat_msg: self.status(self.refusal_text(who, t), "error")}
        cid = (conv or {}).get("id")
        if cid:
            try:
                self.client.delete_conversation(who, str(cid))
            except ApiError as err:
                return {c.chat_msg: self.status(self.error(err, t), "error")}
        out = self.new_chat()
        out[c.del_col] = gr.update(visible=False)
        out[c.chat_msg] = self.status(t("chat.deleted"), "ok")
        return out

    # --- templates ------------------------------------------------------------------------------

    def pick_template(self, index: int | None, charter: dict[str, Any] | None, lang: str) -> dict[Any, Any]:
        c = self.c
        templates = (charter or {}).get("prompt_templates") or []
        if index is None or not isinstance(index, int) or not 0 <= index < len(templates):
            return {c.input_box: gr.update()}
        return {c.input_box: pick(templates[index].get("text"), self.t(lang).lang), c.templates: None}

    # --- feedback and reports -------------------------------------------------------------------

    def on_like(self, conv: dict[str, Any], lang: str, data: gr.LikeData) -> dict[Any, Any]:
        c, s, t = self.c, self.page.state, self.t(lang)
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        where = locate(conv or {}, int(index))
        if where is None or data.liked in ("", None):
            return {c.fb_col: gr.update(visible=False), s.feedback: None}
        rating = 1 if data.liked is True or data.liked == "Like" else -1
        return {
            s.feedback: {"turn": where[0], "answer": where[1], "rating": rating},
            c.fb_col: gr.update(visible=True),
            c.fb_comment: "",
            c.fb_md: f"**{t('feedback.up_title' if rating > 0 else 'feedback.down_title')}**",
        }

    def send_feedback(
        self, fb: dict[str, Any] | None, comment: str, conv: dict[str, Any], lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        c, s, t = self.c, self.page.state, self.t(lang)
        who = self.who(request)
        if not fb or isinstance(who, Refusal):
            return {c.fb_col: gr.update(visible=False), s.feedback: None}
        answer: dict[str, Any] = {}
        try:
            answer = conv["turns"][fb["turn"]]["answers"][fb["answer"]]
        except (KeyError, IndexError, TypeError):
            pass
        try:
            self.client.feedback(
                who,
                "feedback",
                fb["rating"],
                (comment or "").strip(),
                (conv or {}).get("id"),
                answer.get("model"),
                answer.get("answer_id"),
            )
        except ApiError as err:
            return {c.chat_msg: self.status(self.error(err, t), "error")}
        return {
            c.fb_col: gr.update(visible=False),
            s.feedback: None,
            c.fb_comment: "",
            c.chat_msg: self.status(t("feedback.thanks"), "ok"),
        }

    def skip_feedback(
        self, fb: dict[str, Any] | None, conv: dict[str, Any], lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        return self.send_feedback(fb, "", conv, lang, request)

    def close_feedback(self) -> dict[Any, Any]:
        return {self.c.fb_col: gr.update(visible=False), self.page.state.feedback: None}

    def open_report(self) -> dict[Any, Any]:
        c = self.c
        return {c.report_col: gr.update(visible=True), c.report_text: "", c.fb_col: gr.update(visible=False)}

    def close_report(self) -> dict[Any, Any]:
        return {self.c.report_col: gr.update(visible=False)}

    def send_report(
        self, comment: str, conv: dict[str, Any], model: str, lang: str, request: gr.Request
    ) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.chat_msg: self.status(self.refusal_text(who, t), "error")}
        if not (comment or "").strip():
            return {c.chat_msg: self.status(t("report.empty"), "info")}
        answers = [a for turn in (conv or {}).get("turns") or [] for a in turn.get("answers") or []]
        last = answers[-1].get("answer_id") if answers else None  # the report is about the answer last shown
        try:
            sent = self.client.feedback(
                who, "report", None, comment.strip(), (conv or {}).get("id"), model or None, last
            )
        except ApiError as err:
            return {c.chat_msg: self.status(self.error(err, t), "error")}
        return {
            c.report_col: gr.update(visible=False),
            c.report_text: "",
            c.chat_msg: self.status(t("report.sent", id=sent.get("id", "?")), "ok"),
        }
