"""The HTTP apps keep to this machine: FastAPI's own OpenTelemetry (a span, metrics and logs for each
request, and OTLP exporters set up from environment variables) stays off, whatever the environment says,
and so does the OpenTelemetry SDK that other libraries (the document store's) would start. Also: the
HTTP protocol that answers a request its parser refuses in JSON, as every other error."""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

from fastapi import FastAPI

from kit.engine import gather

TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                 "auto_configure": False}


def fastapi_options() -> dict[str, Any]:
    """Keyword arguments for ``FastAPI(...)`` that turn its telemetry off (FastAPI versions without it: none)."""
    os.environ["FASTAPI_OTEL_AUTO_CONFIGURE"] = "false"
    os.environ["OTEL_SDK_DISABLED"] = "true"
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": dict(TELEMETRY_OFF)}
    return {}


_BAD_REQUEST = json.dumps({"error": {
    "message": "Invalid HTTP request (a malformed request line or header, such as a control character in a "
               "header value): fix the client's request. / Requête HTTP invalide (ligne de requête ou en-tête "
               "mal formé, par exemple un caractère de contrôle dans un en-tête) : corrigez la requête du client.",
    "type": "invalid_request_error"}}, ensure_ascii=True)


GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


def http_protocol(engine: Any = None) -> Any:
    """uvicorn's HTTP protocol class, answering a request its parser refuses with a JSON error like every
    other (uvicorn's own answer is a line of plain text); each new connection is announced to ``engine``
    (the engine in this process, if it gathers bursts: kit.engine.gather)."""
    import importlib.util

    base: Any
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base

        announces = True
    else:  # uvicorn's pure-Python parser: no hook hands a connection's announcement to its request
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

        announces = False

    class Protocol(base):  # type: ignore[valid-type,misc]
        """Also announces each new connection's first request to the in-process engine (kit.engine.gather)."""

        _kit_opened: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if announces and engine is not None:  # a server without an engine of its own announces nothing
                self._kit_opened = gather.connection_opened(engine)

        def on_headers_complete(self) -> None:  # httptools' parser
            super().on_headers_complete()
            opened, self._kit_opened = self._kit_opened, None
            if opened is None:
                return
            if self.scope.get("method") == "POST" and self.scope.get("path") in GENERATION_PATHS:
                self.scope[gather.CONNECTION_KEY] = opened  # its handler takes the announcement over
            else:
                opened.leave()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._kit_opened is not None:
                self._kit_opened.leave()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            body = _BAD_REQUEST.encode("ascii")
            self.transport.write(b"".join([
                b"HTTP/1.1 400 Bad Request\r\n", b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n", b"connection: close\r\n\r\n", body]))
            self.transport.close()

    return Protocol
