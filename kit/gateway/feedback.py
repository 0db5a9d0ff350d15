"""Answer feedback (thumbs up or down) and problem reports from staff."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.errors import NotFoundError
from kit.gateway.context import Context
from kit.gateway.schemas import FeedbackRequest


def _police(ctx: Context, fields: dict[str, str | None]) -> dict[str, tuple[str | None, list[str]]]:
    """Each field as it may be stored (ctx.gate.mask_for_storage), with the categories found in it."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    for name, value in fields.items():
        policed = ctx.gate.mask_for_storage(value) if value else None
        out[name] = (policed.text, list(policed.categories)) if policed else (value, [])
    return out


def check_answer(ctx: Context, user: str, conversation_id: str | None, answer_id: str | None) -> None:
    """An answer named in a kept conversation must be one of its answers, so that the link leads to it."""
    if not (answer_id and conversation_id):
        return
    conv = ctx.state.conversations.get(user, conversation_id)
    if conv is None:
        return  # not kept (history off, or already deleted): the audit row of the answer still has its id
    if not any(m.meta.get("answer_id") == answer_id for m in conv.messages if m.role == "assistant"):
        raise NotFoundError(f"no answer {answer_id} in conversation {conversation_id}: name an answer of that "
                            "conversation (the `id` of its chat completion).")


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = FeedbackRequest.model_validate(await ctx.body(request))
        user = ctx.state.pseudonym(ident.user)
        await run_in_threadpool(check_answer, ctx, ident.user, req.conversation_id, req.answer_id)
        # administrators read every field of it
        fields = {"comment": req.comment, "conversation_id": req.conversation_id, "answer_id": req.answer_id,
                  "model": req.model}
        policed = await run_in_threadpool(_police, ctx, fields)
        categories = sorted({c for _, found in policed.values() for c in found})
        comment = str(policed["comment"][0])
        meta = {"conversation_id": policed["conversation_id"][0], "answer_id": policed["answer_id"][0],
                "model": policed["model"][0]}
        fid = await run_in_threadpool(ctx.state.store.add_feedback, user, req.kind, req.rating, comment, meta)
        await ctx.audit_async(ident, "report" if req.kind == "report" else "feedback",
                              rating=req.rating if req.rating is not None else 0, id=fid,
                              **({"answer_id": str(policed["answer_id"][0])} if req.answer_id else {}),
                              **({"pii_categories": ",".join(categories)} if categories else {}))
        return {"id": fid, "kind": req.kind, "personal_data": {"categories": categories}}

    return api
