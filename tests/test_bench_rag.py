"""`kit bench serving --rag`: the RAG-shaped load, kit with its document search against llama-server given the
final prompts kit's search builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.bench import ragload


def test_rag_load_pairs_each_question_with_a_follow_up() -> None:
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
    load.excerpts = [["a:1", "b:2"], ["a:1", "b:2"], ["c:0"], ["d:0"]]
    assert load.shared() == 0.5
    # a question is searched; its follow-up names the question's excerpts, as the first answer's sources give them
    bodies = load.kit_bodies()
    assert bodies[0] == bodies[2] == {"kit": {"documents": True}}
    assert bodies[1] == {"kit": {"documents": True, "sources": ["a:1", "b:2"]}}
    assert bodies[3] == {"kit": {"documents": True, "sources": ["c:0"]}}


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
    assert rag["requests"] == 4 and all(n >= 1 for n in rag["excerpts_per_request"])
    assert rag["follow_ups_sharing_excerpts"] == 1.0  # every follow-up on its question's excerpts
