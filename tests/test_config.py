"""The configuration (kit.config): the commented template, `kit config init` and `show`, unknown keys and
sections named, environment overrides typed, the purpose and a remote engine's contract required."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run_kit, write_config

from kit.config import load_settings, template
from kit.errors import ConfigError


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
