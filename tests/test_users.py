"""Local users of the browser chat: argon2 hashes (never the password), roles, and `kit users`."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kit.errors import UsageError
from kit.storage.users import (
    add_user,
    get_role,
    list_users,
    remove_user,
    set_password,
    set_role,
    verify_password,
)

PASSWORD = "correct horse battery"


def test_hash_is_stored_not_the_password(kit_env: Path) -> None:
    add_user(kit_env, "alice", "user", PASSWORD)
    path = kit_env / "kit.db"  # the installation's database (KIT_DATABASE_URL unset)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD.encode() not in path.read_bytes()
    with sqlite3.connect(path) as conn:
        (digest,) = conn.execute("SELECT hash FROM users WHERE name = 'alice'").fetchone()
    assert digest.startswith("$argon2id$")
    assert PASSWORD not in digest


def test_right_and_wrong_passwords(kit_env: Path) -> None:
    add_user(kit_env, "alice", "user", PASSWORD)
    assert verify_password(kit_env, "alice", PASSWORD) == "user"
    assert verify_password(kit_env, "alice", PASSWORD + "!") is None
    assert verify_password(kit_env, "alice", "") is None
    assert verify_password(kit_env, "nobody", PASSWORD) is None
    assert verify_password(kit_env, "", PASSWORD) is None


def test_no_users_file_means_nobody(kit_env: Path) -> None:
    assert verify_password(kit_env, "alice", PASSWORD) is None
    assert list_users(kit_env) == []
    assert get_role(kit_env, "alice") is None


@pytest.mark.parametrize("role", ["user", "admin", "auditor"])
def test_roles(kit_env: Path, role: str) -> None:
    add_user(kit_env, f"u-{role}", role, PASSWORD)
    assert verify_password(kit_env, f"u-{role}", PASSWORD) == role
    assert get_role(kit_env, f"u-{role}") == role


def test_invalid_input_is_refused(kit_env: Path) -> None:
    with pytest.raises(UsageError, match="role"):
        add_user(kit_env, "alice", "service", PASSWORD)
    with pytest.raises(UsageError, match="role"):
        add_user(kit_env, "alice", "root", PASSWORD)
    with pytest.raises(UsageError, match="too short"):
        add_user(kit_env, "alice", "user", "short")
    with pytest.raises(UsageError, match="not a valid user name"):
        add_user(kit_env, "bad name", "user", PASSWORD)
    with pytest.raises(UsageError, match="not a valid user name"):
        add_user(kit_env, "", "user", PASSWORD)
    add_user(kit_env, "alice", "user", PASSWORD)
    with pytest.raises(UsageError, match="exists already"):
        add_user(kit_env, "alice", "admin", PASSWORD)
    assert verify_password(kit_env, "alice", PASSWORD) == "user"


def test_list_remove_passwd_and_role(kit_env: Path) -> None:
    add_user(kit_env, "zoe", "auditor", PASSWORD)
    add_user(kit_env, "alice", "admin", PASSWORD)
    assert [(u.name, u.role) for u in list_users(kit_env)] == [("alice", "admin"), ("zoe", "auditor")]
    set_password(kit_env, "alice", "a brand new secret")
    assert verify_password(kit_env, "alice", PASSWORD) is None
    assert verify_password(kit_env, "alice", "a brand new secret") == "admin"
    set_role(kit_env, "alice", "user")
    assert get_role(kit_env, "alice") == "user"
    remove_user(kit_env, "zoe")
    assert verify_password(kit_env, "zoe", PASSWORD) is None
    with pytest.raises(UsageError, match="no user"):
        remove_user(kit_env, "zoe")
    with pytest.raises(UsageError, match="no user"):
        set_password(kit_env, "zoe", PASSWORD)


def _cli() -> click.Group:
    from kit.cli import ui, up, users

    @click.group()
    def root() -> None:
        pass

    for module in (ui, up, users):
        module.register(root)
    return root


def test_cli_users(kit_env: Path) -> None:
    runner = CliRunner()
    cli = _cli()
    r = runner.invoke(cli, ["users", "add", "alice", "--role", "admin", "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert verify_password(kit_env, "alice", PASSWORD) == "admin"
    # without --password-stdin: asked twice, hidden
    r = runner.invoke(cli, ["users", "add", "bob"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    assert verify_password(kit_env, "bob", PASSWORD) == "user"
    r = runner.invoke(cli, ["users", "list"])
    assert "alice" in r.output and "admin" in r.output and "bob" in r.output
    assert "argon2" not in r.output
    r = runner.invoke(cli, ["users", "passwd", "bob", "--password-stdin"], input="another long secret\n")
    assert r.exit_code == 0, r.output
    assert verify_password(kit_env, "bob", "another long secret") == "user"
    r = runner.invoke(cli, ["users", "rm", "bob"])
    assert r.exit_code == 0 and verify_password(kit_env, "bob", "another long secret") is None
    r = runner.invoke(cli, ["users", "add", "carol", "--role", "root", "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code != 0 and "root" in r.output


def test_ui_refuses_to_start_without_purpose_or_open_without_auth(kit_env: Path, tmp_path: Path) -> None:
    from helpers import write_config

    from kit.config import load_settings
    from kit.errors import ConfigError

    settings = load_settings(write_config(tmp_path / "a.yaml", ui={"host": "0.0.0.0", "auth": "none"}))
    with pytest.raises(ConfigError, match="ui.auth"):
        settings.check_ui()
    settings.check_ui("127.0.0.1")
    settings.ui.auth = "local"
    settings.check_ui()
    settings.deployment.purpose = ""
    with pytest.raises(ConfigError, match="deployment.purpose"):
        settings.check_ui("127.0.0.1")


# --- who the browser chat acts for ----------------------------------------------------------------


class _Request:
    def __init__(self, host: str, headers: dict[str, str] | None = None, username: str | None = None) -> None:
        self.client = type("Client", (), {"host": host})()
        self.headers = headers or {}
        self.username = username


def test_identity_by_sign_in_mode(kit_env: Path, tmp_path: Path) -> None:
    from helpers import write_config

    from kit.config import load_settings
    from kit.storage.users import get_role
    from ui.auth import Refusal, identify
    from ui.client import Who

    def role_of(name: str) -> str | None:
        return get_role(kit_env, name)

    add_user(kit_env, "alice", "auditor", PASSWORD)
    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "proxy", "trusted_proxies": ["10.0.0.0/8"]}))
    header = settings.ui.proxy_header.lower()
    assert identify(settings, _Request("10.1.2.3", {header: "alice"}), role_of) == Who("alice", "auditor")
    assert identify(settings, _Request("10.1.2.3", {header: "bob"}), role_of) == Who("bob", "user")
    refused = identify(settings, _Request("192.168.1.9", {header: "alice"}), role_of)
    assert isinstance(refused, Refusal) and refused.key == "auth.proxy_refused"
    assert refused.values["address"] == "192.168.1.9"
    missing = identify(settings, _Request("10.1.2.3", {}), role_of)
    assert isinstance(missing, Refusal) and missing.key == "auth.proxy_missing"

    settings.ui.auth = "local"
    assert identify(settings, _Request("127.0.0.1", username="alice"), role_of) == Who("alice", "auditor")
    assert isinstance(identify(settings, _Request("127.0.0.1", username="ghost"), role_of), Refusal)
    assert isinstance(identify(settings, _Request("127.0.0.1", {header: "alice"}), role_of), Refusal)  # header ignored

    settings.ui.auth = "none"
    assert identify(settings, _Request("127.0.0.1"), role_of) == Who("local", "user")  # the gateway decides


def test_up_reports_a_gateway_that_fails_to_start(
    kit_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import free_port

    # a remote engine without a processing agreement: `kit serve` refuses to start
    monkeypatch.setenv("KIT_SERVER__ENGINE_URL", "http://203.0.113.7:8080")
    r = CliRunner().invoke(
        _cli(), ["up", "--api-port", str(free_port()), "--port", str(free_port()), "--start-timeout", "120"]
    )
    assert r.exit_code != 0
    message = str(r.exception)
    assert "the gateway did not start" in message and "engine_contract_ref" in message, message


def test_a_repeated_proxy_header_is_refused(kit_env: Path, tmp_path: Path) -> None:
    from helpers import write_config
    from starlette.datastructures import Headers

    from kit.config import load_settings
    from ui.auth import Refusal, identify

    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "proxy", "trusted_proxies": ["10.0.0.1"]}))
    header = settings.ui.proxy_header.lower().encode()
    twice = Headers(raw=[(header, b"alice"), (header, b"admin")])
    refused = identify(settings, _Request("10.0.0.1", twice), lambda name: "admin" if name == "admin" else None)
    assert isinstance(refused, Refusal) and refused.key == "auth.proxy_repeated"
    once = Headers(raw=[(header, b"alice")])
    assert not isinstance(identify(settings, _Request("10.0.0.1", once), lambda name: None), Refusal)


def test_renewing_the_chats_service_key_revokes_the_old_one(kit_env: Path, tmp_path: Path) -> None:
    from helpers import write_config

    from kit.cli.ui import UI_KEY_FILE, _service_key
    from kit.config import load_settings
    from kit.storage.keys import find_key, list_keys, revoke_key

    settings = load_settings(write_config(tmp_path / "k.yaml"))
    first = _service_key(settings, "http://127.0.0.1:8000")
    assert first and find_key(list_keys(settings), first) is not None
    assert _service_key(settings, "http://127.0.0.1:8000") == first  # kept while valid
    revoke_key(settings, "ui")
    second = _service_key(settings, "http://127.0.0.1:8000")  # the file's key no longer works: a new one
    assert second != first and find_key(list_keys(settings), second) is not None
    (kit_env / UI_KEY_FILE).write_text("kit-not-a-key\n", encoding="utf-8")
    third = _service_key(settings, "http://127.0.0.1:8000")
    assert find_key(list_keys(settings), second) is None  # the previous "ui" key stops working
    assert [k.name for k in list_keys(settings)].count("ui") == 1 and third != second


def test_a_password_change_ends_open_sessions(kit_env: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from helpers import write_config

    from kit.config import load_settings
    from kit.storage.users import check_password, session_stamp
    from ui.base import Base
    from ui.client import GatewayClient
    from ui.sessions import Sessions

    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "local"}))
    add_user(kit_env, "alice", "user", PASSWORD)
    signed = check_password(kit_env, "alice", PASSWORD)
    assert signed is not None and signed.stamp == session_stamp(kit_env, "alice")
    client = GatewayClient("http://127.0.0.1:9")
    base = Base(settings, client, SimpleNamespace(), max_tokens=8, sessions=Sessions(1800, 36000))
    base.sessions.open("tok1", "alice", signed.stamp)  # what the chat records at sign-in
    request = SimpleNamespace(request=SimpleNamespace(cookies={"access-token-abc": "tok1"}))
    client.seen["alice"] = {"session_stamp": session_stamp(kit_env, "alice")}
    assert base._session_valid("alice", request) is True
    set_password(kit_env, "alice", "a brand new secret")
    client.seen["alice"] = {"session_stamp": session_stamp(kit_env, "alice")}  # what the gateway says now
    assert base._session_valid("alice", request) is False
    assert base.sessions.check("tok1") is None  # ended for good
    client.close()


def test_cli_users_groups_role_and_unlock(kit_env: Path) -> None:
    from kit.storage.users import get_user, unlocked_at

    runner = CliRunner()
    cli = _cli()
    r = runner.invoke(cli, ["users", "add", "ana", "-g", "rh", "-g", "paie", "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    runner.invoke(cli, ["users", "add", "bob", "--password-stdin"], input=PASSWORD + "\n")
    lines = runner.invoke(cli, ["users", "list"]).output.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "GROUPS", "CREATED"]
    assert lines[1].split()[:3] == ["ana", "user", "paie,rh"] and lines[2].split()[:3] == ["bob", "user", "-"]

    r = runner.invoke(cli, ["users", "set", "bob", "--group", "voirie", "-g", "rh", "--role", "auditor"])
    assert r.exit_code == 0, r.output
    bob = get_user(kit_env, "bob")
    assert bob is not None and bob.groups == ("rh", "voirie") and bob.role == "auditor"
    r = runner.invoke(cli, ["users", "set", "bob", "--no-groups"])
    assert r.exit_code == 0 and get_user(kit_env, "bob").groups == ()  # type: ignore[union-attr]
    for bad, said in ((["users", "set", "bob"], "nothing to change"),
                      (["users", "set", "bob", "-g", "rh", "--no-groups"], "not both"),
                      (["users", "set", "nobody", "-g", "rh"], "no user named 'nobody'"),
                      (["users", "set", "bob", "-g", "a b"], "group"),
                      (["users", "unlock", "nobody"], "no user named 'nobody'")):
        r = runner.invoke(cli, bad)
        assert r.exit_code != 0 and said in r.output + str(r.exception), (bad, r.output, r.exception)

    assert unlocked_at(kit_env, "ana") is None
    r = runner.invoke(cli, ["users", "unlock", "ana"])
    assert r.exit_code == 0 and "unlocked" in r.output, r.output
    first = unlocked_at(kit_env, "ANA")
    assert first is not None
    runner.invoke(cli, ["users", "unlock", "ana"])
    assert unlocked_at(kit_env, "ana") not in (None, first)  # each unlock is a new time the gateways apply
