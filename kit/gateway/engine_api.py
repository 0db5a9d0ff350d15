"""The raw OpenAI API of one engine, for `kit engine`: a member of a gateway's engine pool.

No usage rules here (charter, personal data, limits, audit are the gateway's): only generation,
behind the engine's own key. ``/health`` and ``/metrics`` (prompt-cache counters included) let the
gateways and the operators see its state.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from kit.config import host_allowed, is_loopback_host
from kit.engine.base import Engine, Generation
from kit.gateway.errors import install_handlers, read_json
from kit.gateway.local import fastapi_options
from kit.protocol.responses import StreamEnd, response, stream
from kit.protocol.schemas import ChatRequest, CompletionRequest
from kit.protocol.serving import (
    STREAM_HEADERS,
    ClosingStream,
    announcing,
    collect,
    response_id,
    sampling_params,
    submit_all,
)

MAX_BODY = 4_000_000


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def create_engine_app(engine: Engine, *, api_key: str | None, name: str, max_tokens_default: int = 512,
                      timeout_s: float = 300, host: str | None = None) -> FastAPI:
    """The engine's app; ``host``, the address it is bound to: on loopback, only loopback names are answered
    (a page whose name rebinds to this machine cannot use the model without the gateway's rules)."""
    app = FastAPI(title=f"kit engine {name}", docs_url=None, redoc_url=None, openapi_url=None,
                  **fastapi_options())
    install_handlers(app)

    @app.middleware("http")
    async def check_key(request: Request, call_next: Any) -> Response:
        if host and is_loopback_host(host) and not host_allowed(request.headers.get("host"), host, []):
            return _error(421, f"this engine does not answer to the host name {request.headers.get('host')!r}: use "
                          "its loopback address. / Ce moteur ne répond pas au nom d'hôte "
                          f"{request.headers.get('host')!r} : utilisez son adresse de bouclage.", "misdirected_request")
        if api_key and request.url.path != "/health":
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return _error(401, "this engine needs its key: Authorization: Bearer <key>.", "authentication_error")
        return await call_next(request)  # type: ignore[no-any-return]

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = engine.is_ready()
        return JSONResponse({"status": "ok" if ready else "unavailable", "engine": name, "model": engine.model_name},
                            status_code=200 if ready else 503)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0,
                                            "owned_by": "kit", "kit": {"engine": name, "context_length": engine.n_ctx,
                                                                       "sha256": engine.model_sha256}}]}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        s = engine.stats
        lines = [f'kit_engine_{key}{{engine="{name}"}} {value}' for key, value in (
            ("requests_total", s.requests_total), ("requests_finished", s.requests_finished),
            ("prompt_tokens_total", s.prompt_tokens_total), ("prompt_tokens_cached", s.prompt_tokens_cached),
            ("completion_tokens_total", s.completion_tokens_total), ("active", s.active), ("queued", s.queued))]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    api = APIRouter(route_class=announcing(engine))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: ChatRequest = Depends(chat_body)) -> Response:
        gens = await submit_all(engine, body.n, sampling_params(body, max_tokens_default, timeout_s),
                                [m.as_dict() for m in body.messages], route=body.conversation_id)
        return await answer(request, body, gens, {"model": engine.model_name, "engine": name}, True)

    @api.post("/v1/completions")
    async def completions(request: Request, body: CompletionRequest = Depends(completion_body)) -> Response:
        gens = await submit_all(engine, body.n, sampling_params(body, max_tokens_default, timeout_s), [],
                                body.prompt)
        return await answer(request, body, gens, {"model": engine.model_name, "engine": name}, False)

    app.include_router(api)
    return app


async def chat_body(request: Request) -> ChatRequest:
    return ChatRequest.model_validate(await read_json(request, MAX_BODY))


async def completion_body(request: Request) -> CompletionRequest:
    return CompletionRequest.model_validate(await read_json(request, MAX_BODY))


async def answer(request: Request, body: ChatRequest | CompletionRequest, gens: list[Generation],
                 meta: dict[str, Any], chat: bool) -> Response:
    """The generations as one response, or streamed; cancelled once it is over, however it ends."""
    rid = response_id(chat)

    def close() -> None:
        for g in gens:
            g.cancel()

    if body.stream:
        events = stream(rid, body, gens, meta, chat, StreamEnd())
        return ClosingStream(events, close, media_type="text/event-stream", headers=STREAM_HEADERS)
    try:
        texts = await collect(request, gens)
    finally:
        close()
    return JSONResponse(response(rid, body, gens, texts, meta, chat))
