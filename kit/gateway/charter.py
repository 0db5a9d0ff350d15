"""The usage charter (purpose, allowed and forbidden uses, check questions) and its acknowledgement."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.gateway.context import Context
from kit.gateway.schemas import AckRequest
from kit.rules.policy import SOURCES


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/charter")
    async def charter(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        c = ctx.gate.charter
        quiz = [{"question": q["question"], "choices": q["choices"]} for q in c["quiz"]]
        dep = ctx.settings.deployment
        policy = ctx.settings.policy
        return {
            "version": c["version"],
            "organisation": dep.organisation,
            "purpose": dep.purpose,
            "allowed_uses": c["allowed_uses"],
            "forbidden_uses": c["forbidden_uses"],
            "pii_actions": c["pii_actions"],
            "pii_detection": c.get("pii_detection", True),
            "conversation_retention_days": policy.conversation_retention_days,
            "prompt_templates": [t.model_dump() for t in policy.prompt_templates],
            "quiz": quiz,
            "contacts": dep.contacts.model_dump(),
            "sources": SOURCES,
            "user": {"name": ident.user, "role": ident.role,
                     "acknowledged_at": await run_in_threadpool(ctx.gate.acknowledged, ident)},
            "chat_closed": ctx.state.store.flag("chat_closed"),
            "model": {"name": ctx.engine.model_name, "demo": ctx.engine.demo},  # the chat shows a demo's notice
        }

    @api.post("/v1/charter/acknowledge")
    async def acknowledge(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = AckRequest.model_validate(await ctx.body(request))
        when = await run_in_threadpool(ctx.gate.acknowledge, ident, req.version, req.quiz_answers)
        await ctx.audit_async(ident, "acknowledge", charter=req.version)
        return {"acknowledged": True, "version": req.version, "time": when}

    return api
