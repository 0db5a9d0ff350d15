"""Shaping engine output as OpenAI responses: a whole response, or a server-sent-event stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from kit.engine.base import Generation


def finish_reason(g: Generation) -> str:
    return "stop" if g.finish_reason == "stop" else "length"


def usage(gens: list[Generation]) -> dict[str, int]:
    prompt = gens[0].prompt_tokens if gens else 0
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def response(rid: str, body: Any, gens: list[Generation], texts: list[str], meta: dict[str, Any],
              chat: bool) -> dict[str, Any]:
    choices = []
    for i, (g, text) in enumerate(zip(gens, texts, strict=True)):
        if chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": finish_reason(g), "logprobs": None})
        else:
            choices.append({"index": i, "text": text, "finish_reason": finish_reason(g), "logprobs": None})
        if g.error:
            meta = {**meta, "error": g.error}
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": meta["model"], "choices": choices, "usage": usage(gens), "kit": meta}


async def stream(rid: str, body: Any, gens: list[Generation], meta: dict[str, Any], chat: bool,
                 finish: Callable[[list[str], str], None]) -> AsyncIterator[bytes]:
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

    async def merged() -> AsyncIterator[tuple[int, Any]]:
        if len(gens) == 1:  # the usual case: read the generation itself, one hop less per token
            async for c in gens[0].chunks():
                yield 0, c
            return
        while True:
            yield await queue.get()

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(gens)] if len(gens) > 1 else []
    status = "ok"
    try:
        for i in range(len(gens)):
            yield event(i, None, None, first=True)
        remaining = len(gens)
        source = merged()
        while remaining:
            i, c = await anext(source)
            if c.text:
                texts[i] += c.text
                yield event(i, c.text, None)
            if c.finish_reason is not None:
                remaining -= 1
                if c.error:
                    status = "error"
                    err = {"error": {"message": c.error, "type": "engine_error"}}
                    yield b"data: " + json.dumps(err).encode() + b"\n\n"
                yield event(i, None, finish_reason(gens[i]))
        if getattr(body, "stream_options", None) and body.stream_options.include_usage:
            data = {"id": rid, "object": obj, "created": created, "model": meta["model"], "choices": [],
                    "usage": usage(gens)}
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
