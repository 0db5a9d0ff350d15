"""The OpenAI API's request bodies (chat and text completions), with kit's own option block (``kit``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Body(BaseModel):
    # Unknown fields are ignored (OpenAI clients send many); known fields are strictly typed.
    model_config = ConfigDict(extra="ignore")


SOURCE = re.compile(r"[A-Za-z0-9_.-]{1,128}:[0-9]{1,7}")


class _Own(BaseModel):
    # kit's own option block: an unknown field is an error naming it (a typo must not be silently ignored)
    model_config = ConfigDict(extra="forbid")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class FileRef(_Body):
    file_id: str | None = Field(default=None, max_length=64, description="A file sent before (POST /v1/files).")
    filename: str | None = Field(default=None, max_length=255, description="The name of a file sent inline.")
    file_data: str | None = Field(default=None, description="A file sent inline, as a data: URL (base64).")


class FilePart(_Body):
    type: Literal["file"]
    file: FileRef


class Message(_Body):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart | FilePart] | None = None

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def files(self) -> list[FileRef]:
        """The files this message attaches (content parts of type ``file``)."""
        if not isinstance(self.content, list):
            return []
        return [p.file for p in self.content if isinstance(p, FilePart)]

    def as_dict(self) -> dict[str, Any]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text}


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str | None = Field(default=None, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=40, ge=0, le=1000)
    min_p: float = Field(default=0.05, ge=0, le=1)
    repeat_penalty: float = Field(default=1.0, ge=0, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    n: int = Field(default=1, ge=1, le=8)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    user: str | None = Field(default=None, max_length=200)
    ignore_eos: bool = Field(default=False, description="Keep generating past the end-of-text token, up to "
                             "max_tokens (as llama.cpp's server and vLLM do; for benchmarks).")

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else value or []
        if len(items) > 4 or any(len(s) > 200 for s in items):
            raise ValueError("at most 4 stop strings of at most 200 characters")
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def wanted_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class KitOptions(_Own):
    documents: bool = Field(default=False, description="Answer from the indexed documents, citing them.")
    collection: str | None = Field(default=None, max_length=64, description="Search this collection only.")
    sources: list[str] | None = Field(
        default=None, max_length=20, description="A follow-up on the same sources: answer from these excerpts "
        "(each \"document_id:chunk_index\", as the sources of an earlier answer name them) instead of searching "
        "again. Those the caller may not read, or no longer indexed, are left out; when none is left, the "
        "documents are searched as usual. Implies documents.")

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            if not SOURCE.fullmatch(item):
                raise ValueError(f"'{item[:80]}' is not a source: write document_id:chunk_index, as the sources of "
                                 "an answer name them (e.g. 3f2a9c0d1e4b5a6f7c8d:2)")
        return value
    task: Literal["summarise", "translate", "correct"] | None = Field(
        default=None, description="Work on the attached files (or the message) section by section: a summary, a "
        "translation or a correction of a text of any length, with progress events when streamed.")
    target_language: Literal["fr", "en"] | None = Field(default=None, description="Language of a translation.")


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1, max_length=500)
    conversation_id: str | None = Field(default=None, max_length=64, description="Store the turn in this conversation.")
    kit: KitOptions | None = Field(default=None, description="kit's own options (documents).")


class CompletionRequest(_Sampling):
    prompt: str = Field(max_length=2_000_000)
