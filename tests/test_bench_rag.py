"""`kit bench serving --rag`: the RAG-shaped load, kit with its document search against llama-server given the
final prompts kit's search builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.bench import ragload


def test_rag_load_pairs_each_question_with_a_follow_up() -> None:
    assert len(ragload.make_load().questions) == 160  # every labelled question once, with its follow-up
    load = ragload.make_load(9)
    assert len(load.questions) == 9
    for i in range(1, 9, 2):
        lang, base = load.questions[i - 1]
        follow_lang, follow = load.questions[i]
        assert follow_lang == lang and follow in ragload.FOLLOW_UPS[lang] and follow != base
    assert len({q for _, q in load.questions[::2]}) == 5  # distinct questions between the pairs
    prompts = load.kit_prompts()
    assert prompts[0][0] == {"role": "system", "content": ragload.SYSTEM[load.questions[0][0]]}
    assert prompts[3][1] == {"role": "user", "content": load.questions[3][1]}
    load.excerpts = [["a:1", "b:2"], ["a:1", "b:2"], ["c:0"], ["d:0"], [], []]
    assert load.shared() == 0.5 and load.unanswered() == 1
    # a question is searched; its follow-up names the question's excerpts, as the first answer's sources give them
    bodies = load.kit_bodies()
    assert bodies[0] == bodies[2] == {"kit": {"documents": True}}
    assert bodies[1] == {"kit": {"documents": True, "sources": ["a:1", "b:2"]}}
    assert bodies[3] == {"kit": {"documents": True, "sources": ["c:0"]}}


def test_started_kit_has_every_abuse_limit_off() -> None:
    """One bench client stands for many users: every limit of a role is off in the kit the bench starts (a limit
    left on refuses part of the load with 429 and the run measures the limit)."""
    from kit.bench.servers import NO_LIMITS
    from kit.config.sections import RoleLimits

    assert set(NO_LIMITS) == set(RoleLimits.model_fields)
    assert all(v == 0 for v in RoleLimits(**NO_LIMITS).model_dump().values())


def test_rag_needs_kit_to_build_the_prompts(tmp_path: Path) -> None:
    from kit.cli.bench import bench

    res = CliRunner().invoke(bench, ["serving", "--rag", "--llama-server", "--out", str(tmp_path / "s.json")])
    assert res.exit_code != 0 and "--rag needs --kit" in str(res.exception)
    with pytest.raises(Exception, match="needs kit started first"):
        ragload.for_reference(ragload.make_load(2))(object())  # type: ignore[arg-type]


@pytest.mark.slow
def test_rag_serving_gives_llama_server_the_prompts_kit_builds(tmp_path: Path) -> None:
    """Both servers answer every request, on prompts of the same length in tokens (kit's as its gateway builds
    them from its search, llama-server's from that search's excerpts quoted by the same code), made of excerpts."""
    from kit.bench.servers import find_llama_server
    from kit.cli.bench import bench

    if find_llama_server() is None:
        pytest.skip("llama-server is not built: run scripts/build-reference.sh")
    res = CliRunner().invoke(bench, ["serving", "--rag", "--kit", "--llama-server", "--concurrency", "2",
                                     "--requests", "4", "--max-tokens", "8", "--threads", "2",
                                     "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((tmp_path / "s.json").read_text())
    assert [t["name"] for t in data["targets"]] == ["kit", "llama-server"]
    assert "--cache-reuse 256" in data["targets"][1]["note"]
    rows = {(r["target"], r["phase"]): r for r in data["results"]}
    assert all(r["completion_rate"] == 1.0 for r in rows.values())
    kit, reference = rows[("kit", "measured")], rows[("llama-server", "measured")]
    assert kit["total_input_tokens"] > 4 * 400  # a system prompt, excerpts and a question (alone: ~60 tokens)
    assert abs(kit["total_input_tokens"] - reference["total_input_tokens"]) <= 0.02 * kit["total_input_tokens"]
    rag = data["rag_load"]
    # every labelled question once but those the search finds nothing for (left out with their follow-ups)
    assert rag["questions_without_excerpts"] <= 16
    assert rag["requests"] == len(rag["excerpts_per_request"]) == 160 - 2 * rag["questions_without_excerpts"]
    assert all(n >= 1 for n in rag["excerpts_per_request"])
    assert rag["follow_ups_sharing_excerpts"] == 1.0  # every follow-up on its question's excerpts


def test_fresh_passes_send_the_next_prompts_to_every_target_alike() -> None:
    """With ``fresh`` (the RAG load), each pass takes the prompts after the previous pass's, so no round finds its
    prompts cached from the round before; in one round every target gets the same ones, a question and its
    follow-up stay in one pass. The server is a recorder on 127.0.0.1: what is measured here is which prompts the
    bench sends, not a model."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from kit.bench.rounds import run_rounds
    from kit.bench.serving import ServingConfig, Target
    from tests.helpers import serve_app

    seen: list[tuple[str, str]] = []

    async def models(request: Request) -> Response:
        return JSONResponse({"data": [{"id": "m"}]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        seen.append((request.headers["x-target"], body["messages"][-1]["content"]))
        chunks = ['{"choices":[{"delta":{"content":"ok"}}]}', '{"choices":[{"delta":{},"finish_reason":"stop"}]}']
        return StreamingResponse(iter([f"data: {c}\n\n" for c in chunks] + ["data: [DONE]\n\n"]),
                                 media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])
    url, stop = serve_app(app)
    try:
        prompts = [[{"role": "user", "content": f"p{i}"}] for i in range(40)]
        targets = [Target(name=n, url=url, headers={"X-Target": n}) for n in ("a", "b")]
        for fresh in (True, False):
            seen.clear()
            config = ServingConfig(concurrency=[1, 2], requests=3, max_tokens=4, prompts_file="-", prompts=40,
                                   sampling={}, rounds=2, fresh=fresh)
            run = run_rounds(list(targets), config, prompts)
            assert all(r.completion_rate == 1.0 for r in run.results)
            for name in ("a", "b"):
                sent = [p for t, p in seen if t == name]
                if fresh:  # cold pass (2 at 2 streams), then 4 passes of 3, each starting on a pair
                    assert sent[:2] == ["p0", "p1"] and sorted(sent[2:5]) == ["p2", "p3", "p4"]
                    assert sorted(sent[5:8]) == ["p6", "p7", "p8"] and len(set(sent)) == len(sent) == 14
                else:
                    assert set(sent) == {"p0", "p1", "p2"}
            assert sorted(p for t, p in seen if t == "a") == sorted(p for t, p in seen if t == "b")
    finally:
        stop()
