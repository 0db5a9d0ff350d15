"""An engine that forwards to any OpenAI-compatible server (llama.cpp's llama-server, vLLM...).

The gateway keeps enforcing every rule; this engine only generates. Each request streams from the
remote server in a worker thread and pushes chunks like the built-in engine does.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from kit import sse
from kit.engine.base import BaseEngine, Chunk, EngineStats, Generation, SamplingParams
from kit.errors import EngineError


class RemoteEngine(BaseEngine):
    def __init__(self, url: str, *, model_name: str, api_key: str | None = None, ctx: int = 4096,
                 timeout_s: float = 300, probe: bool = True) -> None:
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        self.model_name = model_name
        self.model_sha256 = ""
        self.n_ctx = ctx
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s
        self._stats = EngineStats()
        self._lock = threading.Lock()
        # trust_env=False: proxy variables (HTTPS_PROXY...) must never route prompts or the key elsewhere
        self._http = httpx.Client(trust_env=False, follow_redirects=False)
        self._remote_model = self._probe() if probe else ""  # "" until a probe has named the engine's model

    def _probe(self) -> str:
        try:
            r = self._http.get(f"{self.url}/v1/models", headers=self._headers, timeout=10)
            r.raise_for_status()
            data = r.json().get("data") or [{}]
            return str(data[0].get("id") or self.model_name)
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(
                f"the engine at {self.url} does not answer ({exc}): start it, or fix server.engine_url."
            ) from None

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(**vars(self._stats))

    def is_ready(self) -> bool:
        try:
            ok = self._http.get(f"{self.url}/v1/models", headers=self._headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
        if ok and not self._remote_model:  # started while the engine was down: learn its model id
            try:
                self._remote_model = self._probe()
            except EngineError:
                return False
        return ok

    def count_chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        return sum(len(str(m.get("content", ""))) for m in messages) // 4

    def submit_chat(self, messages: list[dict[str, Any]], params: SamplingParams,
                    loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        return self._start("/v1/chat/completions", {"messages": messages}, params, loop)

    def submit_completion(self, prompt: str, params: SamplingParams,
                          loop: asyncio.AbstractEventLoop | None = None, *, route: str | None = None) -> Generation:
        return self._start("/v1/completions", {"prompt": prompt}, params, loop)

    def _start(self, path: str, payload: dict[str, Any], p: SamplingParams,
               loop: asyncio.AbstractEventLoop | None) -> Generation:
        body = {**payload, "model": self._remote_model or self.model_name, "stream": True, "max_tokens": p.max_tokens,
                "temperature": p.temperature, "top_p": p.top_p, "stop": p.stop or None, "seed": p.seed,
                "stream_options": {"include_usage": True}}
        if p.ignore_eos:
            body["ignore_eos"] = True
        if p.owner:
            body["user"] = p.owner  # OpenAI's end-user field: a kit engine shares its sequences fairly by it
        gen = Generation(loop=loop)
        with self._lock:
            self._stats.requests_total += 1
            self._stats.active += 1
        threading.Thread(target=self._run, args=(path, body, gen), daemon=True).start()
        return gen

    def _run(self, path: str, body: dict[str, Any], gen: Generation) -> None:
        reason = "stop"
        error = None
        try:
            with self._http.stream("POST", self.url + path, json=body, headers=self._headers,
                                   timeout=self._timeout) as r:
                if r.status_code != 200:
                    r.read()
                    raise EngineError(f"the engine answered {r.status_code}: {r.text[:300]}")
                for data in sse.events(r.iter_lines()):
                    if gen.cancelled.is_set():
                        reason = "cancelled"
                        break
                    if data.get("usage"):
                        gen.prompt_tokens = int(data["usage"].get("prompt_tokens", 0))
                    for choice in data.get("choices", []):
                        text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                        if text:
                            gen.note_token()
                            gen.push(Chunk(text))
                        if choice.get("finish_reason") == "length":
                            reason = "length"
        except (httpx.HTTPError, EngineError, ValueError) as exc:
            reason, error = "error", f"remote engine: {exc}"
        with self._lock:
            self._stats.active -= 1
            self._stats.requests_finished += 1
            self._stats.completion_tokens_total += gen.completion_tokens
            self._stats.prompt_tokens_total += gen.prompt_tokens
        gen.push(Chunk("", reason, error))  # type: ignore[arg-type]

    def close(self) -> None:
        self._http.close()
