"""History (when the retention policy keeps it) and the rights of persons: export and deletion (conversations,
their attached files, and feedback)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.errors import NotFoundError
from kit.gateway.context import Context
from kit.gateway.schemas import NewConversation


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    store = ctx.state.conversations

    @api.get("/v1/conversations")
    async def conversations(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        convs = await run_in_threadpool(store.list, ident.user)
        return {"enabled": store.enabled,
                "retention_days": ctx.settings.policy.conversation_retention_days,
                "data": [dataclasses.asdict(c) for c in convs]}

    @api.post("/v1/conversations")
    async def new_conversation(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = NewConversation.model_validate(await ctx.body(request))
        policed = await run_in_threadpool(ctx.gate.mask_for_storage, req.title)  # personal data never kept raw
        title = policed.text if policed else req.title
        cid = await run_in_threadpool(store.new_conversation, ident.user, title)
        return {"id": cid, "stored": store.enabled, "title": title,
                "personal_data": {"categories": policed.categories if policed else []}}

    @api.get("/v1/conversations/{cid}")
    async def get_conversation(cid: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        conv = await run_in_threadpool(store.get, ident.user, cid)
        if conv is None:
            raise NotFoundError(f"no conversation {cid} of yours.")
        return dataclasses.asdict(conv)

    @api.delete("/v1/conversations/{cid}")
    async def delete_conversation(cid: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        deleted = await run_in_threadpool(store.delete, ident.user, cid)
        files = await run_in_threadpool(ctx.state.attachments.delete_conversation, ident.user, cid)
        return {"deleted": bool(deleted), "files_deleted": files}

    @api.delete("/v1/conversations")
    async def delete_all(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        n = await run_in_threadpool(store.delete_all, ident.user)
        feedback = await run_in_threadpool(ctx.state.store.delete_user_feedback, ctx.state.pseudonym(ident.user))
        files = await run_in_threadpool(ctx.state.attachments.delete_user, ident.user)
        await ctx.audit_async(ident, "delete_user_data", conversations=n, feedback=feedback, files=files)
        return {"deleted": n, "feedback_deleted": feedback, "files_deleted": files}

    @api.get("/v1/me/export")
    async def export_me(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        data = await run_in_threadpool(store.export_user, ident.user)
        data["acknowledged_at"] = await run_in_threadpool(ctx.gate.acknowledged, ident)
        data["charter_version"] = ctx.gate.charter["version"]
        items = await run_in_threadpool(ctx.state.store.user_feedback, ctx.state.pseudonym(ident.user))
        data["feedback"] = [{k: v for k, v in dataclasses.asdict(i).items() if k != "user"} for i in items]
        files = await run_in_threadpool(ctx.state.attachments.list, ident.user)
        data["files"] = [f.describe() for f in files]  # GET /v1/files/ID/content gives each one's text
        await ctx.audit_async(ident, "export")
        return data

    return api
