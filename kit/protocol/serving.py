"""The work every generation route shares, with or without the usage rules: the engine's sampling parameters
for a request, queueing its n generations, reading them whole, the streamed response that cleans up however
it ends, and the route class that announces each request to the engine before its checks run."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from kit.engine import gather
from kit.engine.base import Engine, Generation, SamplingParams
from kit.errors import KitError
from kit.protocol.schemas import ChatRequest, CompletionRequest

STREAM_HEADERS = {"Cache-Control": "no-cache"}


class ClosingStream(StreamingResponse):
    """A streamed answer that calls `on_close`, then `after` in a worker thread, once the response is over,
    however it ends: also when the client left before the first byte, so that the event generator, and its
    own cleanup, never ran. The response is complete on the wire before `after` runs (the audit row's
    write waits for the disk): the client reads the end of the answer, and may send its next request on the
    same connection, without waiting for it."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None],
                 after: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
            if self.after is not None:
                await asyncio.shield(run_in_threadpool(self.after))


def announcing(engine: Engine) -> type[APIRoute]:
    """The class of the generation routes: each request is announced to ``engine`` (if it gathers, see
    kit.engine.gather) as soon as it arrives, before its dependencies (the caller, the body) are read, until
    its handler returns or it leaves the fast path."""

    class AnnouncedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def announced(request: Request) -> Response:
                async with gather.announce(engine, request.scope):
                    return await handler(request)

            return announced

    return AnnouncedRoute


def response_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


def sampling_params(body: ChatRequest | CompletionRequest, max_tokens_default: int, timeout_s: float,
                    owner: str | None = None) -> SamplingParams:
    """The engine's sampling parameters for an OpenAI request. ``owner`` (by default the request's ``user``)
    is who the engine shares its sequences by: the gateway names its caller instead."""
    return SamplingParams(
        max_tokens=body.wanted_tokens(max_tokens_default), temperature=body.temperature, top_p=body.top_p,
        top_k=body.top_k, min_p=body.min_p, repeat_penalty=body.repeat_penalty,
        frequency_penalty=body.frequency_penalty, presence_penalty=body.presence_penalty, seed=body.seed,
        stop=body.stops(), timeout_s=timeout_s, ignore_eos=body.ignore_eos,
        owner=body.user if owner is None else owner)


async def submit_all(engine: Engine, n: int, params: SamplingParams, messages: list[dict[str, Any]],
                     prompt: str | None = None, *, route: str | None = None) -> list[Generation]:
    """Queue ``n`` generations (a chat, or the raw ``prompt`` when given), seeds following each other; all
    are cancelled if one is refused. ``route`` names the conversation (an engine pool keeps its turns on
    one engine)."""
    loop = asyncio.get_running_loop()
    gens: list[Generation] = []
    try:
        for i in range(n):
            p = params if params.seed is None else SamplingParams(**{**vars(params), "seed": params.seed + i})
            if prompt is None:
                call = functools.partial(engine.submit_chat, messages, p, loop, route=route)
            else:
                call = functools.partial(engine.submit_completion, prompt, p, loop, route=route)
            # the in-process engine renders, tokenizes and queues in C without waiting on anything: a hop
            # to a worker thread would cost more than the call (a remote engine or a pool may wait on the network)
            gens.append(call() if engine.submits_at_once else await run_in_threadpool(call))
    except KitError:
        for g in gens:
            g.cancel()
        raise
    return gens


def ended(gens: list[Generation]) -> str:
    """The audit status of a whole answer: ``error``, ``cancelled`` (the client left, or the server stopped it) or
    ``ok``."""
    if any(g.error for g in gens):
        return "error"
    return "cancelled" if any(g.finish_reason == "cancelled" for g in gens) else "ok"


async def collect(request: Request, gens: list[Generation]) -> list[str]:
    """Whole texts of the generations; cancels them if the client goes away."""
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
