"""The remote engine (kit.engine.remote): what it sends goes to the engine it names, never through a proxy
named in the environment."""

from __future__ import annotations

import json

import pytest


def test_remote_engine_ignores_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts and the engine key must not leave through a proxy named in the environment."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from helpers import free_port

    from kit.engine.remote import RemoteEngine

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = json.dumps({"data": [{"id": "local-model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a request through it fails
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{server.server_port}", model_name="m")
        assert engine.is_ready()
        engine.close()
    finally:
        server.shutdown()
