"""Foundation: CLI, configuration, catalogue, model install and integrity, doctor, terminal chat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import KIT, PURPOSE, ROOT, run_kit, write_config

from kit.config import load_settings, template
from kit.errors import CatalogError, ConfigError, IntegrityError
from kit.models.catalog import load_catalog


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, time; t=time.perf_counter(); sys.argv=['kit','--help']\n"
        "from kit.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=[m for m in ('torch','llama_cpp','chromadb','gradio','spacy','presidio_analyzer','fastapi','uvicorn')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("HEAVY")][0]
    assert line.startswith("HEAVY []"), line
    assert "Commands:" in out and "chat" in out and "models" in out


def test_config_template_is_valid_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "kit.yaml"
    path.write_text(template(), encoding="utf-8")
    settings = load_settings(path)
    assert settings.deployment.purpose  # the template states an example purpose
    text = path.read_text(encoding="utf-8")
    for key in ("purpose", "pii_actions", "conversation_retention_days", "parallel", "engine_contract_ref",
                "default_language"):
        assert key in text
    assert text.count("# ") > 30  # every key is commented


def test_config_init_and_show_hide_secrets(tmp_path: Path, kit_env: Path) -> None:
    target = tmp_path / "new.yaml"
    r = run_kit("config", "init", str(target))
    assert r.returncode == 0, r.stderr
    assert run_kit("config", "init", str(target)).returncode == 2  # refuses to overwrite
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    data["server"]["api_keys"] = [{"name": "app", "sha256": "a" * 64, "role": "user"}]
    target.write_text(yaml.safe_dump(data), encoding="utf-8")
    shown = run_kit("config", "show", "--json", env={"KIT_CONFIG": str(target), "KIT_SERVER__PORT": "9123"})
    assert shown.returncode == 0, shown.stderr
    effective = json.loads(shown.stdout)
    assert effective["server"]["port"] == 9123
    assert "a" * 64 not in shown.stdout


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path / "bad.yaml", server={"prot": 80})
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_settings(path)
    r = run_kit("config", "show", env={"KIT_CONFIG": str(path)})
    assert r.returncode == 1
    assert "server.prot: unknown key" in r.stderr and "Traceback" not in r.stderr


def test_env_override_types_and_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path / "k.yaml")
    s = load_settings(path, environ={"KIT_SERVER__PARALLEL": "3", "KIT_POLICY__LOG_PROMPT_TEXT": "true"})
    assert s.server.parallel == 3 and s.policy.log_prompt_text is True
    with pytest.raises(ConfigError, match="server.parallel"):
        load_settings(path, environ={"KIT_SERVER__PARALLEL": "many"})
    with pytest.raises(ConfigError, match="unknown section 'sever'"):
        load_settings(path, environ={"KIT_SEVER__PORT": "1"})


def test_empty_purpose_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("deployment:\n  purpose: ''\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="deployment.purpose"):
        load_settings(path).require_purpose()
    r = run_kit("serve", env={"KIT_CONFIG": str(path)})
    assert r.returncode == 1 and "deployment.purpose" in r.stderr and "Traceback" not in r.stderr


def test_remote_engine_needs_contract_reference(tmp_path: Path) -> None:
    path = write_config(tmp_path / "k.yaml", server={"engine_url": "https://llm.example.net/v1"})
    with pytest.raises(ConfigError, match="engine_contract_ref"):
        load_settings(path).check_engine_contract()
    ok = write_config(tmp_path / "k2.yaml", server={"engine_url": "https://llm.example.net/v1",
                                                    "engine_contract_ref": "DPA-2026-042"})
    load_settings(ok).check_engine_contract()
    local = write_config(tmp_path / "k3.yaml", server={"engine_url": "http://127.0.0.1:8080"})
    load_settings(local).check_engine_contract()


def test_catalog_is_valid_and_bad_entries_are_named(tmp_path: Path) -> None:
    catalog = load_catalog(ROOT / "models.yaml")
    default = catalog.get("smollm2-135m-instruct")
    assert default.source.kind == "package" and default.licence == "Apache-2.0"
    bad = yaml.safe_load((ROOT / "models.yaml").read_text(encoding="utf-8"))
    bad["models"][0]["source"]["sha256"] = "xyz"
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"entry 'smollm2-135m-instruct', field 'source.sha256'"):
        load_catalog(path)
    bad["models"][0]["source"] = {"kind": "local", "path": "/media/usb/model.bin"}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match="pickle"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="no model named 'nope'"):
        catalog.get("nope")


def test_pull_list_verify_and_tampering(kit_env: Path) -> None:
    r = run_kit("models", "pull")
    assert r.returncode == 0, r.stderr
    lock = json.loads((kit_env / "models.lock").read_text())["models"]["smollm2-135m-instruct"]
    for key in ("sha256", "size", "source", "quant", "licence", "llama_cpp_version", "obtained_at"):
        assert lock[key], key
    listed = json.loads(run_kit("models", "list", "--json").stdout)
    row = [m for m in listed["models"] if m["name"] == "smollm2-135m-instruct"][0]
    assert row["installed"] and row["size"] == lock["size"] and row["fits_in_ram"] is True
    assert run_kit("models", "verify").returncode == 0
    model = kit_env / "models" / lock["file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle of the weights
    model.write_bytes(bytes(data))
    r = run_kit("models", "verify")
    assert r.returncode == 1 and "changed since it was installed" in r.stdout
    r = run_kit("chat", "hello", "--max-tokens", "4")
    assert r.returncode == 1 and "refused" in r.stderr and "Traceback" not in r.stderr
    from kit.models.lock import resolve

    with pytest.raises(IntegrityError):
        resolve(kit_env, None, "smollm2-135m-instruct")


def test_unknown_model_and_debug_traceback(installed_home: Path) -> None:
    r = run_kit("chat", "hi", "--model", "nope")
    assert r.returncode == 1 and "no model named 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run_kit("chat", "hi", "--model", "nope", env={"KIT_DEBUG": "1"})
    assert "Traceback" in r.stderr


def test_usage_errors_exit_2() -> None:
    assert run_kit("chat", "--max-tokens", "0", "x").returncode == 2
    assert run_kit("nosuchcommand").returncode == 2


@pytest.mark.slow
def test_chat_one_shot_streams_an_answer(installed_home: Path) -> None:
    r = run_kit("chat", "What is the capital of France?", "--max-tokens", "24", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 5
    assert "tokens/s" in r.stderr and "Paris" in r.stdout


@pytest.mark.slow
def test_chat_interactive_session(installed_home: Path) -> None:
    r = run_kit("chat", "--max-tokens", "8", "--temperature", "0", input="Say hello.\n/reset\nHi\n/bye\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("tokens/s") == 2


@pytest.mark.slow
def test_engine_renders_model_template_like_llama_cpp(installed_home: Path) -> None:
    from kit.engine.llama import LlamaEngine

    path = next((installed_home / "models").glob("*/*.gguf"))
    engine = LlamaEngine(path, parallel=1, ctx=512)
    try:
        prompt = engine.render_chat([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        assert "im_start" in (engine.chat_template or "")
    finally:
        engine.close()


def test_doctor_reports_and_fails(installed_home: Path, tmp_path: Path) -> None:
    r = run_kit("doctor", "--json")
    data = json.loads(r.stdout)
    names = {c["name"]: c for c in data["checks"]}
    assert names["model"]["status"] == "PASS" and names["python"]["status"] == "PASS"
    assert "llama-cpp-python" in names["llama.cpp"]["detail"]
    assert r.returncode == 0, r.stdout
    insecure = write_config(tmp_path / "open.yaml", server={"host": "0.0.0.0"}, ui={"host": "0.0.0.0"})
    r = run_kit("doctor", env={"KIT_CONFIG": str(insecure)})
    assert r.returncode == 1
    assert "FAIL  api exposure" in r.stdout and "fix:" in r.stdout and "FAIL  ui exposure" in r.stdout


def test_kit_entry_point_exists() -> None:
    assert Path(KIT).exists()
    assert PURPOSE


@pytest.mark.slow
def test_engine_reuses_cached_prompt_prefix(installed_home: Path) -> None:
    """A follow-up turn only reads what is new: the conversation so far is still in the sequence's cache."""
    from kit.engine.base import SamplingParams, collect
    from kit.engine.llama import LlamaEngine

    path = next((installed_home / "models").glob("*/*.gguf"))
    engine = LlamaEngine(path, parallel=2, ctx=1024)
    try:
        params = SamplingParams(max_tokens=12, temperature=0)
        turn = [{"role": "system", "content": "You are a helpful assistant for a French city hall."},
                {"role": "user", "content": "Name one French city."}]
        first, _ = collect(engine.submit_chat(turn, params))
        assert engine.stats.prompt_tokens_cached == 0
        again, _ = collect(engine.submit_chat(turn, params))
        assert again == first  # same greedy answer from the cached prefix
        cached = engine.stats.prompt_tokens_cached
        assert cached == engine.count_chat_tokens(turn) - 1
        follow = [*turn, {"role": "assistant", "content": first}, {"role": "user", "content": "And another?"}]
        gen = engine.submit_chat(follow, params)
        collect(gen)
        assert engine.stats.prompt_tokens_cached - cached >= engine.count_chat_tokens(turn)
        # another conversation in parallel does not disturb the cached one, and cancelling frees its slot
        other = engine.submit_chat([{"role": "user", "content": "Write a long poem."}],
                                   SamplingParams(max_tokens=200, temperature=0))
        other.cancel()
        collect(other)
        assert collect(engine.submit_chat(turn, params))[0] == first
    finally:
        engine.close()
