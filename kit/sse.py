"""Server-sent events, the wire format of streamed OpenAI answers: written here by the servers, read here by
every client (the remote engine, the browser chat, the benchmarks). Imports nothing of kit: every layer,
the browser chat included, may use it.

An event is a ``data: <json>`` line and a blank line; the stream ends with ``data: [DONE]``. The space
after the colon is optional, lines of other fields (``event:``, ``id:``) and comments (``:``) carry no data.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Final

DONE: Final = object()  # what :func:`parse` returns for the end of the stream
DONE_EVENT: Final = b"data: [DONE]\n\n"


def encode(data: Any, *, ensure_ascii: bool = False) -> bytes:
    """One event carrying ``data`` as JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=ensure_ascii).encode() + b"\n\n"


def parse(line: str) -> Any:
    """What one line of a stream carries: None for a line without data, :data:`DONE` for the end, else the
    decoded JSON (``ValueError`` when it is not JSON)."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return DONE
    return json.loads(data)


def events(lines: Iterable[str], *, skip_invalid: bool = False) -> Iterator[Any]:
    """The events of a stream's lines, up to its end; a line that is not JSON raises ``ValueError``, or is
    skipped with ``skip_invalid``."""
    for line in lines:
        try:
            event = parse(line)
        except ValueError:
            if skip_invalid:
                continue
            raise
        if event is DONE:
            return
        if event is not None:
            yield event


async def aevents(lines: AsyncIterable[str]) -> AsyncIterator[Any]:
    """:func:`events` of an asynchronous stream."""
    async for line in lines:
        event = parse(line)
        if event is DONE:
            return
        if event is not None:
            yield event
