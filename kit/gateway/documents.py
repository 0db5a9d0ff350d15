"""Documents through the API: list, search (need-to-know: the caller's groups filter inside the
search), upload and removal for administrators, and the retrieval step of a chat with documents.
Every excerpt a caller or the model gets has passed the personal-data policy (:mod:`kit.gateway.excerpts`)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.audit import AuditEvent
from kit.documents.index import DocIndex, open_index
from kit.documents.ingest import DEFAULT_COLLECTION, document_register, ingest, list_documents, remove
from kit.documents.prompt import DocumentContext, render
from kit.documents.retrieve import SearchResult, search
from kit.documents.text import guess_language
from kit.errors import DocumentNotFoundError, NotFoundError, UsageError
from kit.gateway import uploads
from kit.gateway.context import Context
from kit.gateway.excerpts import police
from kit.gateway.schemas import DocumentSearch
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

    def context(self, ident: Identity, question: str, collection: str | None, before: str = "",
                sources: list[str] | None = None) -> DocumentContext:
        """Retrieve for the last user message (with the earlier ones, ``before``, for a follow-up), or take the
        excerpts ``sources`` names (a follow-up on the same sources), apply the personal-data policy to the
        excerpts, and render the quoted block and the sources."""
        results = self.pinned(ident, sources, collection) if sources else []
        if not results:
            results = search(question, self.ctx.settings.rag.top_k, self.groups(ident), collection,
                             self.ctx.settings, index=self.index(), context=before)
        policed = police(self.ctx.gate, results, self.index().scans)
        lang = guess_language(question) or self.ctx.settings.ui.default_language
        found = render(policed.results, "en" if lang == "en" else "fr", len(policed.withheld), policed.blocked)
        found.personal_data = policed.to_dict()
        return found

    def pinned(self, ident: Identity, sources: list[str], collection: str | None) -> list[SearchResult]:
        """The excerpts named ``document_id:chunk_index``, in the order given, among those the caller's groups
        may read in ready documents (the others are left out, as a search would never have shown them)."""
        keys = list(dict.fromkeys((doc, int(index)) for doc, _, index in (s.rpartition(":") for s in sources)))
        rows = self.index().catalog.chunks_by_key(keys, collection, self.groups(ident))
        return [SearchResult(row.source, row.page, " > ".join(row.heading), 1.0, row.text, row.doc_id,
                             row.chunk_index) for row in (rows.get(key) for key in keys) if row is not None]

    def search(self, ident: Identity, query: str, k: int, collection: str | None) -> dict[str, Any]:
        """``POST /v1/documents/search``: the contract of ``kit docs search --json``, each excerpt through the
        personal-data policy, and ``personal_data`` saying what it found and withheld."""
        started = time.perf_counter()
        results = search(query, k, self.groups(ident), collection, self.ctx.settings, index=self.index())
        policed = police(self.ctx.gate, results, self.index().scans)
        return {"results": [r.to_dict() for r in policed.results], "seconds": round(time.perf_counter() - started, 4),
                "personal_data": policed.to_dict()}

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None


def search_event(ctx: Context, ident: Identity, req: DocumentSearch, found: dict[str, Any],
                 started: float) -> AuditEvent:
    """The audit row of a search: the documents and excerpts returned (ids), how many; the query only where
    the policy logs prompts; the personal-data categories found in the excerpts and how many were withheld."""
    results, personal = found["results"], found.get("personal_data") or {}
    text = json.dumps({"query": req.query}, ensure_ascii=False) if ctx.settings.policy.log_prompt_text else None
    return AuditEvent(
        action="document_search", user=ident.user, pii_categories=list(personal.get("categories") or []),
        doc_ids=sorted({str(r["document_id"]) for r in results}),
        latency_ms=int(1000 * (time.perf_counter() - started)), text=text,
        detail={"via": ident.via, "results": len(results), "k": req.k, "collection": req.collection or "",
                "excerpts": ",".join(f"{r['document_id']}:{r['chunk_index']}" for r in results),
                "excerpts_withheld": len(personal.get("withheld") or [])})


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    docs = ctx.documents

    @api.get("/v1/documents")
    async def documents(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        groups = None if ident.role == "admin" else docs.groups(ident)
        rows = await run_in_threadpool(list_documents, ctx.settings, groups=groups, index=docs.index())
        await ctx.audit_async(ident, "document_list", via=ident.via, documents=len(rows))
        return {"data": [r.to_dict() for r in rows]}

    @api.post("/v1/documents/search")
    async def document_search(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        req = DocumentSearch.model_validate(await ctx.body(request))
        ctx.gate.require_open_and_acknowledged(ident)  # excerpts are read as a chat reads them
        await ctx.count_request(ident, "document_search")
        started = time.perf_counter()
        found = await run_in_threadpool(docs.search, ident, req.query, req.k, req.collection)
        await run_in_threadpool(ctx.state.audit.record, search_event(ctx, ident, req, found, started))
        return found

    @api.post("/v1/documents")
    async def upload(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin")
        form = await uploads.read_form(request, ctx.settings.ui.max_upload_bytes)
        try:
            groups, collection = uploads.checked_names([str(g) for g in form.getlist("group")],
                                                       str(form.get("collection") or DEFAULT_COLLECTION))
        except UsageError:
            await form.close()
            raise
        async with uploads.saved(form) as items:
            report = await run_in_threadpool(ingest, items, groups, collection, ctx.settings, index=docs.index())
        for doc_id in report.documents:
            await run_in_threadpool(ctx.state.audit.record, AuditEvent(
                action="document_ingested", user=ident.user, doc_ids=[doc_id], detail={"collection": collection}))
        return report.to_dict()

    @api.get("/v1/admin/documents/register")
    async def register(request: Request) -> dict[str, Any]:
        """Every version of every document indexed, removed ones included for the audit's retention: where the
        document id of an audit row leads."""
        ident = await ctx.identify(request)
        ident.require("admin", "auditor")
        entries = await run_in_threadpool(document_register, ctx.settings, index=docs.index())
        return {"retention_days": ctx.settings.policy.audit_retention_days, "data": [e.to_dict() for e in entries]}

    @api.delete("/v1/documents/{doc_id}")
    async def delete(doc_id: str, request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        ident.require("admin")
        try:
            removed = await run_in_threadpool(remove, doc_id, ctx.settings, index=docs.index())
        except DocumentNotFoundError:
            raise NotFoundError(f"no document {doc_id}: GET /v1/documents lists them.") from None
        ids = [r.id for r in removed]
        await run_in_threadpool(ctx.state.audit.record, AuditEvent(action="document_removed", user=ident.user,
                                                                   doc_ids=ids))
        return {"removed": ids}

    return api
