"""Shaping engine output as OpenAI responses: a whole response, or a server-sent-event stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kit.engine.base import Chunk, Generation
from kit.sse import DONE_EVENT, encode

_MARK = "kit-text-7f3a"  # where an event's text goes in the envelope encoded once per choice


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


@dataclass
class StreamEnd:
    """How a stream ended: the texts sent, and ``ok``, ``error`` or ``cancelled`` (also when it never began)."""

    texts: list[str] = field(default_factory=list)
    status: str = "cancelled"


class Events:
    """The events of one streamed answer. A chunk of text only (nearly every event) reuses an envelope encoded
    once per choice: the text's JSON goes between its two halves."""

    def __init__(self, rid: str, meta: dict[str, Any], chat: bool) -> None:
        self.rid, self.meta, self.chat = rid, meta, chat
        self.created = int(time.time())
        self.obj = "chat.completion.chunk" if chat else "text_completion"
        self._templates: dict[int, tuple[bytes, bytes]] = {}

    def text(self, i: int, text: str) -> bytes:
        template = self._templates.get(i)
        if template is None:
            head, _, tail = self.event(i, _MARK, None).partition(json.dumps(_MARK).encode())
            template = self._templates[i] = (head, tail)
        return template[0] + json.dumps(text, ensure_ascii=False).encode() + template[1]

    def event(self, i: int, text: str | None, finish_reason: str | None, first: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": i, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        else:
            choice = {"index": i, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
        data: dict[str, Any] = {"id": self.rid, "object": self.obj, "created": self.created,
                                "model": self.meta["model"], "choices": [choice]}
        if first or finish_reason:
            data["kit"] = self.meta
        return encode(data)

    def usage(self, gens: list[Generation]) -> bytes:
        return encode({"id": self.rid, "object": self.obj, "created": self.created, "model": self.meta["model"],
                       "choices": [], "usage": usage(gens)}, ensure_ascii=True)


async def _merged(gens: list[Generation], queue: asyncio.Queue[tuple[int, Chunk]]) -> AsyncIterator[tuple[int, Chunk]]:
    """Every generation's chunks, as they come: (choice, chunk)."""
    if len(gens) == 1:  # the usual case: read the generation itself, one hop less per token
        async for c in gens[0].chunks():
            yield 0, c
        return
    while True:
        yield await queue.get()


async def stream(rid: str, body: Any, gens: list[Generation], meta: dict[str, Any], chat: bool,
                 end: StreamEnd) -> AsyncIterator[bytes]:
    """The answer as server-sent events; ``end`` tells how it ended, for the work that follows (the audit
    row, the stored turn), done once the response is complete (see kit.protocol.serving.ClosingStream): the
    client reads the end of the response without waiting for it."""
    events = Events(rid, meta, chat)
    queue: asyncio.Queue[tuple[int, Chunk]] = asyncio.Queue()
    texts = end.texts = ["" for _ in gens]

    async def pump(i: int, g: Generation) -> None:
        async for c in g.chunks():
            await queue.put((i, c))

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(gens)] if len(gens) > 1 else []
    status = "ok"
    try:
        for i in range(len(gens)):
            yield events.event(i, None, None, first=True)
        remaining = len(gens)
        source = _merged(gens, queue)
        while remaining:
            i, c = await anext(source)
            if c.text:
                texts[i] += c.text
                yield events.text(i, c.text)
            if c.finish_reason is not None:
                remaining -= 1
                if c.error:
                    status = "error"
                elif c.finish_reason == "cancelled" and status == "ok":
                    status = "cancelled"
                    yield encode({"error": {"message": c.error, "type": "engine_error"}}, ensure_ascii=True)
                yield events.event(i, None, finish_reason(gens[i]))
        if getattr(body, "stream_options", None) and body.stream_options.include_usage:
            yield events.usage(gens)
        yield DONE_EVENT
    except (asyncio.CancelledError, GeneratorExit):
        status = "cancelled"
        raise
    finally:
        end.status = status
        for g in gens:
            g.cancel()
        for t in tasks:
            t.cancel()
