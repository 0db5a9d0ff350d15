"""Usage tab handlers (admins and auditors): the figures of GET /v1/admin/usage as charts, a table and a
CSV file offered to the session. The gateway refuses the figures to other roles whatever the page shows;
distinct users under its threshold arrive as "< N" and stay so (never a count of one person)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.base import Base
from ui.client import ApiError, Who
from ui.texts import Texts

if TYPE_CHECKING:
    import pandas as pd

    from ui.tabs.usage import UsageTab


def reason_text(reason: str, t: Texts) -> str:
    kind, _, category = reason.partition(":")
    key = f"usage.reasons.{kind}"
    text = t(key, category=category) if category else t(key)
    return reason if text == key else text


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


def requests_frame(rows: list[dict[str, Any]], t: Texts) -> pd.DataFrame:
    data = []
    for r in rows:
        refused = sum(r["refusals"].values())
        for name, value in (("answered", r["requests"] - refused), ("refused", refused)):
            data.append({"period": r["period"], "series": t(f"usage.{name}"), "count": value})
    return _frame(data, ["period", "series", "count"])


def refusals_frame(rows: list[dict[str, Any]], t: Texts) -> pd.DataFrame:
    totals: dict[str, int] = {}
    for r in rows:
        for reason, n in r["refusals"].items():
            totals[reason] = totals.get(reason, 0) + int(n)
    return _frame([{"reason": reason_text(k, t), "count": v} for k, v in sorted(totals.items())], ["reason", "count"])


def latency_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    data = [{"period": r["period"], "series": name, "ms": r[f"latency_{name}_ms"]}
            for r in rows for name in ("p50", "p95") if r[f"latency_{name}_ms"] is not None]
    return _frame(data, ["period", "series", "ms"])


def tokens_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    data = [{"period": r["period"], "model": model, "tokens": f["tokens"]}
            for r in rows for model, f in (r.get("models") or {}).items()]
    return _frame(data, ["period", "model", "tokens"])


def table(rows: list[dict[str, Any]], t: Texts) -> tuple[list[str], list[list[Any]]]:
    head = [t("usage.period"), t("usage.model"), t("usage.col_requests"), t("usage.col_users"),
            t("usage.col_refused"), t("usage.with_documents"), t("usage.no_source"), t("usage.col_tokens"),
            t("usage.col_p50"), t("usage.col_p95")]
    data = []
    for r in reversed(rows):  # the newest period first, each followed by its models
        for model, f in [(t("usage.all_models"), r), *(r.get("models") or {}).items()]:
            data.append([r["period"], model, f["requests"], str(f["active_users"]), sum(f["refusals"].values()),
                         f["with_documents"], f["no_source"], f["tokens"], _dash(f["latency_p50_ms"]),
                         _dash(f["latency_p95_ms"])])
    return head, data


def _dash(value: Any) -> Any:
    return "—" if value is None else value


class UsageHandlers(Base):
    c: UsageTab

    def show(self, lang: str, start: str, end: str, by: str, request: gr.Request) -> dict[Any, Any]:
        c, t = self.c, self.t(lang)
        who = self._staff(request, "admin", "auditor")
        if who is None:
            return {c.msg: self.status(t("errors.forbidden"), "error")}
        try:
            data = self.client.usage(who, (start or "").strip(), (end or "").strip(), by or "day")
        except ApiError as err:
            return {c.msg: self.status(self.error(err, t), "error")}
        out = self.render(who, data, t, request)
        out.update({c.start: data["from"], c.end: data["to"], c.shown: {"from": data["from"], "to": data["to"],
                                                                          "by": data["by"]}})
        return out

    def again(self, lang: str, shown: dict[str, Any] | None, request: gr.Request) -> dict[Any, Any]:
        """The figures on screen, in the language just chosen (nothing when none is shown)."""
        if not shown:
            return {self.c.shown: shown}  # an empty mapping would read as one missing value to Gradio
        return self.show(lang, shown["from"], shown["to"], shown["by"], request)

    def render(self, who: Who, data: dict[str, Any], t: Texts, request: gr.Request) -> dict[Any, Any]:
        c, rows = self.c, data["rows"]
        requests = sum(r["requests"] for r in rows)
        refused = sum(sum(r["refusals"].values()) for r in rows)
        summary = t("usage.summary", start=data["from"], end=data["to"], requests=requests, refused=refused,
                    tokens=sum(r["tokens"] for r in rows))
        summary += "\n\n" + (t("usage.energy") if requests else t("usage.empty"))
        head, lines = table(rows, t)
        period = t("usage.period")
        plot: dict[str, Any] = {"visible": bool(requests), "x_title": period, "y_lim": [0, None],
                "x_label_angle": -45 if len(rows) > 8 else 0}
        out: dict[Any, Any] = {
            c.msg: self.status(""),
            c.summary: summary,
            c.requests_plot: gr.update(value=requests_frame(rows, t), title=t("usage.plot_requests"),
                                       y_title=t("usage.count"), color_title=t("usage.series"), **plot),
            c.refusals_plot: gr.update(value=refusals_frame(rows, t), title=t("usage.plot_refusals"),
                                       x_title=t("usage.reason"), y_title=t("usage.count"), y_lim=[0, None],
                                       visible=bool(refused)),
            c.latency_plot: gr.update(value=latency_frame(rows), title=t("usage.plot_latency"), y_title="ms",
                                      color_title=t("usage.series"), **plot),
            c.tokens_plot: gr.update(value=tokens_frame(rows), title=t("usage.plot_tokens"),
                                     y_title=t("usage.col_tokens"), color_title=t("usage.model"), **plot),
            c.table: gr.update(value={"headers": head, "data": lines}, headers=head, visible=True),
            c.csv: gr.update(value=None, visible=False),
        }
        out.update(self.csv_link(who, data, t, request))
        return out

    def csv_link(self, who: Who, data: dict[str, Any], t: Texts, request: gr.Request) -> dict[Any, Any]:
        """The figures as a CSV file from the gateway, offered to this session once."""
        try:
            content = self.client.usage_csv(who, data["from"], data["to"], data["by"])
        except ApiError as err:
            return {self.c.msg: self.status(self.error(err, t), "error")}
        name = f"kit-usage-{data['from']}-{data['to']}-{data['by']}.csv"
        label = t("usage.csv", name=name, minutes=max(1, round(self.downloads.ttl_s / 60)))
        link = self.offer(request, content, name, label)
        return {self.c.csv: gr.update(value=link, visible=True)} if link else {}
