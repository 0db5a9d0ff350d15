"""One database for every piece of state (SQLite under $KIT_HOME, or PostgreSQL named by KIT_DATABASE_URL):
schema versions by Alembic, `kit db upgrade` keeping every row, a server refusing an older schema, the files
of the earlier one-machine layout moved in, and the same stores on a real PostgreSQL server on loopback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config

from kit.audit import AuditEvent, AuditLog
from kit.config import load_settings
from kit.errors import ConfigError
from kit.storage.db import forget_databases
from kit.storage.keyfiles import pseudonym_key
from kit.storage.keys import create_key, find_key, list_keys
from kit.storage.state import audit_key, open_state
from kit.storage.users import add_user, get_groups, list_users, verify_password

PASSWORD = "correct horse battery"


def kit(*args: str) -> object:
    from kit.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_version_kit_needs_is_the_last_migration() -> None:
    from kit.storage.db import SCHEMA_VERSION, migrations_head

    assert migrations_head() == SCHEMA_VERSION


def test_older_schema_is_refused_until_kit_db_upgrade(kit_env: Path, tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path / "kit.yaml"))
    r = kit("db", "upgrade", "--revision", "0001")
    assert r.exit_code == 0 and "empty -> 0001" in r.output  # type: ignore[attr-defined]
    with sqlite3.connect(kit_env / "kit.db") as con:  # a row written by the older version
        con.execute("INSERT INTO flags VALUES ('chat_closed', '{\"message\": \"maintenance\"}')")
    forget_databases()
    with pytest.raises(ConfigError, match=r"schema version 0001, this kit needs 0002: run `kit db upgrade`"):
        open_state(settings)
    status = kit("db", "status", "--json")
    assert json.loads(status.output)["up_to_date"] is False  # type: ignore[attr-defined]
    r = kit("db", "upgrade")
    assert r.exit_code == 0 and "0001 -> 0002" in r.output  # type: ignore[attr-defined]
    state = open_state(settings)
    assert state.store.flag("chat_closed") == {"message": "maintenance"}  # the row survived the upgrade
    assert json.loads(kit("db", "status", "--json").output)["up_to_date"] is True  # type: ignore[attr-defined]
    with sqlite3.connect(kit_env / "kit.db") as con:
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"feedback_user", "acks_version"} <= indexes
    assert (kit_env / "kit.db").stat().st_mode & 0o777 == 0o600


def _legacy_files(home: Path, settings_path: Path) -> dict[str, object]:
    """The files an earlier kit kept under $KIT_HOME, written with their own schemas."""
    home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(home / "users.db") as con:  # before need-to-know groups
        con.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, "
                    "created TEXT NOT NULL, updated TEXT NOT NULL)")
        from argon2 import PasswordHasher

        con.execute("INSERT INTO users VALUES ('alice', 'admin', ?, '2025-01-01', '2025-01-01')",
                    (PasswordHasher().hash(PASSWORD),))
    (home / "keys.json").write_text(json.dumps([{"name": "app", "sha256": "ab" * 32, "role": "user",
                                                 "groups": ["rh"]}]))
    with sqlite3.connect(home / "state.db") as con:
        con.executescript(
            "CREATE TABLE acks (user TEXT NOT NULL, version TEXT NOT NULL, time TEXT NOT NULL, quiz_passed INTEGER "
            "NOT NULL DEFAULT 1, PRIMARY KEY (user, version));"
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT NOT NULL, "
            "kind TEXT NOT NULL, rating INTEGER, comment TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL DEFAULT '{}', "
            "status TEXT NOT NULL DEFAULT 'open');"
            "CREATE TABLE flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO acks VALUES ('alice', '2025-01', '2025-01-02T00:00:00+00:00', 1);"
            "INSERT INTO feedback (time, user, kind, rating, comment) VALUES ('2025-01-03', 'p1', 'report', NULL, "
            "'réponse fausse');")
    with sqlite3.connect(home / "conversations.db") as con:
        con.executescript(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY, user TEXT NOT NULL, title TEXT NOT NULL, created TEXT "
            "NOT NULL, updated TEXT NOT NULL);"
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, role TEXT NOT NULL, "
            "content TEXT NOT NULL, time TEXT NOT NULL, meta TEXT NOT NULL);"
            "INSERT INTO conversations VALUES ('c1', 'alice', 'Congés', '2099-01-01', '2099-01-01');"
            "INSERT INTO messages (conversation_id, role, content, time, meta) VALUES "
            "('c1', 'user', 'Combien de jours ?', '2099-01-01', '{}'), "
            "('c1', 'assistant', 'Vingt-cinq.', '2099-01-01', '{}');")
    settings = load_settings(settings_path)
    secret = pseudonym_key(settings)
    chain_key, _ = audit_key(settings, home / "audit.db")
    with AuditLog(home / "audit.db", secret, chain_key=chain_key, adopt_plain=True) as log:
        for i in range(5):
            log.record(AuditEvent(action="chat", user="alice", model="m", prompt_tokens=i))
        head = log.head()
    return {"head": head}


def test_files_of_the_earlier_layout_move_into_the_database(kit_env: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "kit.yaml", policy={"conversation_retention_days": 30})
    old = _legacy_files(kit_env, config)
    settings = load_settings(config)
    forget_databases()
    state = open_state(settings)  # the first start of the new version moves them in
    assert [u.name for u in list_users(kit_env)] == ["alice"] and get_groups(kit_env, "alice") == []
    assert verify_password(kit_env, "alice", PASSWORD) == "admin"
    assert [(k.name, k.groups) for k in list_keys(settings)] == [("app", ["rh"])]
    assert state.store.acknowledged("alice", "2025-01") == "2025-01-02T00:00:00+00:00"
    assert [f.comment for f in state.store.feedback()] == ["réponse fausse"]
    got = state.conversations.get("alice", "c1")
    assert got is not None and [m.content for m in got.messages] == ["Combien de jours ?", "Vingt-cinq."]
    assert state.audit.head() == old["head"]  # the same chain, same key
    assert state.audit.verify().ok
    state.audit.record(AuditEvent(action="chat", user="bob"))
    assert state.audit.verify().ok and state.audit.verify().rows_checked == 6
    leftovers = {p.name for p in kit_env.iterdir() if p.name.endswith((".db", ".json"))}
    assert leftovers == {"kit.db"}
    moved = next(kit_env.glob("imported-*"))
    assert moved.stat().st_mode & 0o777 == 0o700
    assert {"users.db", "keys.json", "state.db", "conversations.db", "audit.db"} <= {p.name for p in moved.iterdir()}
    state.close()


def test_a_killed_import_loses_nothing_and_finishes_at_the_next_start(kit_env: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of moving the files in: each file is one transaction, moved away only once its rows
    are committed, so the next start imports the rest and nothing twice."""
    config = write_config(tmp_path / "kit.yaml", policy={"conversation_retention_days": 30})
    _legacy_files(kit_env, config)
    script = (
        "import os, sys\n"
        "import kit.storage.legacy as legacy\n"
        "real = legacy._IMPORTERS['state.db']\n"
        "def die(conn, path):\n"
        "    real(conn, path)\n"
        "    os.kill(os.getpid(), 9)\n"  # inside the transaction of state.db, after users.db and keys.json
        "legacy._IMPORTERS['state.db'] = die\n"
        "from kit.config import load_settings\n"
        "from kit.storage.state import open_state\n"
        f"open_state(load_settings({str(config)!r}))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    assert not (kit_env / "users.db").exists() and (kit_env / "state.db").exists()  # done, and not yet done
    forget_databases()
    state = open_state(load_settings(config))
    assert [u.name for u in list_users(kit_env)] == ["alice"]
    assert [f.comment for f in state.store.feedback()] == ["réponse fausse"]  # once, not twice
    assert state.conversations.get("alice", "c1") is not None and state.audit.verify().ok
    assert not (kit_env / "state.db").exists()
    state.close()


def test_the_same_stores_on_postgresql(pg_url: str, kit_env: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DATABASE_URL", pg_url)
    forget_databases()
    settings = load_settings(write_config(tmp_path / "kit.yaml", policy={"conversation_retention_days": 30}))
    r = kit("db", "upgrade")
    assert r.exit_code == 0 and "-> 0002" in r.output  # type: ignore[attr-defined]
    add_user(kit_env, "alice", "user", PASSWORD, ["rh"])
    key, record = create_key(settings, "app", "user")  # acknowledges, and audits, in PostgreSQL
    assert find_key(list_keys(settings), key) == record
    state = open_state(settings)
    assert state.store.acknowledged("key:app", settings.charter()["version"])
    cid = state.conversations.new_conversation("alice", "t")
    state.conversations.add_message("alice", cid, "user", "bonjour")
    assert state.conversations.list("alice")[0].id == cid
    state.store.set_flag("chat_closed", {"message": "m"})
    assert state.store.flag("chat_closed") == {"message": "m"}
    assert state.audit.verify().ok and state.audit.verify().rows_checked >= 2
    assert verify_password(kit_env, "alice", PASSWORD) == "user" and get_groups(kit_env, "alice") == ["rh"]
    assert not (kit_env / "kit.db").exists()  # nothing local
    state.close()
    forget_databases()
