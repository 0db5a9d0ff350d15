"""The Usage tab (admins and auditors): the usage figures of a period per day or week, from the audit log
only (GET /v1/admin/usage), as charts (Gradio's native plots), a table and a CSV export. Handlers in
ui.usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui.layout import PRIVATE, Header, Labels, States
from ui.texts import Texts

if TYPE_CHECKING:
    from ui.usage import UsageHandlers


@dataclass
class UsageTab:
    tab: gr.Tab
    intro: gr.Markdown
    start: gr.Textbox
    end: gr.Textbox
    by: gr.Radio
    show: gr.Button
    msg: gr.Markdown
    summary: gr.Markdown
    requests_plot: gr.BarPlot
    refusals_plot: gr.BarPlot
    latency_plot: gr.LinePlot
    tokens_plot: gr.BarPlot
    table: gr.Dataframe
    csv: gr.HTML
    shown: gr.State  # the query on screen, shown again in the new language when it changes
    threshold: int  # policy.usage_min_users, named in the introduction

    def headings(self, t: Texts) -> dict[Any, Any]:
        return {
            self.intro: t("usage.intro", threshold=self.threshold),
            self.by: gr.update(label=t("usage.by"), choices=by_choices(t)),
        }


def by_choices(t: Texts) -> list[tuple[str, str]]:
    return [(t("usage.by_day"), "day"), (t("usage.by_week"), "week")]


def build(t: Texts, labels: Labels, threshold: int = 5) -> UsageTab:
    lab = labels.lab
    with gr.Tab(t("usage.tab"), id="usage", visible=False, elem_id="kit-tab-usage") as tab:
        intro = gr.Markdown(t("usage.intro", threshold=threshold), elem_id="kit-usage-intro")
        with gr.Row(equal_height=True):
            start = lab(gr.Textbox(label=t("usage.start"), info=t("usage.dates_hint"), max_lines=1,
                                   elem_id="kit-usage-from"), label="usage.start", info="usage.dates_hint")
            end = lab(gr.Textbox(label=t("usage.end"), max_lines=1, elem_id="kit-usage-to"), label="usage.end")
            by = gr.Radio(choices=by_choices(t), value="day", label=t("usage.by"), elem_id="kit-usage-by")
            show = lab(gr.Button(t("usage.show"), variant="primary", size="sm", elem_id="kit-usage-show"),
                       value="usage.show")
        msg = gr.Markdown(visible=False)
        summary = gr.Markdown(elem_id="kit-usage-summary")
        with gr.Row():
            requests_plot = gr.BarPlot(x="period", y="count", color="series", visible=False,
                                       elem_id="kit-usage-requests")
            refusals_plot = gr.BarPlot(x="reason", y="count", visible=False, elem_id="kit-usage-refusals")
        with gr.Row():
            latency_plot = gr.LinePlot(x="period", y="ms", color="series", visible=False, elem_id="kit-usage-latency")
            tokens_plot = gr.BarPlot(x="period", y="tokens", color="model", visible=False,
                                     elem_id="kit-usage-tokens")
        table = gr.Dataframe(visible=False, interactive=False, wrap=True, elem_id="kit-usage-table")
        csv = gr.HTML(visible=False, elem_id="kit-usage-csv")
        shown = gr.State(None)
    return UsageTab(tab, intro, start, end, by, show, msg, summary, requests_plot, refusals_plot, latency_plot,
                    tokens_plot, table, csv, shown, threshold)


def wire(c: UsageTab, h: UsageHandlers, s: States, header: Header) -> None:
    out = [c.msg, c.summary, c.requests_plot, c.refusals_plot, c.latency_plot, c.tokens_plot, c.table, c.csv,
           c.start, c.end, c.shown]
    c.show.click(h.show, [s.lang, c.start, c.end, c.by], out, **PRIVATE)
    c.start.submit(h.show, [s.lang, c.start, c.end, c.by], out, **PRIVATE)
    c.end.submit(h.show, [s.lang, c.start, c.end, c.by], out, **PRIVATE)
    header.lang.change(h.again, [header.lang, c.shown], out, **PRIVATE)
