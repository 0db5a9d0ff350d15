"""Page handlers: first load (who, which screen), the acknowledgement gate and the language switch,
which render every tab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.admin import AdminHandlers
from ui.auth import Refusal
from ui.base import Base
from ui.chat import pii_buttons
from ui.client import ApiError, Who
from ui.layout import brand_html
from ui.texts import Texts
from ui.views import (
    ack_error,
    charter_markdown,
    main_contact,
    pick,
    pii_panel,
    quiz_items,
    render_chat,
)

if TYPE_CHECKING:
    from ui.page import Page


def merge(out: dict[Any, Any], more: dict[Any, Any]) -> dict[Any, Any]:
    """`more` into `out`; two updates of one component are merged (a label set by the relabelling stays when a
    later update sets the same component's value or choices)."""
    for key, value in more.items():
        before = out.get(key)
        out[key] = {**before, **value} if isinstance(before, dict) and isinstance(value, dict) else value
    return out


class PageHandlers(Base):
    """The page as a whole: `c` is the whole page; the admin tab's handlers re-render its figures."""

    c: Page

    def __init__(self, *args: Any, admin: AdminHandlers, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admin = admin

    # --- pieces ---------------------------------------------------------------------------------

    def relabel(self, t: Texts) -> dict[Any, Any]:
        """Every fixed label in the wanted language (the registry is filled while laying out)."""
        out: dict[Any, Any] = {}
        for component, props in self.c.labels.items:
            values: dict[str, Any] = {prop: t(key) for prop, key in props.items()}
            out[component] = gr.update(**values)
        out[self.c.header.brand] = brand_html(self.settings, t)
        return out

    def charter_md(self, charter: dict[str, Any], model: str, t: Texts) -> str:
        policy = self.settings.policy
        return charter_markdown(
            charter, t, model, audit_days=policy.audit_retention_days, log_text=policy.log_prompt_text
        )

    def notice(self, charter: dict[str, Any], t: Texts) -> str:
        contact = main_contact(charter)
        tail = f" · {t('chat.notice_contact', contact=self.esc(contact))}" if contact else ""
        demo = ""
        if (charter.get("model") or {}).get("demo"):  # the gateway serves a demonstration model: say so first
            demo = f'<div class="kit-demo" id="kit-demo-notice" role="note">{self.esc(t("chat.demo_model"))}</div>'
        return f'{demo}<div class="kit-notice">⚠️ {self.esc(t("chat.notice"))}{tail}</div>'

    def history_info(self, charter: dict[str, Any], t: Texts) -> str:
        days = int(charter.get("conversation_retention_days") or 0)
        contact = (charter.get("contacts") or {}).get("dpo") or main_contact(charter)
        parts = [t("history.kept", days=days) if days > 0 else t("history.nothing_kept")]
        if contact:
            parts.append(t("history.rights", contact=self.esc(contact)))
        return "\n\n".join(parts)

    def gate_updates(
        self, charter: dict[str, Any], model: str, t: Texts, values: list[Any] | None = None
    ) -> dict[Any, Any]:
        c = self.c
        items = quiz_items(charter, t.lang)
        out: dict[Any, Any] = {
            c.gate.md: self.charter_md(charter, model, t),
            c.gate.quiz_head: gr.update(visible=bool(items), value=self.quiz_head(t, len(items))),
        }
        for i, radio in enumerate(c.gate.quiz):
            if i < len(items):
                question, choices = items[i]
                value = values[i] if values and i < len(values) else None
                out[radio] = gr.update(visible=True, label=f"{i + 1}. {question}", choices=choices, value=value)
            else:
                out[radio] = gr.update(visible=False, choices=[], value=None)
        return out

    @staticmethod
    def quiz_head(t: Texts, n: int) -> str:
        return f"### {t('gate.quiz_title')}\n\n{t('gate.quiz_intro', n=n)}"

    def main_updates(
        self, who: Who, charter: dict[str, Any], model: str, conv: dict[str, Any] | None, t: Texts
    ) -> dict[Any, Any]:
        c = self.c
        closed = charter.get("chat_closed")
        templates = [(pick(tp.get("name"), t.lang), i) for i, tp in enumerate(charter.get("prompt_templates") or [])]
        out: dict[Any, Any] = {
            c.chat.chatbot: gr.update(
                value=render_chat(conv or {}, t),
                placeholder=t("chat.placeholder", name=self.esc(who.user)),
                watermark=t("chat.watermark", model=model or "?"),
            ),
            c.chat.closed_md: gr.update(
                visible=bool(closed),
                value=t("chat.closed", message=self.esc((closed or {}).get("message") or t("errors.closed_default"))),
            ),
            c.chat.send_btn: gr.update(value=t("chat.send"), interactive=not closed),  # closed: the banner says why
            c.chat.templates: gr.update(choices=templates, value=None, visible=bool(templates)),
            c.chat.notice: self.notice(charter, t),
            c.history.info: self.history_info(charter, t),
            c.history.tools: gr.update(visible=int(charter.get("conversation_retention_days") or 0) > 0),
            c.charter.md: self.charter_md(charter, model, t),
            c.admin.tab: gr.update(visible=who.role in ("admin", "auditor")),
            c.usage.tab: gr.update(visible=who.role in ("admin", "auditor"), label=t("usage.tab")),
            c.documents.tab: gr.update(visible=who.role == "admin", label=t("docs.tab")),
            c.admin.switch: gr.update(visible=who.role == "admin"),
            c.admin.readonly: gr.update(visible=who.role == "auditor"),
        }
        return out

    def screen(self, which: str, t: Texts, message: str = "", retry: bool = False) -> dict[Any, Any]:
        c = self.c
        return {
            c.header.banner: gr.update(visible=bool(message), value=message),
            c.header.retry_btn: gr.update(visible=retry, value=t("app.retry")),
            c.gate.col: gr.update(visible=which == "gate"),
            c.main_col: gr.update(visible=which == "main"),
        }

    # --- load and gate --------------------------------------------------------------------------

    def on_load(self, lang: str, conv: dict[str, Any] | None, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        out = self.relabel(t)
        who = self.who(request)
        if isinstance(who, Refusal):
            contact = self.settings.deployment.contacts.point_of_contact
            text = self.refusal_text(who, t) + (
                f"\n\n{t('auth.contact', contact=self.esc(contact))}" if contact else ""
            )
            return {**out, **self.screen("none", t, text)}
        out[c.header.who_md] = t("app.signed_in", user=self.esc(who.user), role=t(f"roles.{who.role}"))
        model, warning = "", ""
        try:
            model = str(self.client.health().get("model") or "")
        except ApiError as err:
            if err.kind != "engine":
                return {**out, **self.screen("none", t, self.error(err, t), retry=True)}
            model, warning = str(err.detail.get("model") or ""), self.error(err, t)
        try:
            charter = self.client.charter(who)
        except ApiError as err:
            return {**out, **self.screen("none", t, self.error(err, t), retry=True)}
        merge(out, {c.state.charter: charter, c.state.model: model})
        if (charter.get("user") or {}).get("acknowledged_at") is None:
            merge(out, self.gate_updates(charter, model, t))
            merge(out, self.screen("gate", t, warning))
            return out
        merge(out, self.main_updates(who, charter, model, conv, t))
        merge(out, self.screen("main", t, warning))
        return out

    def acknowledge(
        self,
        request: gr.Request,
        lang: str,
        charter: dict[str, Any] | None,
        confirmed: bool,
        conv: dict[str, Any] | None,
        model: str,
        *answers: Any,
    ) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {c.gate.msg: self.status(self.refusal_text(who, t), "error")}
        if not charter:
            return {c.gate.msg: self.status(t("errors.unreachable"), "error")}
        n = len(charter.get("quiz") or [])
        given = list(answers[:n])
        if any(a is None or a == "" for a in given):
            return {c.gate.msg: self.status(t("gate.need_answers"), "error")}
        if not confirmed:
            return {c.gate.msg: self.status(t("gate.need_confirm"), "error")}
        try:
            self.client.acknowledge(who, str(charter.get("version")), [int(a) for a in given])
            charter = self.client.charter(who)
        except ApiError as err:
            return {c.gate.msg: self.status(ack_error(err, t), "error")}
        out = {c.state.charter: charter, c.gate.msg: self.status("")}
        merge(out, self.main_updates(who, charter, model, conv, t))
        merge(out, self.screen("main", t))
        return out

    # --- language -------------------------------------------------------------------------------

    def on_language(
        self,
        request: gr.Request,
        lang: str,
        conv: dict[str, Any] | None,
        charter: dict[str, Any] | None,
        model: str,
        pii_item: dict[str, Any] | None,
        fb: dict[str, Any] | None,
        admin_cache: dict[str, Any] | None,
        *quiz_values: Any,
    ) -> dict[Any, Any]:
        """Re-render every label in `lang`; the conversation, answers typed and panels stay."""
        c, t = self.c, self.t(lang)
        if not charter:  # nothing loaded yet (refused, or the gateway was unreachable): start again
            return self.on_load(lang, conv, request)
        out = self.relabel(t)
        who = self.who(request)
        if isinstance(who, Refusal):
            return {**out, c.header.banner: gr.update(value=self.refusal_text(who, t))}
        out[c.header.who_md] = t("app.signed_in", user=self.esc(who.user), role=t(f"roles.{who.role}"))
        out[c.chat.chat_msg] = self.status("")
        out[c.gate.msg] = self.status("")
        merge(out, self.gate_updates(charter, model, t, list(quiz_values)))
        main = self.main_updates(who, charter, model, conv, t)
        templates = [(pick(tp.get("name"), t.lang), i) for i, tp in enumerate(charter.get("prompt_templates") or [])]
        main[c.chat.templates] = gr.update(choices=templates)
        merge(out, main)
        if pii_item and pii_item.get("scan"):
            markdown, state = pii_panel(pii_item["scan"], t)
            out[c.chat.pii_md] = markdown
            out.update(pii_buttons(c.chat, state, t))
        if fb:
            out[c.chat.fb_md] = f"**{t('feedback.up_title' if fb.get('rating', 0) > 0 else 'feedback.down_title')}**"
        if admin_cache:
            merge(out, self.admin.admin_render(admin_cache, t))
        return out
