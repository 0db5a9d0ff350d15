"""Reading a document upload: the body is counted while it arrives, with or without a Content-Length
(chunked transfer), and refused past ``ui.max_upload_bytes`` before it is all read; the groups and the
collection are checked before any file is written; the files go to a private temporary folder, removed
whatever happens, and the messages name each file as it was uploaded, never that folder."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import Message

from kit.errors import BodyTooLargeError
from kit.storage.names import check_name

DRAIN_BYTES = 8 * 2**20  # past the limit, read (and drop) this much more, so that the client gets the 413


def too_large(size: str, limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"the upload has {size} bytes; the limit is {limit} (ui.max_upload_bytes): send smaller or fewer files. "
        f"/ L'envoi compte {size} octets ; la limite est de {limit} octets (ui.max_upload_bytes) : envoyez des "
        "fichiers plus petits ou moins nombreux.")


def bounded(request: Request, limit: int) -> Request:
    """The request, whose body reading raises BodyTooLargeError as soon as more than ``limit`` bytes arrived."""
    received = 0
    source = request.receive

    async def receive() -> Message:
        nonlocal received
        message = await source()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                drained = 0
                while message.get("more_body") and drained < DRAIN_BYTES:
                    message = await source()
                    drained += len(message.get("body", b""))
                raise too_large(f"more than {limit}" if message.get("more_body") else str(received + drained), limit)
        return message

    return Request(request.scope, receive)


async def read_form(request: Request, limit: int) -> FormData:
    """The multipart form of an upload of at most ``limit`` bytes (413 above, announced or not)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(length, limit)
    return await bounded(request, limit).form(max_files=50, max_fields=100)


def checked_names(groups: list[str], collection: str) -> tuple[list[str], str]:
    """The upload's groups and collection, or UsageError (400) naming the field that is not valid."""
    return [check_name("group", g) for g in groups], check_name("collection", collection)


@asynccontextmanager
async def saved(form: FormData) -> AsyncIterator[list[tuple[Path, str]]]:
    """The form's files written to a private temporary folder, as (path, uploaded name); the folder is removed
    when the block ends, however it ends."""
    work = Path(tempfile.mkdtemp(prefix="kit-upload-"))
    try:
        items: list[tuple[Path, str]] = []
        for n, part in enumerate(form.getlist("file")):
            if isinstance(part, str) or not getattr(part, "filename", None):
                continue
            name = Path(str(part.filename)).name or f"upload-{n}"
            path = work / f"{n}-{name}"
            path.write_bytes(await part.read())
            items.append((path, name))
        yield items
    finally:
        shutil.rmtree(work, ignore_errors=True)
        await form.close()
