"""Answer feedback (thumbs up or down) and problem reports from staff."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.gateway.context import Context
from kit.gateway.schemas import FeedbackRequest


def _police(ctx: Context, fields: dict[str, str | None]) -> dict[str, tuple[str | None, list[str]]]:
    """Each field as it may be stored (ctx.gate.mask_for_storage), with the categories found in it."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    for name, value in fields.items():
        policed = ctx.gate.mask_for_storage(value) if value else None
        out[name] = (policed.text, list(policed.categories)) if policed else (value, [])
    return out


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = FeedbackRequest.model_validate(await ctx.body(request))
        user = ctx.state.pseudonym(ident.user)
        # administrators read every field of it
        fields = {"comment": req.comment, "conversation_id": req.conversation_id, "model": req.model}
        policed = await run_in_threadpool(_police, ctx, fields)
        categories = sorted({c for _, found in policed.values() for c in found})
        comment = str(policed["comment"][0])
        meta = {"conversation_id": policed["conversation_id"][0], "model": policed["model"][0]}
        fid = await run_in_threadpool(ctx.state.store.add_feedback, user, req.kind, req.rating, comment, meta)
        await ctx.audit_async(ident, "report" if req.kind == "report" else "feedback",
                              rating=req.rating if req.rating is not None else 0, id=fid,
                              **({"pii_categories": ",".join(categories)} if categories else {}))
        return {"id": fid, "kind": req.kind, "personal_data": {"categories": categories}}

    return api
