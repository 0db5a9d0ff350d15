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
    BodyTooLargeError,
    KitError,
    NotJsonError,
    UsageError,
)

log = logging.getLogger("kit.gateway")


def error_response(status: int, message: str, etype: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": etype, "param": param, "code": etype}}
    return JSONResponse(body, status_code=status, headers=headers)


def kit_error_response(exc: KitError) -> JSONResponse:
    """The status and code each error class declares (kit.errors); 429 and 503 say when to try again."""
    status, code = exc.status, exc.code
    headers = {"Retry-After": str(exc.retry_after or 2)} if status in (429, 503) else None
    return error_response(status, str(exc), code, getattr(exc, "param", None), headers=headers)


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
        raise BodyTooLargeError(f"the request body has {length} bytes; the limit is {limit} (server.max_body_bytes).")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (media_type.startswith("application/")
                                                 and media_type.endswith("+json")):
        raise NotJsonError(f"this endpoint takes a JSON body, sent with the header Content-Type: application/json "
                           f"(this one is {media_type or 'not given'}). / Cette route attend un corps JSON, "
                           f"envoyé avec l'en-tête Content-Type: application/json (ici : {media_type or 'absent'}).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"the request body is over {limit} bytes (server.max_body_bytes).")
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
