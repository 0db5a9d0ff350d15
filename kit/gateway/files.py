"""The files API (OpenAI's shapes): ``POST /v1/files`` (multipart ``file``, ``purpose=user_data``), ``GET
/v1/files``, ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (the extracted text, after the personal-data
policy) and ``DELETE /v1/files/{id}``. A file is its sender's alone: anyone else gets 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from kit.errors import UsageError
from kit.gateway.attachments import Files, too_large
from kit.gateway.context import Context
from kit.gateway.uploads import bounded

FORM_OVERHEAD = 64 * 1024  # the multipart envelope around the file


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    files = Files(ctx)

    @api.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        await run_in_threadpool(ctx.gate.require_open_and_acknowledged, ident)  # as for a message
        await ctx.count_request(ident, "file_upload")
        limit = ctx.settings.attachments.max_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit + FORM_OVERHEAD:
            raise too_large("the upload", int(length), limit)
        form = await bounded(request, limit + FORM_OVERHEAD).form(max_files=1, max_fields=10)
        try:
            part = form.get("file")
            purpose = str(form.get("purpose") or "user_data")
            if part is None or isinstance(part, str):
                raise UsageError("send the file as the multipart field 'file' (and purpose=user_data). / Envoyez le "
                                 "fichier dans le champ 'file'.")
            if purpose not in ("user_data", "assistants"):
                raise UsageError(f"purpose {purpose!r} is not handled here: use purpose=user_data.")
            data = await part.read()
            name = str(part.filename or "file")
        finally:
            await form.close()
        item = await run_in_threadpool(files.read, ident, name, data, purpose)
        files.count(item)
        await run_in_threadpool(files.keep, ident, item)
        return item.describe()

    @api.get("/v1/files")
    async def list_files(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        items = await run_in_threadpool(files.store.list, ident.user)
        return {"object": "list", "data": [i.describe() for i in items]}

    @api.get("/v1/files/{file_id}")
    async def get_file(file_id: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        return (await run_in_threadpool(files.owned, ident, file_id)).describe()

    @api.get("/v1/files/{file_id}/content")
    async def content(file_id: str, request: Request) -> PlainTextResponse:
        ident = await ctx.identify(request)
        item = await run_in_threadpool(files.owned, ident, file_id)
        return PlainTextResponse(item.text)

    @api.delete("/v1/files/{file_id}")
    async def delete(file_id: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        await run_in_threadpool(files.owned, ident, file_id)
        await run_in_threadpool(files.store.delete, ident.user, file_id)
        await ctx.audit_async(ident, "file_delete", file_id=file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    return api
