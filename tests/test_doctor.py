"""`kit doctor`: its report on the installed model and the exposure, and its security checks, on real
files and configurations."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import run_kit, write_config

from kit.config import load_settings
from kit.ops.security import check_file_modes, check_keys, check_limits, check_proxies


def test_network_bind_without_user_keys_fails(kit_env: Path, tmp_path: Path) -> None:
    from kit.storage.keys import create_key

    settings = load_settings(write_config(tmp_path / "k.yaml", server={"host": "0.0.0.0"}))
    create_key(settings, "front", "service", acknowledge=False)  # a service key does not count
    assert check_keys(settings).status == "FAIL"
    create_key(settings, "app", "user")
    assert check_keys(settings).status == "PASS"


def test_trusted_proxies(kit_env: Path, tmp_path: Path) -> None:
    empty = load_settings(write_config(tmp_path / "a.yaml", ui={"auth": "proxy", "trusted_proxies": []}))
    assert check_proxies(empty).status == "FAIL"
    local = load_settings(write_config(tmp_path / "b.yaml", ui={"auth": "proxy", "trusted_proxies": ["127.0.0.1"]}))
    assert check_proxies(local).status == "WARN"
    wide = load_settings(write_config(tmp_path / "c.yaml", ui={"auth": "proxy", "trusted_proxies": ["10.0.0.0/8"]}))
    assert check_proxies(wide).status == "WARN"
    one = load_settings(write_config(tmp_path / "d.yaml", ui={"auth": "proxy", "trusted_proxies": ["10.1.2.3"]}))
    assert check_proxies(one).status == "PASS"
    assert load_settings(write_config(tmp_path / "e.yaml")).ui.trusted_proxies == []  # none trusted by default


def test_file_modes(kit_env: Path, tmp_path: Path) -> None:
    from kit.storage.keys import create_key

    settings = load_settings(write_config(tmp_path / "k.yaml"))
    create_key(settings, "app", "user")
    os.chmod(tmp_path / "k.yaml", 0o600)
    keys = kit_env / "kit.db"  # where `kit keys create` wrote the key's hash
    os.chmod(keys, 0o600)
    assert check_file_modes(settings).status == "PASS"
    os.chmod(keys, 0o644)
    result = check_file_modes(settings)
    assert result.status == "FAIL" and "kit.db" in result.detail
    os.chmod(keys, 0o600)
    os.chmod(tmp_path / "k.yaml", 0o644)
    assert check_file_modes(settings).status == "WARN"


def test_limits_are_checked(kit_env: Path, tmp_path: Path) -> None:
    assert check_limits(load_settings(write_config(tmp_path / "k.yaml"))).status in ("PASS", "WARN")


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
