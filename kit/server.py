"""The gateway: an OpenAI-compatible API in front of the engine, where every usage rule is enforced.

``create_app(settings, engine, state)`` builds the FastAPI app; ``run_server(settings)`` loads the
model and serves it with uvicorn. The browser chat is one client among others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kit.config import Settings
from kit.engine import Engine, Generation, SamplingParams
from kit.errors import (
    ContextOverflowError,
    EngineError,
    KitError,
    PolicyError,
    QueueFullError,
    UsageError,
)
from kit.gateway_state import GatewayState
from kit.metrics import Metrics
from kit.policy import AuthError, ChatClosedError, ChatOutcome, Gate, Identity
from kit.schemas import ChatRequest, CompletionRequest

log = logging.getLogger("kit.server")


class BodyTooLarge(KitError):
    """Request body or message over the configured limit (HTTP 413)."""


class ModelNotFound(KitError):
    """The request names a model this server does not serve (HTTP 404)."""


class PiiBlocked(PolicyError):
    """The prompt holds personal data whose category is blocked (HTTP 422)."""


STATUS: list[tuple[type[Exception], int, str]] = [
    (AuthError, 401, "authentication_error"),
    (ChatClosedError, 503, "service_unavailable"),
    (PiiBlocked, 422, "personal_data_blocked"),
    (PolicyError, 403, "permission_error"),
    (BodyTooLarge, 413, "request_too_large"),
    (ModelNotFound, 404, "model_not_found"),
    (ContextOverflowError, 400, "context_length_exceeded"),
    (UsageError, 400, "invalid_request_error"),
    (QueueFullError, 429, "rate_limit_exceeded"),
    (EngineError, 503, "engine_unavailable"),
    (KitError, 500, "server_error"),
]


def error_response(status: int, message: str, etype: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": etype, "param": param, "code": etype}}
    return JSONResponse(body, status_code=status, headers=headers)


def _kit_error_response(exc: KitError) -> JSONResponse:
    for cls, status, etype in STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": "2"} if status in (429, 503) else None
            return error_response(status, str(exc), etype, headers=headers)
    return error_response(500, str(exc), "server_error")


def _validation_message(exc: ValidationError) -> tuple[str, str]:
    parts, first = [], ""
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        first = first or loc
        parts.append(f"{loc or 'body'}: {err['msg']}")
    return "; ".join(parts), first


async def read_json(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"the request body has {length} bytes; the limit is {limit} (server.max_body_bytes).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"the request body is over {limit} bytes (server.max_body_bytes).")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).") from None
    except RecursionError:
        raise UsageError("the body is nested too deeply to be a valid request.") from None


def create_app(settings: Settings, engine: Engine, state: GatewayState) -> FastAPI:
    """The gateway app. The engine and the stores are passed in; nothing global."""
    gate = Gate(settings, state)
    metrics = Metrics(engine)
    srv = settings.server
    app = FastAPI(title="kit", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.settings, app.state.engine, app.state.gate, app.state.metrics = settings, engine, gate, metrics

    @app.exception_handler(KitError)
    async def _kit_error(_: Request, exc: KitError) -> JSONResponse:
        return _kit_error_response(exc)

    @app.exception_handler(ValidationError)
    async def _invalid(_: Request, exc: ValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(422, message, "invalid_request_error", param)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal error; the server keeps running. See the server log.", "server_error")

    async def identify(request: Request) -> Identity:
        return gate.identify({k.lower(): v for k, v in request.headers.items()})

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = engine.is_ready()
        body = {"status": "ok" if ready else "unavailable", "model": engine.model_name,
                "chat_open": not state.store.flag("chat_closed")}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        await identify(request)
        return {"object": "list", "data": [{
            "id": engine.model_name, "object": "model", "created": 0, "owned_by": "kit",
            "kit": {"sha256": engine.model_sha256, "context_length": engine.n_ctx},
        }]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        ident = await identify(request)
        body = ChatRequest.model_validate(await read_json(request, srv.max_body_bytes))
        messages = [m.as_dict() for m in body.messages]
        return await _generate(request, ident, body, messages, None)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        ident = await identify(request)
        body = CompletionRequest.model_validate(await read_json(request, srv.max_body_bytes))
        return await _generate(request, ident, body, [{"role": "user", "content": body.prompt}], body.prompt)

    async def _generate(request: Request, ident: Identity, body: ChatRequest | CompletionRequest,
                        messages: list[dict[str, Any]], raw_prompt: str | None) -> Response:
        if body.model and body.model != engine.model_name:
            raise ModelNotFound(f"model '{body.model}' is not served here; GET /v1/models lists '{engine.model_name}'.")
        limit = settings.policy.max_prompt_chars
        for i, m in enumerate(messages):
            if len(m["content"]) > limit:
                raise BodyTooLarge(f"message {i} has {len(m['content'])} characters; the limit is {limit} "
                                   "(policy.max_prompt_chars): shorten it.")
        gate.require_open_and_acknowledged(ident)
        started = time.perf_counter()
        outcome = await run_in_threadpool(gate.apply_pii, messages)
        action = "chat" if raw_prompt is None else "completion"
        if outcome.blocked:
            await run_in_threadpool(_audit, ident, action, outcome, [], started, "blocked")
            metrics.requests.labels(action, "422").inc()
            raise PiiBlocked(
                "the message holds personal data that the policy blocks: " + ", ".join(outcome.blocked)
                + ". Remove it (or replace it with a neutral placeholder) and send again;"
                " nothing was sent to the model."
            )
        params = SamplingParams(
            max_tokens=body.wanted_tokens(srv.max_tokens_default), temperature=body.temperature, top_p=body.top_p,
            top_k=body.top_k, min_p=body.min_p, repeat_penalty=body.repeat_penalty,
            frequency_penalty=body.frequency_penalty, presence_penalty=body.presence_penalty, seed=body.seed,
            stop=body.stops(), timeout_s=srv.request_timeout_s)
        loop = asyncio.get_running_loop()
        gens: list[Generation] = []
        try:
            for i in range(body.n):
                p = params if params.seed is None else SamplingParams(**{**vars(params), "seed": params.seed + i})
                if raw_prompt is None:
                    gens.append(await run_in_threadpool(engine.submit_chat, outcome.messages, p, loop))
                else:
                    gens.append(await run_in_threadpool(engine.submit_completion, outcome.messages[0]["content"],
                                                        p, loop))
        except KitError:
            for g in gens:
                g.cancel()
            metrics.requests.labels(action, "error").inc()
            raise
        meta = {"ai_generated": True, "model": engine.model_name, "model_sha256": engine.model_sha256,
                "charter_version": gate.charter["version"],
                "personal_data": {"categories": outcome.categories, "actions": outcome.actions,
                                  "masked": outcome.masked, "warned": outcome.warned}}
        if outcome.masked:
            meta["sent_to_model"] = [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]
        rid = ("chatcmpl-" if raw_prompt is None else "cmpl-") + uuid.uuid4().hex[:24]

        def finish(texts: list[str], status: str) -> None:
            for g in gens:
                metrics.observe(g)
            _audit(ident, action, outcome, gens, started, status)
            if raw_prompt is None and isinstance(body, ChatRequest) and body.conversation_id:
                _store_turn(ident, body.conversation_id, outcome, texts[0] if texts else "")
            metrics.requests.labels(action, "200" if status == "ok" else status).inc()

        if body.stream:
            stream = _stream(request, rid, body, gens, meta, raw_prompt is None, finish)
            return StreamingResponse(stream, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        texts = await _collect(request, gens)
        await run_in_threadpool(finish, texts, "ok" if not any(g.error for g in gens) else "error")
        return JSONResponse(_response(rid, body, gens, texts, meta, raw_prompt is None))

    def _audit(ident: Identity, action: str, outcome: ChatOutcome, gens: list[Generation], started: float,
               status: str) -> None:
        from kit.audit import AuditEvent

        text = None
        if settings.policy.log_prompt_text:
            text = json.dumps({"prompt": [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]},
                              ensure_ascii=False)
        state.audit.record(AuditEvent(
            action=action, user=ident.user, model=engine.model_name,
            prompt_tokens=gens[0].prompt_tokens if gens else 0,
            completion_tokens=sum(g.completion_tokens for g in gens),
            latency_ms=int(1000 * (time.perf_counter() - started)),
            pii_categories=outcome.categories, pii_action=outcome.pii_action, status=status,
            detail={"n": len(gens) or 1, "via": ident.via,
                    "finish": ",".join(str(g.finish_reason) for g in gens)}, text=text))

    def _store_turn(ident: Identity, conversation_id: str, outcome: ChatOutcome, answer: str) -> None:
        conv = state.conversations
        if not conv.enabled:
            return
        last_user = [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]
        if conv.get(ident.user, conversation_id) is None:
            return
        if last_user:
            conv.add_message(ident.user, conversation_id, "user", last_user[0])
        conv.add_message(ident.user, conversation_id, "assistant", answer,
                         {"model": engine.model_name, "ai_generated": True})

    async def _collect(request: Request, gens: list[Generation]) -> list[str]:
        async def one(g: Generation) -> str:
            return "".join([c.text async for c in g.chunks()])

        task = asyncio.ensure_future(asyncio.gather(*(one(g) for g in gens)))
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                return list(task.result())
            if await request.is_disconnected():
                for g in gens:
                    g.cancel()

    from kit.routes import add_routes

    add_routes(app, settings, state, gate, identify)
    return app


def _finish_reason(g: Generation) -> str:
    return "stop" if g.finish_reason == "stop" else "length"


def _usage(gens: list[Generation]) -> dict[str, int]:
    prompt = gens[0].prompt_tokens if gens else 0
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _response(rid: str, body: Any, gens: list[Generation], texts: list[str], meta: dict[str, Any],
              chat: bool) -> dict[str, Any]:
    choices = []
    for i, (g, text) in enumerate(zip(gens, texts, strict=True)):
        if chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": _finish_reason(g), "logprobs": None})
        else:
            choices.append({"index": i, "text": text, "finish_reason": _finish_reason(g), "logprobs": None})
        if g.error:
            meta = {**meta, "error": g.error}
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": meta["model"], "choices": choices, "usage": _usage(gens), "kit": meta}


async def _stream(request: Request, rid: str, body: Any, gens: list[Generation], meta: dict[str, Any], chat: bool,
                  finish: Any) -> AsyncIterator[bytes]:
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    texts = ["" for _ in gens]

    async def pump(i: int, g: Generation) -> None:
        async for c in g.chunks():
            await queue.put((i, c))

    def event(i: int, text: str | None, finish_reason: str | None, first: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": i, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        else:
            choice = {"index": i, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
        data: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": meta["model"],
                                "choices": [choice]}
        if first or finish_reason:
            data["kit"] = meta
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(gens)]
    status = "ok"
    try:
        for i in range(len(gens)):
            yield event(i, None, None, first=True)
        remaining = len(gens)
        while remaining:
            i, c = await queue.get()
            if c.text:
                texts[i] += c.text
                yield event(i, c.text, None)
            if c.finish_reason is not None:
                remaining -= 1
                if c.error:
                    status = "error"
                    err = {"error": {"message": c.error, "type": "engine_error"}}
                    yield b"data: " + json.dumps(err).encode() + b"\n\n"
                yield event(i, None, _finish_reason(gens[i]))
        if getattr(body, "stream_options", None) and body.stream_options.include_usage:
            data = {"id": rid, "object": obj, "created": created, "model": meta["model"], "choices": [],
                    "usage": _usage(gens)}
            yield b"data: " + json.dumps(data).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        status = "cancelled"
        raise
    finally:
        for g in gens:
            g.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.shield(run_in_threadpool(finish, texts, status))


def run_server(settings: Settings) -> None:
    """Load the model, open the stores and serve until interrupted."""
    import os

    import uvicorn

    from kit.gateway_state import open_state, start_maintenance
    from kit.runtime import load_engine

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    settings.require_purpose()
    settings.check_engine_contract()
    state = open_state(settings)
    engine = load_engine(settings)
    app = create_app(settings, engine, state)
    stop = start_maintenance(state, settings)
    from kit.privacy import get_detector

    get_detector()  # load the personal-data models before the first request
    try:
        uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=5)
    finally:
        stop.set()
        engine.close()
        state.close()
