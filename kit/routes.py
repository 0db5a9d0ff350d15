"""The kit's own API routes: charter and acknowledgement, personal-data preview, feedback, history,
rights of persons, and the admin and auditor views."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from kit.audit import AuditEvent
from kit.config import Settings
from kit.errors import UsageError
from kit.gateway_state import GatewayState
from kit.policy import Gate, Identity
from kit.schemas import AckRequest, ChatSwitch, FeedbackRequest, NewConversation, ScanRequest

SOURCES = [
    {"title": "CNIL — IA générative : questions-réponses (2024)",
     "url": "https://www.cnil.fr/fr/les-questions-reponses-de-la-cnil-sur-lutilisation-dun-systeme-dintelligence-artificielle-generative"},
    {"title": "ANSSI — Recommandations de sécurité pour un système d'IA générative (2024)",
     "url": "https://cyber.gouv.fr/publications/recommandations-de-securite-pour-un-systeme-dia-generative"},
    {"title": "EU AI Act — Regulation (EU) 2024/1689, Art. 4 and 50",
     "url": "https://eur-lex.europa.eu/eli/reg/2024/1689/oj"},
]


def add_routes(app: FastAPI, settings: Settings, state: GatewayState, gate: Gate,
               identify: Callable[[Request], Awaitable[Identity]]) -> None:
    async def body(request: Request) -> Any:
        from kit.server import read_json

        return await read_json(request, settings.server.max_body_bytes)

    def audit(ident: Identity, action: str, **detail: Any) -> None:
        state.audit.record(AuditEvent(action=action, user=ident.user, detail=detail))

    @app.get("/v1/charter")
    async def charter(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        c = gate.charter
        quiz = [{"question": q["question"], "choices": q["choices"]} for q in c["quiz"]]
        dep = settings.deployment
        policy = settings.policy
        return {
            "version": c["version"],
            "organisation": dep.organisation,
            "purpose": dep.purpose,
            "allowed_uses": c["allowed_uses"],
            "forbidden_uses": c["forbidden_uses"],
            "pii_actions": c["pii_actions"],
            "conversation_retention_days": policy.conversation_retention_days,
            "prompt_templates": [t.model_dump() for t in policy.prompt_templates],
            "quiz": quiz,
            "contacts": dep.contacts.model_dump(),
            "sources": SOURCES,
            "user": {"name": ident.user, "role": ident.role,
                     "acknowledged_at": await run_in_threadpool(gate.acknowledged, ident)},
            "chat_closed": state.store.flag("chat_closed"),
        }

    @app.post("/v1/charter/acknowledge")
    async def acknowledge(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        req = AckRequest.model_validate(await body(request))
        when = await run_in_threadpool(gate.acknowledge, ident, req.version, req.quiz_answers)
        await run_in_threadpool(audit, ident, "acknowledge", charter=req.version)
        return {"acknowledged": True, "version": req.version, "time": when}

    @app.post("/v1/privacy/scan")
    async def scan(request: Request) -> dict[str, Any]:
        await identify(request)
        req = ScanRequest.model_validate(await body(request))
        outcome = await run_in_threadpool(gate.apply_pii, [{"role": "user", "content": req.text}])
        from kit.privacy import get_detector

        findings = await run_in_threadpool(get_detector().scan, req.text)
        return {"findings": [dataclasses.asdict(f) for f in findings], "categories": outcome.categories,
                "actions": outcome.actions, "blocked": outcome.blocked, "masked_text": outcome.messages[0]["content"]}

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        req = FeedbackRequest.model_validate(await body(request))
        meta = {"conversation_id": req.conversation_id, "model": req.model}
        user = state.pseudonym(ident.user)
        fid = await run_in_threadpool(state.store.add_feedback, user, req.kind, req.rating, req.comment, meta)
        await run_in_threadpool(audit, ident, "report" if req.kind == "report" else "feedback",
                                rating=req.rating if req.rating is not None else 0, id=fid)
        return {"id": fid, "kind": req.kind}

    # --- history and rights of persons ---------------------------------------------------------

    @app.get("/v1/conversations")
    async def conversations(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        convs = await run_in_threadpool(state.conversations.list, ident.user)
        return {"enabled": state.conversations.enabled,
                "retention_days": settings.policy.conversation_retention_days,
                "data": [dataclasses.asdict(c) for c in convs]}

    @app.post("/v1/conversations")
    async def new_conversation(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        req = NewConversation.model_validate(await body(request))
        cid = await run_in_threadpool(state.conversations.new_conversation, ident.user, req.title)
        return {"id": cid, "stored": state.conversations.enabled}

    @app.get("/v1/conversations/{cid}")
    async def get_conversation(cid: str, request: Request) -> dict[str, Any]:
        ident = await identify(request)
        conv = await run_in_threadpool(state.conversations.get, ident.user, cid)
        if conv is None:
            raise UsageError(f"no conversation {cid} of yours.")
        return dataclasses.asdict(conv)

    @app.delete("/v1/conversations/{cid}")
    async def delete_conversation(cid: str, request: Request) -> dict[str, Any]:
        ident = await identify(request)
        deleted = await run_in_threadpool(state.conversations.delete, ident.user, cid)
        return {"deleted": bool(deleted)}

    @app.delete("/v1/conversations")
    async def delete_all(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        n = await run_in_threadpool(state.conversations.delete_all, ident.user)
        await run_in_threadpool(audit, ident, "delete_user_data", conversations=n)
        return {"deleted": n}

    @app.get("/v1/me/export")
    async def export_me(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        data = await run_in_threadpool(state.conversations.export_user, ident.user)
        data["acknowledged_at"] = await run_in_threadpool(gate.acknowledged, ident)
        data["charter_version"] = gate.charter["version"]
        await run_in_threadpool(audit, ident, "export")
        return data

    # --- admin and auditor ---------------------------------------------------------------------

    @app.get("/v1/admin/stats")
    async def stats(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        ident.require("admin", "auditor")
        s = await run_in_threadpool(state.audit.stats)
        out = dataclasses.asdict(s)
        out["acknowledgements_current_charter"] = await run_in_threadpool(state.store.ack_count,
                                                                          gate.charter["version"])
        out["chat_closed"] = state.store.flag("chat_closed")
        return out

    @app.get("/v1/admin/audit/verify")
    async def verify(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        ident.require("admin", "auditor")
        return dataclasses.asdict(await run_in_threadpool(state.audit.verify))

    @app.get("/v1/admin/feedback")
    async def list_feedback(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        ident.require("admin", "auditor")
        items = await run_in_threadpool(state.store.feedback)
        return {"data": [dataclasses.asdict(i) for i in items]}

    @app.post("/v1/admin/chat")
    async def switch(request: Request) -> dict[str, Any]:
        ident = await identify(request)
        ident.require("admin")
        req = ChatSwitch.model_validate(await body(request))
        value = None if req.open else {"message": req.message}
        await run_in_threadpool(state.store.set_flag, "chat_closed", value)
        await run_in_threadpool(audit, ident, "admin", chat="open" if req.open else "closed")
        return {"chat_open": req.open}
