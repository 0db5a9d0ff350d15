"""What every route group of the gateway shares: the settings, the engine, the stores, the policy gate,
the metrics and the abuse limits, plus the three steps most routes start with (who is calling, the JSON
body, an audit row)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from kit.audit import AuditEvent
from kit.config import Settings
from kit.engine.base import Engine
from kit.errors import LimitExceededError
from kit.gateway.errors import read_json
from kit.gateway.metrics import Metrics
from kit.oidc.bearer import looks_like_jwt
from kit.rules.limits import Limiter
from kit.rules.policy import Gate, Identity
from kit.storage.state import GatewayState

if TYPE_CHECKING:
    from kit.gateway.documents import Documents


@dataclass
class Context:
    settings: Settings
    engine: Engine
    state: GatewayState
    gate: Gate
    metrics: Metrics
    limiter: Limiter
    documents: Documents = field(init=False)  # set by create_app: the document index, opened on first use
    warm: threading.Event = field(default_factory=threading.Event)  # cleared while the server warms up

    async def identify(self, request: Request) -> Identity:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.gate.bearer is not None and looks_like_jwt(headers.get("authorization", "")):
            return await run_in_threadpool(self.gate.identify, headers)  # may fetch the provider's keys
        return self.gate.identify(headers)

    async def body(self, request: Request) -> Any:
        return await read_json(request, self.settings.server.max_body_bytes)

    def audit(self, ident: Identity, action: str, **detail: Any) -> None:
        self.state.audit.record(AuditEvent(action=action, user=ident.user, detail=detail))

    async def audit_async(self, ident: Identity, action: str, **detail: Any) -> None:
        await run_in_threadpool(self.audit, ident, action, **detail)

    async def count_request(self, ident: Identity, action: str) -> None:
        """Count a request that runs no generation (a search, a scan) against the caller's requests per minute;
        over it, an audit row (status ``limited``) and LimitExceededError (429)."""
        limiter = self.limiter
        try:
            if limiter.shared:  # Redis: a network round trip, off the event loop
                await run_in_threadpool(limiter.request, ident.user, ident.via, ident.role)
            else:
                limiter.request(ident.user, ident.via, ident.role)
        except LimitExceededError as exc:
            await run_in_threadpool(self.state.audit.record, AuditEvent(
                action=action, user=ident.user, status="limited", detail={"via": ident.via, "limit": exc.limit}))
            raise
