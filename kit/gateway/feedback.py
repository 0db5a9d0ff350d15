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
        fid = await run_in_threadpool(ctx.state.store.add_feedback, user, req.kind, req.rating, req.comment, meta)
        await ctx.audit_async(ident, "report" if req.kind == "report" else "feedback",
                              rating=req.rating if req.rating is not None else 0, id=fid)
        return {"id": fid, "kind": req.kind}

    return api
