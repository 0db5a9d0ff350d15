"""An engine that answers with what it was given, and a real gateway around it (loopback HTTP, real stores,
real detector, real document index): for tests about what reaches the model, where the model itself is not
the subject."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import ServerHandle, serve_app, write_config

from kit.engine.base import BaseEngine, Chunk, EngineStats, FinishReason, Generation, SamplingParams


class EchoEngine(BaseEngine):
    """Answers every chat with the text of all the messages it received, joined; keeps them in ``received`` and
    counts them in ``stats`` as an engine does (a request that never reached it is not counted)."""

    model_name = "echo"
    model_sha256 = "0" * 64
    n_ctx = 4096

    def __init__(self) -> None:
        self.received: list[list[dict[str, Any]]] = []
        self._stats = EngineStats()
        self._lock = threading.Lock()

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(**vars(self._stats))

    def is_ready(self) -> bool:
        return True

    def count_chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        return sum(len(str(m.get("content", "")).split()) for m in messages)

    def _answer(self, text: str, loop: asyncio.AbstractEventLoop | None,
                finish: FinishReason = "stop") -> Generation:
        gen = Generation(len(text.split()), loop)
        gen.note_token()
        gen.push(Chunk(text, finish))
        with self._lock:
            self._stats.requests_total += 1
            self._stats.requests_finished += 1
            self._stats.prompt_tokens_total += gen.prompt_tokens
            self._stats.completion_tokens_total += gen.completion_tokens
        return gen

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        self.received.append([dict(m) for m in messages])
        return self._answer("\n".join(str(m["content"]) for m in messages), loop)

    def submit_completion(self, prompt: str, params: SamplingParams,
                          loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        self.received.append([{"role": "user", "content": prompt}])
        return self._answer(prompt, loop)

    def close(self) -> None:
        pass


class CuttingEcho(EchoEngine):
    """Answers with the words it was given, at most ``max_tokens`` of them: cut answers end with "length".
    A text a test puts in ``scripted`` is the next answer instead, as written, ending with "length" (an
    answer cut off where the test chose)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripted: list[str] = []

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        self.received.append([dict(m) for m in messages])
        if self.scripted:
            return self._answer(self.scripted.pop(0), loop, "length")
        words = "\n".join(str(m["content"]) for m in messages).split()
        gen = Generation(len(words), loop)
        gen.note_token()
        gen.push(Chunk(" ".join(words[: params.max_tokens]), "length" if len(words) > params.max_tokens else "stop"))
        return gen


def start_echo_gateway(home: Path, config: Path, engine: EchoEngine | None = None, service_key: bool = True,
                       **overrides: dict[str, Any]) -> tuple[ServerHandle, Callable[[], None]]:
    """A real gateway (``create_app``) with an :class:`EchoEngine` (or ``engine``), on 127.0.0.1 in a thread, with
    a service key for the tests' requests (as the browser chat has), unless service_key is false."""
    from kit.config import load_settings
    from kit.gateway.app import create_app
    from kit.rules.privacy import get_detector
    from kit.storage.keys import create_key
    from kit.storage.state import open_state

    home.mkdir(parents=True, exist_ok=True)
    os.environ["KIT_HOME"] = str(home)
    write_config(config, **overrides)
    settings = load_settings(config)
    state = open_state(settings)
    engine = engine or EchoEngine()
    app = create_app(settings, engine, state)  # type: ignore[arg-type]
    get_detector().scan("warm-up")
    url, stop_http = serve_app(app)
    key = create_key(settings, "test-front-end", "service", acknowledge=False)[0] if service_key else None
    handle = ServerHandle(url, app, engine, state, settings, key)

    def stop() -> None:
        stop_http()
        app.state.context.documents.close()
        state.close()

    return handle, stop
