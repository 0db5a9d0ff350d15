"""Preview of what the personal-data filter finds in a text and what the policy would do with it."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.gateway.context import Context
from kit.gateway.schemas import ScanRequest


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/privacy/scan")
    async def scan(request: Request) -> dict[str, Any]:
        await ctx.identify(request)
        req = ScanRequest.model_validate(await ctx.body(request))
        from kit.rules.privacy import get_detector

        findings = await run_in_threadpool(get_detector().scan, req.text)  # once: the policy reuses them
        outcome = ctx.gate.pii_policy(req.text, findings)
        return {"findings": [dataclasses.asdict(f) for f in findings], "categories": outcome.categories,
                "actions": outcome.actions, "blocked": outcome.blocked, "masked_text": outcome.text}

    return api
