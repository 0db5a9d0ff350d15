"""Request bodies of kit's own endpoints (the OpenAI ones are in ``kit.protocol.schemas``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Own(BaseModel):
    # kit's own endpoints: an unknown field is an error naming it (a typo must not be silently ignored)
    model_config = ConfigDict(extra="forbid")


class DocumentSearch(_Own):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)
    collection: str | None = Field(default=None, max_length=64)


class AckRequest(_Own):
    version: str = Field(max_length=64)
    quiz_answers: list[int] | None = None


class ScanRequest(_Own):
    text: str = Field(max_length=200_000)


class FeedbackRequest(_Own):
    kind: Literal["feedback", "report"] = "feedback"
    rating: int | None = Field(default=None, ge=-1, le=1)
    comment: str = Field(default="", max_length=4000)
    conversation_id: str | None = Field(default=None, max_length=64)
    answer_id: str | None = Field(default=None, max_length=64, description="The id of the answer it is about "
                                  "(the `id` of the chat completion).")
    model: str | None = Field(default=None, max_length=200)


class ChatSwitch(_Own):
    open: bool
    message: str = Field(default="", max_length=1000)


class NewConversation(_Own):
    title: str = Field(default="", max_length=200)


class LoginRequest(_Own):
    user: str = Field(min_length=1, max_length=200, description="User name.")
    password: str = Field(max_length=1024, description="Password.")


class OidcEvent(_Own):
    """What the browser chat reports of an OpenID Connect sign-in, for the audit log (the user, when known, is
    named by the chat's identity headers and stored as a pseudonym)."""

    event: Literal["login", "login_failed", "logout"]
    reason: str = Field(default="", max_length=200)
