"""Answer feedback (thumbs up or down) and problem reports from staff."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.gateway.context import Context
from kit.gateway.schemas import FeedbackRequest


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = FeedbackRequest.model_validate(await ctx.body(request))
        meta = {"conversation_id": req.conversation_id, "model": req.model}
        user = ctx.state.pseudonym(ident.user)
        policed = await run_in_threadpool(ctx.gate.mask_for_storage, req.comment)  # administrators read it
        comment = policed.text if policed else req.comment
        categories = policed.categories if policed else []
        fid = await run_in_threadpool(ctx.state.store.add_feedback, user, req.kind, req.rating, comment, meta)
        await ctx.audit_async(ident, "report" if req.kind == "report" else "feedback",
                              rating=req.rating if req.rating is not None else 0, id=fid,
                              **({"pii_categories": ",".join(categories)} if categories else {}))
        return {"id": fid, "kind": req.kind, "personal_data": {"categories": categories}}

    return api
