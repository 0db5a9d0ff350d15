"""Chat and text completions under the usage rules: size limits, the charter and chat-open checks, the abuse
limits, personal data, documents, then the engine and the response (whole or streamed, shaped by
``kit.protocol``), the audit row and the stored turn."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kit.audit import AuditEvent
from kit.documents.prompt import DocumentContext, with_documents
from kit.engine import gather
from kit.engine.base import Generation
from kit.errors import (
    BodyTooLargeError,
    ChatClosedError,
    ContextOverflowError,
    KitError,
    LimitExceededError,
    ModelNotFoundError,
    PiiBlockedError,
    PolicyError,
    QueueFullError,
)
from kit.gateway import tasks
from kit.gateway.attachments import Attached, Files, language
from kit.gateway.context import Context
from kit.gateway.excerpts import with_excerpts
from kit.protocol.responses import StreamEnd, response, stream
from kit.protocol.schemas import ChatRequest, CompletionRequest
from kit.protocol.serving import (
    STREAM_HEADERS,
    ClosingStream,
    announcing,
    collect,
    ended,
    response_id,
    sampling_params,
    submit_all,
)
from kit.rules.limits import Ticket
from kit.rules.policy import ChatOutcome, Identity
from kit.storage.attachments import Attachment


class Completions:
    """One request from its checks to its audit row."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.files = Files(ctx)

    def check(self, body: ChatRequest | CompletionRequest, messages: list[dict[str, Any]]) -> None:
        engine = self.ctx.engine
        if body.model and body.model != engine.model_name:
            raise ModelNotFoundError(f"model '{body.model}' is not served here; "
                                     f"GET /v1/models lists '{engine.model_name}'.")
        limit = self.ctx.settings.policy.max_prompt_chars
        for i, m in enumerate(messages):
            if len(m["content"]) > limit:
                raise BodyTooLargeError(f"message {i} has {len(m['content'])} characters; the limit is {limit} "
                                   "(policy.max_prompt_chars): shorten it.")

    async def generate(self, request: Request, ident: Identity, body: ChatRequest | CompletionRequest,
                       messages: list[dict[str, Any]], raw_prompt: str | None) -> Response:
        """The checks, admission under the abuse limits, the answer; then the limits release the request's
        generations and charge their tokens, once the answer or its stream is over, however it ends."""
        self.check(body, messages)
        action = "chat" if raw_prompt is None else "completion"
        await self.require_open(ident, action)
        ticket = await self.admit(ident, body, action)
        gens: list[Generation] = []

        def close() -> None:
            for g in gens:
                g.cancel()  # no-op for a finished generation; frees the engine when the client left early
            self.ctx.limiter.finish(ticket, sum(g.completion_tokens for g in gens))

        streaming = False
        try:
            result = await self.answer(request, ident, body, messages, raw_prompt, gens, close)
            streaming = isinstance(result, ClosingStream)
            return result
        finally:
            if not streaming:
                close()

    async def require_open(self, ident: Identity, action: str) -> None:
        """The chat is open and the caller acknowledged the charter; otherwise an audit row (status ``refused``,
        reason ``closed`` or ``charter``: the usage figures count them) and the refusal."""
        try:
            self.ctx.gate.require_open_and_acknowledged(ident)
        except PolicyError as exc:
            reason = "closed" if isinstance(exc, ChatClosedError) else "charter"
            await run_in_threadpool(self.ctx.state.audit.record, AuditEvent(
                action=action, user=ident.user, model=self.ctx.engine.model_name, status="refused",
                detail={"via": ident.via, "reason": reason}))
            raise

    async def admit(self, ident: Identity, body: ChatRequest | CompletionRequest, action: str) -> Ticket:
        limiter = self.ctx.limiter
        try:
            if limiter.shared:  # Redis: a network round trip, off the event loop
                return await gather.in_thread(limiter.admit, ident.user, ident.via, ident.role, body.n)
            return limiter.admit(ident.user, ident.via, ident.role, body.n)
        except LimitExceededError as exc:
            self.ctx.metrics.requests.labels(action, "429").inc()
            await run_in_threadpool(self.ctx.state.audit.record, AuditEvent(
                action=action, user=ident.user, model=self.ctx.engine.model_name, status="limited",
                detail={"via": ident.via, "limit": exc.limit, "n": body.n}))
            raise

    async def answer(self, request: Request, ident: Identity, body: ChatRequest | CompletionRequest,
                     messages: list[dict[str, Any]], raw_prompt: str | None, gens: list[Generation],
                     close: Callable[[], None]) -> Response:
        ctx, metrics = self.ctx, self.ctx.metrics
        started = time.perf_counter()
        outcome = ctx.gate.apply_pii_remembered(messages, ident)  # all scanned before: no thread hop
        early = None
        if outcome is None:  # a scan in a worker thread: the engine does not wait for this request
            early = self.early_retrieve(ident, body, messages)  # the document search meanwhile
            outcome = await gather.in_thread(ctx.gate.apply_pii, messages, ident)
        action = "chat" if raw_prompt is None else "completion"
        if outcome.blocked:
            await run_in_threadpool(self.audit, ident, action, outcome, [], started, "blocked")  # names them
            metrics.requests.labels(action, "422").inc()
            raise PiiBlockedError(
                "the message holds personal data that the policy blocks: " + ", ".join(outcome.blocked)
                + ". Remove it (or replace it with a neutral placeholder) and send again;"
                " nothing was sent to the model."
            )
        files = await self.files.resolve(ident, body) if isinstance(body, ChatRequest) else []
        if isinstance(body, ChatRequest) and body.kit is not None and body.kit.task:
            return await self.task(request, ident, body, outcome, files, gens, close, started)
        docs = await self.retrieve(ident, body, outcome, early if outcome.messages == messages else None)
        sent = outcome
        if docs is not None:  # the excerpts go to the model as quoted material; history and audit keep the question
            outcome = with_excerpts(outcome, docs.personal_data)  # their categories too: response and audit row
            sent = dataclasses.replace(outcome, messages=with_documents(outcome.messages, docs))
        attached = None
        if files:  # the files too, whole or their most relevant passages, as quoted material
            budget = self.files.budget(sent.messages, body.wanted_tokens(ctx.settings.server.max_tokens_default))
            quoted, attached = self.files.quote(files, sent.messages, budget, language(outcome.messages))
            sent = dataclasses.replace(sent, messages=quoted)
        file_ids = [f.id for f in files]
        try:
            gens.extend(await self.submit(ident, body, sent, raw_prompt, action))
        except (ContextOverflowError, QueueFullError) as exc:  # refused before any generation: still audited
            reason = "context_overflow" if isinstance(exc, ContextOverflowError) else "queue_full"
            await run_in_threadpool(self.audit, ident, action, outcome, [], started, "refused",
                                    docs.document_ids if docs else [], reason, files=file_ids)
            raise
        meta = self.meta(outcome, attached)
        if docs is not None:
            meta["sources"] = docs.sources  # [] when nothing passed the relevance threshold: "no source found"
            meta["personal_data"]["sources"] = docs.personal_data
        rid = response_id(raw_prompt is None)

        def finish(texts: list[str], status: str) -> None:
            for g in gens:
                metrics.observe(g)
            self.audit(ident, action, outcome, gens, started, status, docs.document_ids if docs else [],
                       excerpts=(docs.personal_data or {}) if docs else None, files=file_ids, answer_id=rid)
            if raw_prompt is None and isinstance(body, ChatRequest) and body.conversation_id:
                kept: dict[str, Any] = {"answer_id": rid, "documents": docs is not None,
                                        "finish": (gens[0].finish_reason if gens else None) or status}
                if docs is not None:  # the excerpts as the model read them (through the personal-data policy)
                    kept["sources"] = docs.sources
                if outcome.masked:
                    kept["masked"] = outcome.masked
                if attached:  # the files used and their pages (ids and names: the user's own, deleted with them)
                    kept["attachments"] = attached.describe()
                self.store_turn(ident, body.conversation_id, outcome, texts[0] if texts else "", kept)
            metrics.requests.labels(action, "200" if status == "ok" else status).inc()

        if body.stream:
            end = StreamEnd()
            events = stream(rid, body, gens, meta, raw_prompt is None, end)
            return ClosingStream(events, close, lambda: finish(end.texts, end.status),
                                 media_type="text/event-stream",
                                 headers={**STREAM_HEADERS, "X-Accel-Buffering": "no"})
        texts = await collect(request, gens)
        await run_in_threadpool(finish, texts, ended(gens))
        return JSONResponse(response(rid, body, gens, texts, meta, raw_prompt is None))

    def meta(self, outcome: ChatOutcome, attached: Attached | None) -> dict[str, Any]:
        """The response's ``kit`` object: the AI label, the model, the charter, personal data, attachments."""
        engine = self.ctx.engine
        meta: dict[str, Any] = {
            "ai_generated": True, "model": engine.model_name, "model_sha256": engine.model_sha256,
            "charter_version": self.ctx.gate.charter["version"],
            "personal_data": {"categories": outcome.categories, "actions": outcome.actions,
                              "masked": outcome.masked, "warned": outcome.warned}}
        if attached is not None:
            meta["attachments"] = attached.describe()
            found = sorted({c for f in attached.files for c in f.personal_data.get("categories", [])})
            meta["personal_data"]["attachments"] = found
        if outcome.masked:
            meta["sent_to_model"] = [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]
        return meta

    async def task(self, request: Request, ident: Identity, body: ChatRequest, outcome: ChatOutcome,
                   files: list[Attachment], gens: list[Generation], close: Callable[[], None],
                   started: float) -> Response:
        """A summary, translation or correction of the files (or the message), section by section."""
        question = next((m["content"] for m in reversed(outcome.messages) if m["role"] == "user"), "")
        job = tasks.job(self.ctx, body, files, question, language(outcome.messages))
        runner = tasks.Runner(self.ctx, body, owner_key(ident), gens)
        meta = self.meta(outcome, Attached(files, job.quoted))
        meta["task"] = {"task": job.task, **({"target_language": job.target} if job.task == "translate" else {})}
        rid, ids = response_id(True), [f.id for f in files]
        quoted = [q.describe() for q in job.quoted] or None

        def finish(texts: list[str], status: str) -> None:
            for g in gens:
                self.ctx.metrics.observe(g)
            self.audit(ident, "chat", outcome, gens, started, status, files=ids, answer_id=rid)
            if body.conversation_id:
                kept: dict[str, Any] = {"answer_id": rid, "documents": False,
                                        "finish": (gens[0].finish_reason if gens else None) or status}
                if quoted:
                    kept["attachments"] = quoted
                if outcome.masked:
                    kept["masked"] = outcome.masked
                self.store_turn(ident, body.conversation_id, outcome, texts[0] if texts else "", kept)
            self.ctx.metrics.requests.labels("chat", "200" if status == "ok" else status).inc()

        if body.stream:
            end = StreamEnd()
            events = tasks.stream(rid, meta, runner.run(job), end, body, gens)
            return ClosingStream(events, close, lambda: finish(end.texts, end.status), media_type="text/event-stream",
                                 headers={**STREAM_HEADERS, "X-Accel-Buffering": "no"})
        steps: list[dict[str, Any]] = []
        text = await tasks.collect(runner.run(job), steps.append)
        meta["progress"] = steps[-1] if steps else None
        await run_in_threadpool(finish, [text], ended(gens))
        return JSONResponse(response(rid, body, gens[-1:], [text], meta, True))

    def early_retrieve(self, ident: Identity, body: ChatRequest | CompletionRequest,
                       messages: list[dict[str, Any]]) -> asyncio.Task[DocumentContext | None] | None:
        """The document search of a request that asked for documents, started on its messages as sent while the
        personal-data scan of those messages runs: its answer is used when the policy leaves the messages as they
        are (nothing masked), and the search is made again on the masked ones otherwise; a blocked request drops
        it. The question never leaves the process either way: the search runs here."""
        options = getattr(body, "kit", None)
        if options is None or not (options.documents or options.sources):
            return None
        task = asyncio.ensure_future(self.retrieve(ident, body, ChatOutcome(messages=list(messages))))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a dropped search's error is not reported
        return task

    async def retrieve(self, ident: Identity, body: ChatRequest | CompletionRequest, outcome: ChatOutcome,
                       early: asyncio.Task[DocumentContext | None] | None = None) -> DocumentContext | None:
        """For `"kit": {"documents": true}`: the excerpts for the last user message that the caller's groups
        may see, as a quoted block; None when the request did not ask for documents. ``early``: the same search,
        started before the scan on the same messages (see :meth:`early_retrieve`)."""
        if early is not None:
            return await early
        options = getattr(body, "kit", None)
        if options is None or not (options.documents or options.sources):
            return None
        from kit.documents.followup import conversation_query

        asked = [m["content"] for m in outcome.messages if m["role"] == "user" and isinstance(m["content"], str)]
        question, before = conversation_query(asked)
        return await gather.in_thread(self.ctx.documents.context, ident, question, options.collection, before,
                                      options.sources)

    async def submit(self, ident: Identity, body: ChatRequest | CompletionRequest, outcome: ChatOutcome,
                     raw_prompt: str | None, action: str) -> list[Generation]:
        """Queue the request's n generations in the engine; all are cancelled if one is refused."""
        srv = self.ctx.settings.server
        params = sampling_params(body, srv.max_tokens_default, srv.request_timeout_s, owner_key(ident))
        text = None if raw_prompt is None else outcome.messages[0]["content"]
        route = body.conversation_id if isinstance(body, ChatRequest) else None  # the conversation, for a pool
        try:
            return await submit_all(self.ctx.engine, body.n, params, outcome.messages, text, route=route)
        except KitError:
            self.ctx.metrics.requests.labels(action, "error").inc()
            raise

    def audit(self, ident: Identity, action: str, outcome: ChatOutcome, gens: list[Generation], started: float,
              status: str, doc_ids: list[str] | None = None, reason: str | None = None,
              excerpts: dict[str, Any] | None = None, files: list[str] | None = None,
              answer_id: str | None = None) -> None:
        settings, engine = self.ctx.settings, self.ctx.engine
        text = None
        if settings.policy.log_prompt_text:
            text = json.dumps({"prompt": [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]},
                              ensure_ascii=False)
        detail: dict[str, Any] = {"n": len(gens) or 1, "via": ident.via,
                                  "finish": ",".join(str(g.finish_reason) for g in gens)}
        if excerpts:  # personal data found in the document excerpts (named in pii_categories too): never their text
            detail["excerpt_pii_categories"] = ",".join(excerpts["categories"])
            detail["excerpts_withheld"] = len(excerpts["withheld"])
        if reason is not None:
            detail["reason"] = reason
        if status == "blocked":  # the categories the policy blocked (pii_categories lists all those found)
            detail["blocked"] = ",".join(outcome.blocked)
        if excerpts is not None:  # documents were asked for: no doc_ids then means no source was found
            detail["documents"] = True
        if files:  # the attached files by id: never their text or name
            detail["file_ids"] = ",".join(files)
        if answer_id is not None:  # what feedback on this answer names
            detail["answer_id"] = answer_id
        self.ctx.state.audit.record(AuditEvent(
            action=action, user=ident.user, model=engine.model_name,
            prompt_tokens=gens[0].prompt_tokens if gens else 0,
            completion_tokens=sum(g.completion_tokens for g in gens),
            latency_ms=int(1000 * (time.perf_counter() - started)),
            pii_categories=outcome.categories, pii_action=outcome.pii_action, status=status,
            doc_ids=list(doc_ids or []), detail=detail, text=text))

    def store_turn(self, ident: Identity, conversation_id: str, outcome: ChatOutcome, answer: str,
                   kept: dict[str, Any]) -> None:
        """The question (as the policy let it through) and the answer, with what reopening it shows again:
        ``kept`` holds its id, how it ended, whether documents were asked for, their sources, what was masked."""
        conv = self.ctx.state.conversations
        if not conv.enabled:
            return
        last_user = [m["content"] for m in outcome.messages if m["role"] == "user"][-1:]
        if conv.get(ident.user, conversation_id) is None:
            return
        if last_user:
            conv.add_message(ident.user, conversation_id, "user", last_user[0])
        meta: dict[str, Any] = {"model": self.ctx.engine.model_name, "ai_generated": True, **kept}
        conv.add_message(ident.user, conversation_id, "assistant", answer, meta)


def owner_key(ident: Identity) -> str:
    """The engine's owner of a caller's requests: a digest of who calls (never the user id itself, which an
    engine elsewhere in a pool would receive)."""
    return hashlib.sha256(f"{ident.via}:{ident.user}".encode()).hexdigest()[:16]


def router(ctx: Context) -> APIRouter:
    """The two generation routes; each declares its caller and its body, read once the request is announced
    to the engine (``announcing``)."""
    api = APIRouter(route_class=announcing(ctx.engine))
    completions = Completions(ctx)

    async def chat_body(request: Request) -> ChatRequest:
        return ChatRequest.model_validate(await ctx.body(request))

    async def completion_body(request: Request) -> CompletionRequest:
        return CompletionRequest.model_validate(await ctx.body(request))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request, ident: Identity = Depends(ctx.identify),
                               body: ChatRequest = Depends(chat_body)) -> Response:
        return await completions.generate(request, ident, body, [m.as_dict() for m in body.messages], None)

    @api.post("/v1/completions")
    async def text_completions(request: Request, ident: Identity = Depends(ctx.identify),
                               body: CompletionRequest = Depends(completion_body)) -> Response:
        return await completions.generate(request, ident, body, [{"role": "user", "content": body.prompt}],
                                          body.prompt)

    return api
