"""HTTP errors of the gateway: kit errors mapped to status codes and OpenAI-style JSON bodies, and the
bounded JSON body reader. Every failure gets a message that says what to do; none shows a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.errors import (
    ContextOverflowError,
    EngineError,
    KitError,
    PolicyError,
    QueueFullError,
    UsageError,
)
from kit.rules.limits import LimitExceeded, LimitsUnavailable
from kit.rules.policy import AuthError, ChatClosedError, NoKeyExposed

log = logging.getLogger("kit.gateway")


class BodyTooLarge(KitError):
    """Request body or message over the configured limit (HTTP 413)."""


class ModelNotFound(KitError):
    """The request names a model this server does not serve (HTTP 404)."""


class NotFound(KitError):
    """Nothing of the caller's by that id (HTTP 404); never says whether it belongs to someone else."""


class HostRefused(KitError):
    """The Host header names neither the bound address nor an allowed host (HTTP 421, DNS rebinding)."""


class NotJson(KitError):
    """A JSON route was sent a body of another type (HTTP 415): a page of another site can send text/plain
    without asking the browser's permission, never application/json."""


class TooMany(KitError):
    """Too many attempts or requests (HTTP 429); `retry_after` says when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class PiiBlocked(PolicyError):
    """The prompt holds personal data whose category is blocked (HTTP 422)."""


STATUS: list[tuple[type[Exception], int, str]] = [
    (AuthError, 401, "authentication_error"),
    (NoKeyExposed, 503, "service_unavailable"),
    (HostRefused, 421, "misdirected_request"),
    (NotFound, 404, "not_found"),
    (TooMany, 429, "rate_limit_exceeded"),
    (LimitExceeded, 429, "rate_limit_exceeded"),
    (LimitsUnavailable, 503, "service_unavailable"),
    (ChatClosedError, 503, "service_unavailable"),
    (PiiBlocked, 422, "personal_data_blocked"),
    (PolicyError, 403, "permission_error"),
    (BodyTooLarge, 413, "request_too_large"),
    (NotJson, 415, "unsupported_media_type"),
    (ModelNotFound, 404, "model_not_found"),
    (ContextOverflowError, 400, "context_length_exceeded"),
    (UsageError, 400, "invalid_request_error"),
    (QueueFullError, 429, "rate_limit_exceeded"),
    (EngineError, 503, "engine_unavailable"),
    (KitError, 500, "server_error"),
]


def error_response(status: int, message: str, etype: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": etype, "param": param, "code": etype}}
    return JSONResponse(body, status_code=status, headers=headers)


def kit_error_response(exc: KitError) -> JSONResponse:
    for cls, status, etype in STATUS:
        if isinstance(exc, cls):
            retry = getattr(exc, "retry_after", 2)
            headers = {"Retry-After": str(retry)} if status in (429, 503) else None
            return error_response(status, str(exc), etype, headers=headers)
    return error_response(500, str(exc), "server_error")


def validation_message(exc: ValidationError) -> tuple[str, str]:
    parts, first = [], ""
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        first = first or loc
        parts.append(f"{loc or 'body'}: {err['msg']}")
    return "; ".join(parts), first


async def read_json(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"the request body has {length} bytes; the limit is {limit} (server.max_body_bytes).")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (media_type.startswith("application/")
                                                 and media_type.endswith("+json")):
        raise NotJson(f"this endpoint takes a JSON body, sent with the header Content-Type: application/json (this "
                      f"one is {media_type or 'not given'}). / Cette route attend un corps JSON, envoyé avec l'en-tête "
                      f"Content-Type: application/json (ici : {media_type or 'absent'}).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"the request body is over {limit} bytes (server.max_body_bytes).")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).") from None
    except RecursionError:
        raise UsageError("the body is nested too deeply to be a valid request.") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise UsageError(f"the body holds a value that cannot be read: {exc}. Send ordinary numbers.") from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the body holds a lone UTF-16 surrogate (such as \\ud800), which is not text: "
                         "send valid Unicode.") from None
    except RecursionError:
        raise UsageError("the body is nested too deeply to be a valid request.") from None
    return data


def install_handlers(app: FastAPI) -> None:
    """Turn every exception into a JSON error; an unexpected one is logged and answered with a 500."""

    @app.exception_handler(KitError)
    async def _kit_error(_: Request, exc: KitError) -> JSONResponse:
        return kit_error_response(exc)

    @app.exception_handler(ValidationError)
    async def _invalid(_: Request, exc: ValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        return error_response(422, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "no such endpoint: see the API list in kit's README.", "not_found")
        if exc.status_code == 405:
            return error_response(405, "this endpoint does not take that method.", "method_not_allowed",
                                  headers=dict(exc.headers or {}))
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal error; the server keeps running. See the server log.", "server_error")
