"""Documents through the API: list, search (need-to-know: the caller's groups filter inside the
search), upload and removal for administrators, and the retrieval step of a chat with documents.
Every excerpt a caller or the model gets has passed the personal-data policy (:mod:`kit.gateway.excerpts`)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.docs.errors import DocumentNotFoundError
from kit.docs.index import DocIndex, open_index
from kit.docs.ingest import DEFAULT_COLLECTION, ingest, list_documents, remove
from kit.docs.prompt import DocumentContext, render
from kit.docs.retrieve import search
from kit.docs.text import guess_language
from kit.gateway.context import Context
from kit.gateway.errors import BodyTooLarge, NotFound
from kit.gateway.excerpts import police
from kit.gateway.schemas import DocumentSearch
from kit.rules.audit import AuditEvent
from kit.rules.policy import Identity


class Documents:
    """The gateway's one document index, opened on first use (Chroma and the embedding model load then)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._index: DocIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> DocIndex:
        with self._lock:
            if self._index is None:
                self._index = open_index(self.ctx.settings)
            return self._index

    def groups(self, ident: Identity) -> list[str]:
        return list(ident.groups)

    def context(self, ident: Identity, question: str, collection: str | None) -> DocumentContext:
        """Retrieve for the last user message, apply the personal-data policy to the excerpts, and render the
        quoted block and the sources."""
        results = search(question, self.ctx.settings.rag.top_k, self.groups(ident), collection,
                         self.ctx.settings, index=self.index())
        policed = police(self.ctx.gate, results)
        lang = guess_language(question) or self.ctx.settings.ui.default_language
        found = render(policed.results, "en" if lang == "en" else "fr", len(policed.withheld), policed.blocked)
        found.personal_data = policed.to_dict()
        return found

    def search(self, ident: Identity, query: str, k: int, collection: str | None) -> dict[str, Any]:
        """``POST /v1/documents/search``: the contract of ``kit docs search --json``, each excerpt through the
        personal-data policy, and ``personal_data`` saying what it found and withheld."""
        started = time.perf_counter()
        results = search(query, k, self.groups(ident), collection, self.ctx.settings, index=self.index())
        policed = police(self.ctx.gate, results)
        return {"results": [r.to_dict() for r in policed.results], "seconds": round(time.perf_counter() - started, 4),
                "personal_data": policed.to_dict()}

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    docs = ctx.documents

    @api.get("/v1/documents")
    async def documents(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        groups = None if ident.role == "admin" else docs.groups(ident)
        rows = await run_in_threadpool(list_documents, ctx.settings, groups=groups, index=docs.index())
        return {"data": [r.to_dict() for r in rows]}

    @api.post("/v1/documents/search")
    async def document_search(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = DocumentSearch.model_validate(await ctx.body(request))
        return await run_in_threadpool(docs.search, ident, req.query, req.k, req.collection)

    @api.post("/v1/documents")
    async def upload(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin")
        limit = ctx.settings.ui.max_upload_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise BodyTooLarge(f"the upload has {length} bytes; the limit is {limit} (ui.max_upload_bytes).")
        form = await request.form(max_files=50, max_fields=100)
        groups = [str(g) for g in form.getlist("group")]
        collection = str(form.get("collection") or DEFAULT_COLLECTION)
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
            report = await run_in_threadpool(ingest, items, groups, collection, ctx.settings, index=docs.index())
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for doc_id in report.documents:
            await run_in_threadpool(ctx.state.audit.record, AuditEvent(
                action="document_ingested", user=ident.user, doc_ids=[doc_id], detail={"collection": collection}))
        return report.to_dict()

    @api.delete("/v1/documents/{doc_id}")
    async def delete(doc_id: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin")
        try:
            removed = await run_in_threadpool(remove, doc_id, ctx.settings, index=docs.index())
        except DocumentNotFoundError:
            raise NotFound(f"no document {doc_id}: GET /v1/documents lists them.") from None
        ids = [r.id for r in removed]
        await run_in_threadpool(ctx.state.audit.record, AuditEvent(action="document_removed", user=ident.user,
                                                                   doc_ids=ids))
        return {"removed": ids}

    return api
