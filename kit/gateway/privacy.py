"""Preview of what the personal-data filter finds in a text and what the policy would do with it. A scan
counts against the caller's requests per minute, its text is bounded like a chat message, and it leaves an
audit row: the categories found and the text's length, the text itself only where the policy logs prompts."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.audit import AuditEvent
from kit.errors import BodyTooLargeError
from kit.gateway.context import Context
from kit.gateway.schemas import ScanRequest


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/privacy/scan")
    async def scan(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = ScanRequest.model_validate(await ctx.body(request))
        limit = ctx.settings.policy.max_prompt_chars
        if len(req.text) > limit:
            raise BodyTooLargeError(
                f"the text has {len(req.text)} characters; a scan takes at most {limit}, the longest message "
                f"(policy.max_prompt_chars): scan it in parts. / Le texte compte {len(req.text)} caractères ; une "
                f"analyse en accepte au plus {limit}, la longueur maximale d'un message (policy.max_prompt_chars) : "
                "analysez-le en plusieurs parties.")
        await ctx.count_request(ident, "privacy_scan")
        from kit.rules.privacy import get_detector

        findings = await run_in_threadpool(get_detector().scan, req.text)  # once: the policy reuses them
        outcome = ctx.gate.pii_policy(req.text, findings)
        text = json.dumps({"text": req.text}, ensure_ascii=False) if ctx.settings.policy.log_prompt_text else None
        await run_in_threadpool(ctx.state.audit.record, AuditEvent(
            action="privacy_scan", user=ident.user, pii_categories=list(outcome.categories),
            detail={"via": ident.via, "length": len(req.text), "findings": len(findings)}, text=text))
        return {"findings": [dataclasses.asdict(f) for f in findings], "categories": outcome.categories,
                "actions": outcome.actions, "blocked": outcome.blocked, "masked_text": outcome.text}

    return api
