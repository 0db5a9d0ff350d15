"""Views for administrators and auditors: figures, usage per day or week, the audit chain, feedback, the latest
benchmark report, and closing the chat."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kit.audit import span, to_csv, usage_rows
from kit.errors import NotFoundError, UsageError
from kit.files import published_bench
from kit.gateway.context import Context
from kit.gateway.schemas import ChatSwitch


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    state = ctx.state

    @api.get("/v1/admin/stats")
    async def stats(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        s = await run_in_threadpool(state.audit.stats)
        out = dataclasses.asdict(s)
        out["acknowledgements_current_charter"] = await run_in_threadpool(state.store.ack_count,
                                                                          ctx.gate.charter["version"])
        out["chat_closed"] = state.store.flag("chat_closed")
        return out

    @api.get("/v1/admin/usage", response_model=None)
    async def usage(request: Request) -> dict[str, Any] | Response:
        """Usage figures per day or week (``from``, ``to``: YYYY-MM-DD, inclusive; ``by``: day or week), from the
        audit log only; a count of distinct users under ``policy.usage_min_users`` reads "< N". ``format=csv``:
        the same figures as a CSV file."""
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        q = request.query_params
        if q.get("format", "json") not in ("json", "csv"):
            raise UsageError(f"'format' must be 'json' or 'csv', got {q.get('format')!r}")
        period = span(q.get("from"), q.get("to"), q.get("by", "day"))
        threshold = ctx.settings.policy.usage_min_users
        rows = await run_in_threadpool(lambda: usage_rows(state.audit.rows(period.since, period.until), period,
                                                          threshold))
        if q.get("format") == "csv":
            name = f"kit-usage-{period.start}-{period.end}-{period.by}.csv"
            return Response(to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return {"from": period.start.isoformat(), "to": period.end.isoformat(), "by": period.by,
                "threshold": threshold, "rows": rows}

    @api.get("/v1/admin/audit/verify")
    async def verify(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        return dataclasses.asdict(await run_in_threadpool(state.audit.verify))

    @api.get("/v1/admin/bench")
    async def bench_report(request: Request) -> dict[str, Any]:
        """The latest benchmark report that `kit bench report` published: its Markdown summary and the
        self-contained HTML page."""
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        found = await run_in_threadpool(published_bench, ctx.settings.home)
        if found is None:
            raise NotFoundError("no benchmark report yet: run `kit bench serving|quality|rag ...`, then "
                           "`kit bench report`, on the server.")
        html = found["html"]
        return {**found, "html": await run_in_threadpool(html.read_text, encoding="utf-8") if html else None}

    @api.get("/v1/admin/feedback")
    async def list_feedback(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        items = await run_in_threadpool(state.store.feedback)
        return {"data": [dataclasses.asdict(i) for i in items]}

    @api.post("/v1/admin/chat")
    async def switch(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin")
        req = ChatSwitch.model_validate(await ctx.body(request))
        value = None if req.open else {"message": req.message}
        await run_in_threadpool(state.store.set_flag, "chat_closed", value)
        await ctx.audit_async(ident, "admin", chat="open" if req.open else "closed")
        return {"chat_open": req.open}

    return api
