"""The OpenAI protocol apart from the usage rules: one module for the shapes of the API and their stream,
used by the gateway and by `kit engine`; one reader and writer of server-sent events; routes that declare
their body and caller; an engine contract declared, not probed. Fast: no model."""

from __future__ import annotations

import ast
import asyncio
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _imported_from(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


# --- one reader and one writer of server-sent events ------------------------------------------------------

def test_events_are_written_and_read_by_one_module() -> None:
    from kit import sse

    wire = sse.encode({"a": "é", "b": [1]}) + sse.encode({"c": None}) + sse.DONE_EVENT
    assert wire == b'data: {"a": "\xc3\xa9", "b": [1]}\n\ndata: {"c": null}\n\ndata: [DONE]\n\n'
    lines = wire.decode().splitlines() + ["data: {\"after\": 1}"]
    assert list(sse.events(lines)) == [{"a": "é", "b": [1]}, {"c": None}]  # nothing after [DONE]
    # the space after the colon is optional (the event-stream format); comments and other fields are skipped
    assert list(sse.events([": ping", "event: x", 'data:{"d": 2}', "", "data:[DONE]"])) == [{"d": 2}]
    assert sse.parse("data: [DONE]") is sse.DONE and sse.parse("") is None and sse.parse("id: 3") is None
    with pytest.raises(ValueError):
        list(sse.events(["data: {not json"]))
    assert list(sse.events(["data: {not json", 'data: {"e": 3}'], skip_invalid=True)) == [{"e": 3}]

    async def read() -> list[Any]:
        async def lines_() -> Any:
            for line in ['data: {"f": 4}', "data: [DONE]", 'data: {"g": 5}']:
                yield line
        return [e async for e in sse.aevents(lines_())]

    assert asyncio.run(read()) == [{"f": 4}]


def test_no_other_module_parses_event_lines() -> None:
    found = []
    for pkg in ("kit", "ui"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path == ROOT / "kit" / "sse.py":
                continue
            if re.search(r"""startswith\(\s*["']data:""", path.read_text(encoding="utf-8")):
                found.append(str(path.relative_to(ROOT)))
    assert found == []


# --- the protocol apart from the rules --------------------------------------------------------------------

def test_protocol_lives_apart_from_the_rules() -> None:
    from kit.protocol import responses, schemas, serving

    assert {"ChatRequest", "CompletionRequest", "Message"} <= _defined(Path(schemas.__file__))
    assert {"response", "stream", "StreamEnd"} <= _defined(Path(responses.__file__))
    assert {"sampling_params", "submit_all", "collect", "ClosingStream"} <= _defined(Path(serving.__file__))
    chat = ROOT / "kit" / "gateway" / "chat.py"
    assert not {"sampling_params", "submit_all", "collect", "ClosingStream"} & _defined(chat)
    assert "kit.gateway.chat" not in _imported_from(ROOT / "kit" / "gateway" / "engine_api.py")


def _route(app_or_router: Any, path: str) -> Any:
    """The route of ``path``, also in an included router (FastAPI keeps those as one entry)."""
    for r in app_or_router.routes:
        inner = getattr(r, "original_router", None)
        found = _route(inner, path) if inner is not None else r if getattr(r, "path", None) == path else None
        if found is not None:
            return found
    return None


def test_engine_routes_declare_their_body() -> None:
    from kit.gateway.engine_api import create_engine_app
    from kit.protocol.schemas import ChatRequest, CompletionRequest

    app = create_engine_app(SimpleNamespace(model_name="m"), api_key=None, name="e")  # type: ignore[arg-type]
    for path, model in (("/v1/chat/completions", ChatRequest), ("/v1/completions", CompletionRequest)):
        deps = _route(app, path).dependant.dependencies
        assert [d.name for d in deps] == ["body"], path
        assert deps[0].call.__annotations__.get("return") in (model, model.__name__)


def test_gateway_routes_declare_their_body_and_caller() -> None:
    from kit.gateway import chat
    from kit.protocol.schemas import ChatRequest, CompletionRequest

    async def identify(request: Any) -> Any:
        return None

    ctx = SimpleNamespace(engine=SimpleNamespace(model_name="m"), identify=identify,
                          state=SimpleNamespace(attachments=None))
    api = chat.router(ctx)  # type: ignore[arg-type]
    for path, model in (("/v1/chat/completions", ChatRequest), ("/v1/completions", CompletionRequest)):
        deps = _route(api, path).dependant.dependencies
        assert [d.name for d in deps] == ["ident", "body"], path
        assert deps[1].call.__annotations__.get("return") in (model, model.__name__)


# --- an explicit engine contract --------------------------------------------------------------------------

def test_engines_declare_their_capabilities() -> None:
    from kit.engine.base import BaseEngine, SamplingParams
    from kit.engine.llama import LlamaEngine
    from kit.engine.pool import EnginePool
    from kit.engine.remote import RemoteEngine

    assert BaseEngine.submits_at_once is False and BaseEngine.gathering is None
    assert BaseEngine.states(BaseEngine()) == []  # type: ignore[abstract]
    for cls in (LlamaEngine, RemoteEngine, EnginePool):
        assert issubclass(cls, BaseEngine), cls
    assert LlamaEngine.submits_at_once is True
    assert "affinity" not in SamplingParams.__dataclass_fields__  # the routing key is an argument
    probed = []
    for path in [*(ROOT / "kit").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"""getattr\([^)]*["'](submits_at_once|gathering|states|affinity)["']""", text):
            probed.append(str(path.relative_to(ROOT)))
    assert probed == []


class _Member:
    """A pool member answering at once with its name."""

    def __init__(self, name: str) -> None:
        self.name, self.routes = name, []

    def is_ready(self) -> bool:
        return True

    def submit_chat(self, messages: list[dict[str, Any]], params: Any, loop: Any = None, *,
                    route: str | None = None) -> Any:
        from kit.engine.base import Chunk, Generation

        self.routes.append(route)
        gen = Generation()
        gen.push(Chunk(self.name, "stop"))
        return gen

    def close(self) -> None:
        pass


def test_the_pool_routes_by_the_key_it_is_given() -> None:
    from kit.engine.base import SamplingParams, collect
    from kit.engine.pool import EnginePool, Member

    members = [_Member(f"e{i}") for i in range(4)]
    pool = EnginePool([Member(m.name, m) for m in members], model_name="m")
    try:
        first = [{"role": "user", "content": "hello"}]
        later = [*first, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]
        for conv in ("c1", "c2", "c3", "c4", "c5"):
            served, _ = collect(pool.submit_chat(first, SamplingParams(), None, route=conv))
            for _ in range(3):  # each later turn of the conversation where its first went
                again, _ = collect(pool.submit_chat(later, SamplingParams(), None, route=conv))
                assert again == served
        assert pool.affinity() == (15, 15)
    finally:
        pool.close()


def test_leaving_the_loop_for_a_thread_is_one_call() -> None:
    from kit.engine import gather
    from kit.engine.gather import Gathering

    engine = SimpleNamespace(gathering=Gathering(threading.Condition()))

    async def main() -> tuple[int, int, str]:
        async with gather.announce(engine):
            before = engine.gathering.arriving
            name = await gather.in_thread(lambda who: f"{who}:{engine.gathering.arriving}", "thread")
            return before, engine.gathering.arriving, name

    assert asyncio.run(main()) == (1, 0, "thread:0")


def test_docstrings_name_modules_that_exist() -> None:
    wrong = []
    for path in (ROOT / "kit").rglob("*.py"):
        for ref in re.findall(r"\bkit/[\w/]+\.py\b", path.read_text(encoding="utf-8")):
            if not (ROOT / ref).exists():
                wrong.append(f"{path.relative_to(ROOT)}: {ref}")
    assert wrong == []
