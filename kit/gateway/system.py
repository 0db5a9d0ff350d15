"""Health, Prometheus metrics and the model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from kit.config import is_loopback_host
from kit.errors import PolicyError
from kit.gateway.context import Context


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.get("/health")
    async def health() -> JSONResponse:
        ready = ctx.engine.is_ready() and ctx.warm.is_set()
        status = "ok" if ready else "unavailable" if ctx.warm.is_set() else "starting"
        body = {"status": status, "model": ctx.engine.model_name, "demo": ctx.engine.demo,
                "chat_open": not ctx.state.store.flag("chat_closed")}
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/metrics")
    async def prometheus(request: Request) -> Response:
        access = ctx.settings.server.metrics_access
        client = request.client.host if request.client else ""
        if access == "loopback" and not is_loopback_host(client):
            raise PolicyError("/metrics is served to this machine only (server.metrics_access: loopback).")
        if access == "key":
            ident = await ctx.identify(request)
            if ident.via != "key" or ident.role not in ("admin", "auditor", "service"):
                raise PolicyError("/metrics needs an admin, auditor or service key (server.metrics_access: key).")
        return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    @api.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        await ctx.identify(request)
        engine = ctx.engine
        return {"object": "list", "data": [{
            "id": engine.model_name, "object": "model", "created": 0, "owned_by": "kit",
            "kit": {"sha256": engine.model_sha256, "context_length": engine.n_ctx},
        }]}

    return api
