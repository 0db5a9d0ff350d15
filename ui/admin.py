"""Admin and auditor view: usage figures from the audit log (counts only), feedback and reports,
the audit log's integrity check, and the switch that closes the chat (admins only). The gateway
refuses these endpoints to other roles whatever the page shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.base import Base
from ui.client import ApiError
from ui.texts import Texts
from ui.views import feedback_table, stats_markdown, verify_markdown

if TYPE_CHECKING:
    from ui.tabs.admin import AdminTab


class AdminHandlers(Base):
    c: AdminTab

    def admin_render(self, cache: dict[str, Any], t: Texts) -> dict[Any, Any]:
        c = self.c
        out: dict[Any, Any] = {}
        if "stats" in cache:
            out[c.stats_md] = stats_markdown(cache["stats"], t)
        if "feedback" in cache:
            head, rows = feedback_table(cache["feedback"], t)
            out[c.fb_table] = gr.update(
                value={"headers": head, "data": rows} if rows else None, headers=head, visible=bool(rows)
            )
            out[c.fb_none] = gr.update(visible=not rows, value=t("admin.no_feedback"))
        if "verify" in cache:
            out[c.verify_md] = verify_markdown(cache["verify"], t)
        return out

    def refresh_admin(self, lang: str, cache: dict[str, Any] | None, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin", "auditor")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        cache = dict(cache or {})
        try:
            cache["stats"] = self.client.stats(who)
            cache["feedback"] = self.client.admin_feedback(who).get("data") or []
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        out = self.admin_render(cache, t)
        closed = cache["stats"].get("chat_closed")
        out.update(
            {
                self.page.state.admin_cache: cache,
                c.msg: self.status(""),
                c.close_cb: bool(closed),
                c.close_text: (closed or {}).get("message", ""),
            }
        )
        return out

    def verify(self, lang: str, cache: dict[str, Any] | None, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin", "auditor")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        try:
            result = self.client.verify_audit(who)
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        cache = {**(cache or {}), "verify": result}
        return {self.page.state.admin_cache: cache, c.verify_md: verify_markdown(result, t), c.msg: self.status("")}

    def switch_chat(
        self, close: bool, message: str, lang: str, cache: dict[str, Any] | None, request: gr.Request
    ) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        text = (message or "").strip() or t("errors.closed_default")
        try:
            self.client.set_chat(who, not close, text if close else "")
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        out = self.refresh_admin(lang, cache, request)
        state = t("admin.state_closed", message=self.esc(text)) if close else t("admin.state_open")
        out[c.msg] = self.status(state, "ok")
        return out

    def bench(self, lang: str, request: gr.Request) -> dict[Any, Any]:
        """The latest benchmark report: its summary on the page, the full page (HTML) to download."""
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin", "auditor")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        try:
            report = self.client.bench_report(who)
        except ApiError as err:
            if err.kind == "not_found":
                return {
                    c.bench_md: gr.update(value=t("admin.bench_none"), visible=True),
                    c.bench_file: gr.update(value=None, visible=False),
                    c.msg: self.status(""),
                }
            return {c.msg: self.status(self.error(err, t), "error")}
        head = t("admin.bench_when", when=str(report.get("generated_at") or "")[:16].replace("T", " "))
        out: dict[Any, Any] = {
            c.bench_md: gr.update(value=f"{head}\n\n{report.get('summary') or ''}", visible=True),
            c.bench_file: gr.update(value=None, visible=False),
            c.msg: self.status(""),
        }
        if report.get("html"):  # offered to this session only, once, as an attachment (ui.downloads)
            name = "kit-bench-report.html"
            label = t("admin.bench_link", name=name, minutes=max(1, round(self.downloads.ttl_s / 60)))
            link = self.offer(request, str(report["html"]).encode("utf-8"), name, label)
            if link:
                out[c.bench_file] = gr.update(value=link, visible=True)
        return out
