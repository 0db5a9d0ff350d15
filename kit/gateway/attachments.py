"""A staff member's own files under the usage rules: reading one (extraction, OCR), the personal-data policy
over its text and its name exactly as over a message (block: 422 naming the categories and the file, nothing
stored; mask: the masked text is what the model and ``/content`` get; warn: named), the audit row (id, type,
size, sha256, pages, categories: never the text or the name), then the store; and, in a chat, the files a
message names, given to the model whole or as their most relevant passages."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.audit import AuditEvent
from kit.documents.attached import Lang, Passage, Quoted, relevant, render, with_files
from kit.documents.extract import OcrOptions, extract
from kit.errors import BodyTooLargeError, NotFoundError, PiiBlockedError, UsageError
from kit.gateway.context import Context
from kit.protocol.schemas import ChatRequest, FileRef
from kit.rules.policy import Identity
from kit.storage.attachments import Attachment, StoredPage, new_id

ANSWER_MARGIN = 64  # tokens kept free besides the answer: the template's own tokens, rounding
QUOTING_TOKENS = 160  # the rules added to the system message, the delimiters, the question's label
QUOTING_FACTOR = 1.1  # a quoted file's "> " line prefixes and "(p. N)" headings, against its own tokens


@dataclass
class Read:
    """A file read and policed, not stored yet."""

    item: Attachment
    policy_text: str  # pii action of the file, for the audit row


@dataclass
class Attached:
    """The files of a chat request and what the model gets of them."""

    files: list[Attachment] = field(default_factory=list)
    quoted: list[Quoted] = field(default_factory=list)

    def describe(self) -> list[dict[str, Any]]:
        return [q.describe() for q in self.quoted]


def too_large(name: str, size: int, limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"{name}: {size} bytes, more than the {limit} allowed (attachments.max_bytes): send a "
                             f"smaller file or the part you need. / {name} : {size} octets, plus que les {limit} "
                             "permis : envoyez un fichier plus petit.")


class Files:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.state.attachments

    def options(self) -> OcrOptions:
        a = self.ctx.settings.attachments
        return OcrOptions(a.ocr, a.ocr_languages, a.ocr_dpi, a.ocr_timeout_s, max(1, min(4, os.cpu_count() or 1)))

    def read(self, ident: Identity, filename: str, data: bytes, purpose: str = "user_data") -> Attachment:
        """Extract and police one file (blocking work: call it in a worker thread). A block is audited and
        raised; nothing is stored here."""
        settings = self.ctx.settings
        name = Path(filename).name[:255] or "file"
        if not settings.attachments.enabled:
            raise UsageError("attached files are turned off here (attachments.enabled). / Les fichiers joints sont "
                             "désactivés ici.")
        if len(data) > settings.attachments.max_bytes:
            raise too_large(name, len(data), settings.attachments.max_bytes)
        found = extract(name, data, self.options(), settings.attachments.max_pages)
        digest = hashlib.sha256(data).hexdigest()
        texts = [name, *(p.text for p in found.pages)]
        outcomes = self.ctx.gate.apply_pii_texts(texts)
        now = int(time.time())
        days = settings.attachments.days(settings.policy.conversation_retention_days)
        item = Attachment(id=new_id(), filename=name, kind=found.kind, bytes=len(data), sha256=digest,
                          created_at=now, expires_at=now + days * 86400,
                          pages=[StoredPage(p.number, p.text, p.ocr) for p in found.pages],
                          characters=sum(len(p.text) for p in found.pages), tokens=0, purpose=purpose)
        if outcomes is not None:
            categories = sorted({c for o in outcomes for c in o.categories})
            actions = {c: a for o in outcomes for c, a in o.actions.items()}
            blocked = sorted({c for o in outcomes for c in o.blocked})
            item.personal_data = {"categories": categories, "actions": actions,
                                  "masked": sorted({c for o in outcomes for c in o.masked}),
                                  "warned": sorted({c for o in outcomes for c in o.warned})}
            if blocked:
                self.audit(ident, item, "blocked")
                raise PiiBlockedError(
                    f"{name}: the file holds personal data that the policy blocks: {', '.join(blocked)}. Remove it "
                    "from the file and send it again; nothing was kept or sent to the model. / Le fichier "
                    f"{name} contient des données personnelles que la politique bloque : {', '.join(blocked)}. "
                    "Retirez-les et renvoyez-le ; rien n'a été conservé ni transmis au modèle.")
            item.filename = outcomes[0].text
            item.pages = [StoredPage(p.number, o.text, p.ocr) for p, o in zip(item.pages, outcomes[1:], strict=True)]
            item.characters = sum(len(p.text) for p in item.pages)
        return item

    def count(self, item: Attachment) -> None:
        """The file's length in the model's tokens (on the event loop: the engine's tokenizer is local)."""
        item.tokens = self.ctx.engine.count_chat_tokens([{"role": "user", "content": item.text}])

    def keep(self, ident: Identity, item: Attachment) -> None:
        """Store a read file and write its audit row (a worker thread)."""
        self.store.save(ident.user, item)
        self.audit(ident, item, "ok")

    def audit(self, ident: Identity, item: Attachment, status: str) -> None:
        pd = item.personal_data
        self.ctx.state.audit.record(AuditEvent(
            action="file_upload", user=ident.user, status=status, pii_categories=pd.get("categories", []),
            pii_action=next((a for a in ("block", "mask", "warn") if a in pd.get("actions", {}).values()), ""),
            doc_ids=[item.id], detail={"via": ident.via, "file_id": item.id, "type": item.kind,
                                       "bytes": item.bytes, "sha256": item.sha256, "pages": len(item.pages),
                                       "ocr_pages": item.ocr_pages}))

    def owned(self, ident: Identity, file_id: str) -> Attachment:
        item = self.store.get(ident.user, file_id)
        if item is None:
            raise NotFoundError(f"no file {file_id} of yours (it may have expired or been deleted). / Aucun fichier "
                                f"{file_id} à vous (expiré ou supprimé ?).")
        return item

    async def resolve(self, ident: Identity, body: ChatRequest) -> list[Attachment]:
        """The files the request's user messages name, each once: a file id must be the caller's (404 else); a
        file sent inline is read, policed and stored like an upload (the same content sent again is reused).
        They are tied to the request's conversation, if any."""
        from kit.engine import gather

        refs = [f for m in body.messages if m.role == "user" for f in m.files]
        out: dict[str, Attachment] = {}
        for ref in refs:
            item = await gather.in_thread(self._one, ident, ref)
            if item.tokens == 0:
                self.count(item)
                await gather.in_thread(self.keep, ident, item)
            if body.conversation_id:
                await gather.in_thread(self.store.bind, ident.user, item.id, body.conversation_id)
            out.setdefault(item.id, item)
        return list(out.values())

    def _one(self, ident: Identity, ref: FileRef) -> Attachment:
        if ref.file_id:
            return self.owned(ident, ref.file_id)
        if not ref.file_data:
            raise UsageError("a file part needs file.file_id or file.file_data (a data: URL). / Une pièce jointe "
                             "demande file.file_id ou file.file_data.")
        data = decode_data_url(ref.file_data, ref.filename or "file")
        digest = hashlib.sha256(data).hexdigest()
        same = next((a for a in self.store.list(ident.user) if a.sha256 == digest), None)
        return same if same is not None else self.read(ident, ref.filename or "file", data)

    def quote(self, files: list[Attachment], messages: list[dict[str, Any]], budget: int,
              lang: Lang) -> tuple[list[dict[str, Any]], Attached]:
        """The messages with the files quoted before the last user message: whole when all fit in ``budget``
        tokens, else each file's most relevant passages within its share of it."""
        attached = Attached(files)
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        budget -= QUOTING_TOKENS
        whole = sum(f.tokens for f in files) * QUOTING_FACTOR + 30 * len(files) <= budget
        for f in files:
            pages = [Passage(p.number, p.text) for p in f.pages if p.text]
            if whole:
                attached.quoted.append(Quoted(f.id, f.filename, "whole", pages))
                continue
            chars_per_token = f.characters / max(f.tokens, 1)
            share = int(max(budget, 0) / len(files) * chars_per_token / QUOTING_FACTOR)
            attached.quoted.append(Quoted(f.id, f.filename, "passages", relevant(pages, question, share)))
        return with_files(messages, render(attached.quoted, lang), lang), attached

    def budget(self, messages: list[dict[str, Any]], answer_tokens: int) -> int:
        """Tokens left in one sequence's context for quoted files, after the messages and the answer."""
        used = self.ctx.engine.count_chat_tokens(messages)
        return self.ctx.engine.n_ctx - used - answer_tokens - ANSWER_MARGIN


def decode_data_url(url: str, name: str) -> bytes:
    head, sep, payload = url.partition(",")
    scheme, _, media = head.partition(":")  # a data URL (RFC 2397), not an event line
    if not sep or scheme.lower() != "data" or not media.endswith(";base64"):
        raise UsageError(f"{name}: file_data must be a data URL, data:<type>;base64,<content>. / {name} : file_data "
                         "doit être une URL data:<type>;base64,<contenu>.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError(f"{name}: file_data is not valid base64 ({exc}). / {name} : file_data n'est pas du base64 "
                         "valide.") from exc


def language(messages: list[dict[str, Any]], default: Lang = "fr") -> Lang:
    from kit.documents.text import guess_language

    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    found = guess_language(question)
    return found if found in ("fr", "en") else default  # type: ignore[return-value]
