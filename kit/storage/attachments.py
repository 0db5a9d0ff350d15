"""Files a staff member attached to a conversation: their extracted text (after the personal-data policy) and
what the API says about them, one JSON file each, mode 0600, under ``$KIT_HOME/attachments/<owner>/`` where
``<owner>`` is a digest of the user's name (the name itself is never on disk). The file as sent is not kept.

A file belongs to the user (or key) that sent it: every read and every deletion names its owner, so no one
else can reach it. It is deleted with its conversation, when it expires (``expires_at``, the retention period)
and with the rest of the user's data. It never enters the shared document index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.errors import LimitExceededError
from kit.files import atomic_write_text

_ID = re.compile(r"file-[0-9a-f]{24}")


@dataclass
class StoredPage:
    number: int
    text: str
    ocr: bool = False


@dataclass
class Attachment:
    id: str
    filename: str  # after the personal-data policy
    kind: str
    bytes: int
    sha256: str
    created_at: int
    expires_at: int
    pages: list[StoredPage]
    characters: int
    tokens: int
    personal_data: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    purpose: str = "user_data"

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.ocr)

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages)

    def describe(self) -> dict[str, Any]:
        """The OpenAI file object, with kit's own block."""
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose,
                "kit": {"type": self.kind, "pages": len(self.pages), "characters": self.characters,
                        "tokens": self.tokens, "ocr_pages": self.ocr_pages,
                        "personal_data": {"categories": self.personal_data.get("categories", []),
                                          **{k: v for k, v in self.personal_data.items() if k != "categories"}},
                        "expires_at": self.expires_at, "conversation_id": self.conversation_id}}


def new_id() -> str:
    return "file-" + secrets.token_hex(12)


class AttachmentStore:
    """The attachments of every user, under ``root``; safe between threads (one file per attachment, written
    atomically)."""

    def __init__(self, root: Path, max_per_user: int = 50) -> None:
        self.root = root
        self.max_per_user = max_per_user

    def _folder(self, owner: str) -> Path:
        return self.root / hashlib.sha256(owner.encode()).hexdigest()[:32]

    def _path(self, owner: str, file_id: str) -> Path | None:
        return self._folder(owner) / f"{file_id}.json" if _ID.fullmatch(file_id) else None

    def save(self, owner: str, item: Attachment) -> None:
        folder = self._folder(owner)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        os.chmod(folder, 0o700)
        if not (folder / f"{item.id}.json").exists() and len(self.list(owner)) >= self.max_per_user:
            raise LimitExceededError(
                f"you already keep {self.max_per_user} files (attachments.max_files_per_user): delete some "
                "(DELETE /v1/files/ID, or remove them from the chat) and send again. / Vous gardez déjà "
                f"{self.max_per_user} fichiers : supprimez-en et recommencez.", 60, limit="files")
        path = folder / f"{item.id}.json"
        atomic_write_text(path, json.dumps(asdict(item), ensure_ascii=False))
        os.chmod(path, 0o600)

    def get(self, owner: str, file_id: str) -> Attachment | None:
        path = self._path(owner, file_id)
        if path is None or not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["expires_at"] <= time.time():
            path.unlink(missing_ok=True)
            return None
        data["pages"] = [StoredPage(**p) for p in data["pages"]]
        return Attachment(**data)

    def list(self, owner: str) -> list[Attachment]:
        folder = self._folder(owner)
        if not folder.is_dir():
            return []
        found = [self.get(owner, p.stem) for p in sorted(folder.glob("file-*.json"))]
        return sorted((a for a in found if a is not None), key=lambda a: a.created_at)

    def delete(self, owner: str, file_id: str) -> bool:
        path = self._path(owner, file_id)
        if path is None or not path.is_file():
            return False
        path.unlink()
        return True

    def bind(self, owner: str, file_id: str, conversation_id: str) -> None:
        """Tie a file to the conversation it is used in (deleted with it); a file already tied stays tied."""
        item = self.get(owner, file_id)
        if item is not None and item.conversation_id is None:
            item.conversation_id = conversation_id
            self.save(owner, item)

    def delete_conversation(self, owner: str, conversation_id: str) -> int:
        gone = [a.id for a in self.list(owner) if a.conversation_id == conversation_id]
        return sum(self.delete(owner, i) for i in gone)

    def delete_user(self, owner: str) -> int:
        return sum(self.delete(owner, a.id) for a in self.list(owner))

    def purge(self, now: float | None = None) -> int:
        """Delete every expired file, whoever owns it; how many were deleted."""
        moment = time.time() if now is None else now
        deleted = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/file-*.json"):
            try:
                expires = json.loads(path.read_text(encoding="utf-8")).get("expires_at", 0)
            except (OSError, ValueError):
                continue
            if expires <= moment:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted
