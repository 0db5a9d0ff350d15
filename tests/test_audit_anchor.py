"""An audit log that an administrator of its database cannot rewrite unseen, and the data rights on feedback.

The chain is keyed (HMAC-SHA256, key outside $KIT_HOME); its head is printed, checked and written to the
system log; the pseudonymisation key leaves $KIT_HOME; feedback has a retention period and follows the
user's export and deletion; the browser chat's export does not stay on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from helpers import ServerHandle

from kit.audit import AuditEvent, AuditRow, pseudonymize, publish_head
from kit.audit.database import Database
from kit.audit.records import canon
from kit.config import Settings, load_settings
from kit.errors import AuditError, ConfigError, UsageError
from kit.storage.db import open_database
from kit.storage.keyfiles import key_path
from kit.storage.state import GatewayState, open_state, purge_records, start_maintenance
from kit.storage.store import Store

HEAD = re.compile(r"([0-9]+):([0-9a-f]{64})")
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def plain_hash(prev: str, payload: dict[str, Any]) -> str:
    """The chain as it was before keys: sha256(prev_hash + canonical JSON)."""
    return hashlib.sha256((prev + canon(payload)).encode("utf-8")).hexdigest()


def rechain_plainly(db: Path, start: int) -> None:
    """What someone with write access to the database could do: recompute every hash from ``start`` on with
    plain SHA-256 and move the recorded head along."""
    conn = sqlite3.connect(db, isolation_level=None)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(audit_log)")]
    prev = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (start - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    last = start - 1
    for values in conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id >= ? ORDER BY id",
                               (start,)).fetchall():
        t = dict(zip(cols, values, strict=True))
        row = AuditRow(t["id"], t["ts"], t["pseudonym"], t["action"], t["model"], t["prompt_tokens"],
                       t["completion_tokens"], t["latency_ms"], json.loads(t["pii_categories"]), t["pii_action"],
                       json.loads(t["doc_ids"]), t["status"], json.loads(t["detail"]), t["body"], prev_hash, "")
        payload = {k: v for k, v in asdict(row).items() if k not in ("prev_hash", "hash")}
        row.hash = plain_hash(prev_hash, payload)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev_hash, row.hash, row.id))
        prev_hash, last = row.hash, row.id
    conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (last, prev_hash))
    conn.close()


@pytest.fixture
def settings(kit_env: Path) -> Settings:
    return load_settings()


@pytest.fixture
def state(settings: Settings) -> Iterator[GatewayState]:
    opened = open_state(settings)
    yield opened
    opened.close()


def fill(state: GatewayState, n: int) -> None:
    for i in range(n):
        state.audit.record(AuditEvent(action="chat", user=f"user{i % 3}", model="m", prompt_tokens=i))


def kit(*args: str) -> Any:
    from kit.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --- the keyed chain ----------------------------------------------------------------------------------------

def test_edited_row_with_recomputed_plain_hashes_is_detected(state: GatewayState, settings: Settings) -> None:
    fill(state, 6)
    db = settings.home / "kit.db"
    sqlite3.connect(db, isolation_level=None).execute("UPDATE audit_log SET prompt_tokens = 999 WHERE id = 3")
    rechain_plainly(db, 3)
    result = state.audit.verify()
    assert not result.ok and result.first_bad_id == 3 and "row 3 was altered" in result.reason
    r = kit("audit", "verify")
    assert r.exit_code == 1 and "first bad row: 3" in r.output


def test_rows_are_keyed_with_the_audit_key_not_the_pseudonym_key(state: GatewayState, settings: Settings) -> None:
    row = state.audit.record(AuditEvent(action="login", user="alice"))
    payload = {k: v for k, v in asdict(row).items() if k not in ("prev_hash", "hash")}
    assert row.hash != plain_hash(row.prev_hash, payload)
    audit_key = key_path(settings, "audit_key_file", "audit.key").read_bytes()
    assert audit_key != state.secret
    assert row.user == pseudonymize("alice", state.secret)


def test_cut_tail_is_detected_against_a_noted_head(state: GatewayState, settings: Settings) -> None:
    fill(state, 6)
    printed = kit("audit", "head")
    assert printed.exit_code == 0
    noted = printed.output.strip()
    assert HEAD.fullmatch(noted) and noted.startswith("6:")
    conn = sqlite3.connect(settings.home / "kit.db", isolation_level=None)
    conn.execute("DELETE FROM audit_log WHERE id > 4")
    conn.execute("UPDATE audit_head SET last_id = 4, last_hash = (SELECT hash FROM audit_log WHERE id = 4)")
    assert kit("audit", "verify").exit_code == 0  # the cut is consistent on its own...
    r = kit("audit", "verify", "--head", noted)  # ...but not with the head noted before it
    assert r.exit_code == 1
    assert "rows 5 to 6 were cut" in r.output and "first bad row: 5" in r.output
    wrong = "4:" + "ab" * 32
    r = kit("audit", "verify", "--head", wrong)
    assert r.exit_code == 1 and "row 4 differs from the head noted earlier" in r.output
    with pytest.raises(UsageError, match="ROW:HASH"):
        kit("audit", "verify", "--head", "not-a-head")


def test_noted_head_still_in_the_log_verifies(state: GatewayState) -> None:
    fill(state, 3)
    row, digest = state.audit.head()
    fill(state, 2)
    r = kit("audit", "verify", "--head", f"{row}:{digest}")
    assert r.exit_code == 0 and f"the head noted earlier (row {row}) is intact" in r.output


def test_audit_head_output(state: GatewayState) -> None:
    fill(state, 2)
    row, digest = state.audit.head()
    plain = kit("audit", "head")
    assert plain.exit_code == 0 and plain.output == f"{row}:{digest}\n"
    data = json.loads(kit("audit", "head", "--json").output)
    assert data == {"row": row, "hash": digest, "head": f"{row}:{digest}"}


# --- the keys ------------------------------------------------------------------------------------------------

def test_key_files_are_private_and_outside_kit_home(state: GatewayState, settings: Settings, kit_env: Path) -> None:
    assert settings.source
    folder = Path(settings.source).resolve().parent
    for name in ("audit.key", "pseudonym.key"):
        path = folder / name
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600 and len(path.read_bytes()) == 32
        assert kit_env.resolve() not in path.resolve().parents
    assert [p.name for p in kit_env.rglob("*.key")] == []


def test_default_key_places(kit_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = Settings(source="/etc/kit/kit.yaml")
    assert key_path(system, "audit_key_file", "audit.key") == Path("/etc/kit/audit.key")
    assert key_path(system, "pseudonym_key_file", "pseudonym.key") == Path("/etc/kit/pseudonym.key")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert key_path(Settings(), "audit_key_file", "audit.key") == tmp_path / "xdg" / "kit" / "audit.key"
    inside = Settings.model_validate({"policy": {"audit_key_file": str(kit_env / "keys" / "audit.key")}})
    with pytest.raises(ConfigError, match=r"audit_key_file .*beside the data it protects"):
        key_path(inside, "audit_key_file", "audit.key")


@pytest.mark.parametrize("name", ["audit.key", "pseudonym.key"])
def test_group_readable_key_is_refused(settings: Settings, name: str) -> None:
    open_state(settings).close()
    path = Path(str(settings.source)).parent / name
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} .*mode 0640.*chmod 600"):
        open_state(settings)


def test_missing_audit_key_with_rows_is_refused(state: GatewayState, settings: Settings) -> None:
    fill(state, 2)
    state.close()
    key = Path(str(settings.source)).parent / "audit.key"
    key.unlink()
    with pytest.raises(ConfigError, match="is missing, but the audit log already holds rows.*restore"):
        open_state(settings)
    assert not key.exists(), "no new key is made up for a keyed log"


def test_another_audit_key_is_refused(state: GatewayState, settings: Settings) -> None:
    fill(state, 2)
    state.close()
    key = Path(str(settings.source)).parent / "audit.key"
    key.write_bytes(os.urandom(32))
    with pytest.raises(AuditError, match="audit key does not match"):
        open_state(settings)


def test_pseudonym_key_moves_out_of_kit_home(settings: Settings, kit_env: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    old = os.urandom(32)
    legacy = kit_env / "secret.key"
    legacy.write_bytes(old)
    legacy.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="kit.storage.keyfiles"):
        state = open_state(settings)
    try:
        moved = Path(str(settings.source)).parent / "pseudonym.key"
        assert moved.read_bytes() == old and (moved.stat().st_mode & 0o777) == 0o600
        assert not legacy.exists()
        assert state.pseudonym("alice") == pseudonymize("alice", old), "pseudonyms stay stable"
        assert any("moved the pseudonymisation key" in r.getMessage() for r in caplog.records)
    finally:
        state.close()


# --- logs from before keyed chains ---------------------------------------------------------------------------

def write_plain_log(db: Path, n: int) -> None:
    """A log as kit wrote it before keyed chains (plain SHA-256, no chain record)."""
    Database(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE audit_chain")
    prev = "0" * 64
    for i in range(1, n + 1):
        row = AuditRow(i, (START + timedelta(minutes=i)).isoformat(timespec="microseconds"), "abcd", "chat", "m",
                       i, 1, 5, [], "", [], "ok", {}, None, prev, "")
        payload = {k: v for k, v in asdict(row).items() if k not in ("prev_hash", "hash")}
        row.hash = plain_hash(prev, payload)
        conn.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
            row.id, row.time, row.user, row.action, row.model, row.prompt_tokens, row.completion_tokens,
            row.latency_ms, "[]", "", "[]", "ok", "{}", None, row.prev_hash, row.hash))
        prev = row.hash
    conn.execute("INSERT INTO audit_head VALUES (1, ?, ?)", (n, prev))
    conn.close()


def test_plain_log_from_before_keys_still_verifies(settings: Settings) -> None:
    write_plain_log(settings.home / "audit.db", 5)  # a log file of the one-machine layout, moved in at start
    db = settings.home / "kit.db"
    state = open_state(settings)  # first start after the upgrade: the key is created, the log adopted
    try:
        assert state.audit.verify().ok
        fill(state, 2)
        result = state.audit.verify()
        assert result.ok and result.rows_checked == 7, result.reason
    finally:
        state.close()
    sqlite3.connect(db, isolation_level=None).execute("UPDATE audit_log SET model = 'x' WHERE id = 2")
    rechain_plainly(db, 2)  # rewrites the old rows and the new ones' links, plainly
    r = kit("audit", "verify")
    assert r.exit_code == 1 and "first bad row" in r.output and "altered" in r.output


def test_old_rows_stay_sealed_before_any_new_row(settings: Settings) -> None:
    write_plain_log(settings.home / "audit.db", 5)
    db = settings.home / "kit.db"
    open_state(settings).close()
    sqlite3.connect(db, isolation_level=None).execute("UPDATE audit_log SET model = 'x' WHERE id = 2")
    rechain_plainly(db, 2)
    r = kit("audit", "verify")
    assert r.exit_code == 1 and "rows up to 5 (chained with plain SHA-256" in r.output


def test_plain_log_with_an_existing_key_needs_kit_audit_seal(state: GatewayState, settings: Settings) -> None:
    state.close()
    db = settings.home / "kit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    write_plain_log(settings.home / "audit.db", 3)
    with pytest.raises(AuditError, match="kit audit seal"):
        open_state(settings)
    sealed = kit("audit", "seal")
    assert sealed.exit_code == 0 and sealed.output.startswith("OK: 3 rows verified")
    assert kit("audit", "verify").exit_code == 0


def test_removing_the_chain_record_after_a_plain_rewrite_is_refused(state: GatewayState, settings: Settings) -> None:
    fill(state, 4)
    db = settings.home / "kit.db"
    rechain_plainly(db, 1)
    sqlite3.connect(db, isolation_level=None).execute("DELETE FROM audit_chain")
    result = state.audit.verify()
    assert not result.ok and "chain record" in result.reason
    state.close()
    with pytest.raises(AuditError, match="tampering"):
        open_state(settings)


# --- the head in the system log -----------------------------------------------------------------------------

def test_head_goes_to_the_journal_at_purge(state: GatewayState, settings: Settings,
                                          caplog: pytest.LogCaptureFixture) -> None:
    fill(state, 2)
    with caplog.at_level(logging.INFO, logger="kit.audit"):
        done = purge_records(state, settings, address=str(Path(tempfile.gettempdir()) / "no-such-dev-log"))
    row, digest = state.audit.head()
    assert done.head == f"{row}:{digest}"
    lines = [r.getMessage() for r in caplog.records if r.name == "kit.audit"]
    assert f"kit audit head {row}:{digest} (purge)" in lines
    with caplog.at_level(logging.INFO, logger="kit.audit"):
        r = kit("audit", "purge")
    assert r.exit_code == 0 and "audit head" in r.output
    assert sum("(purge)" in rec.getMessage() for rec in caplog.records if rec.name == "kit.audit") == 2


@pytest.fixture
def dev_log() -> Iterator[tuple[str, socket.socket]]:
    folder = tempfile.mkdtemp(prefix="kit-devlog-")  # short: a UNIX socket path has at most 107 bytes
    path = os.path.join(folder, "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def test_head_goes_to_syslog_hourly_and_at_purge(state: GatewayState, settings: Settings,
                                                dev_log: tuple[str, socket.socket]) -> None:
    path, sock = dev_log
    fill(state, 1)
    stop = start_maintenance(state, settings, purge_every_s=3600, head_every_s=0.05, address=path)
    try:
        first, second = sock.recv(4096).decode(), sock.recv(4096).decode()
    finally:
        stop.set()
        time.sleep(0.2)
    row, digest = state.audit.head()
    assert re.fullmatch(rf"<\d+>kit-audit: kit audit head {row}:{digest} \(purge\)\x00?", first), first
    assert f"kit audit head {row}:{digest} (hourly)" in second
    assert first.startswith(f"<{(10 << 3) | 6}>"), "facility authpriv, priority info"
    publish_head(state.audit, "test", address=path)
    assert "(test)" in sock.recv(4096).decode()


# --- feedback: retention, export, deletion ------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        return self.moment


def test_feedback_is_purged_after_its_retention(state: GatewayState, settings: Settings) -> None:
    assert settings.policy.feedback_retention_days == 365
    clock = Clock()
    store = Store(open_database(settings.home / "simulated"), now=clock)
    store.add_feedback("p-old", "report", None, "vieux signalement", {})
    clock.moment = START + timedelta(days=200)
    store.add_feedback("p-new", "feedback", 1, "récent", {})
    clock.moment = START + timedelta(days=366)
    assert store.purge_feedback(365) == 1
    assert [i.comment for i in store.feedback()] == ["récent"]
    store.close()
    # the daily purge and `kit audit purge` apply policy.feedback_retention_days (here against today's date)
    old = Store(open_database(settings.home), now=lambda: datetime.now(UTC) - timedelta(days=400))
    old.add_feedback("p-old", "feedback", -1, "bien trop vieux", {})
    old.close()
    state.store.add_feedback("p-new", "feedback", 1, "d'aujourd'hui", {})
    r = kit("audit", "purge")
    assert r.exit_code == 0 and "1 feedback item(s)" in r.output
    assert [i.comment for i in state.store.feedback()] == ["d'aujourd'hui"]
    assert any(row.detail.get("scope") == "feedback" for row in state.audit.rows(action="purge"))


@pytest.mark.slow
def test_feedback_is_exported_and_deleted_with_the_users_data(gateway: ServerHandle) -> None:
    gw = gateway
    r = httpx.post(gw.url + "/v1/feedback", headers=gw.headers("fiona"),
                   json={"kind": "report", "comment": "le résumé oublie un point"})
    assert r.status_code == 200
    httpx.post(gw.url + "/v1/feedback", headers=gw.headers("gaston"), json={"rating": 1, "comment": "merci"})
    export = httpx.get(gw.url + "/v1/me/export", headers=gw.headers("fiona")).json()
    assert [(f["kind"], f["comment"]) for f in export["feedback"]] == [("report", "le résumé oublie un point")]
    assert "user" not in export["feedback"][0]
    gone = httpx.delete(gw.url + "/v1/conversations", headers=gw.headers("fiona")).json()
    assert gone["feedback_deleted"] == 1
    assert httpx.get(gw.url + "/v1/me/export", headers=gw.headers("fiona")).json()["feedback"] == []
    assert gw.state.store.user_feedback(gw.state.pseudonym("fiona")) == []
    assert [f.comment for f in gw.state.store.user_feedback(gw.state.pseudonym("gaston"))] == ["merci"]
    deletion = list(gw.state.audit.rows(action="delete_user_data"))[-1]
    assert deletion.detail["feedback"] == 1 and deletion.user == gw.state.pseudonym("fiona")


# --- the browser chat's export -------------------------------------------------------------------------------

def test_browser_export_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.app import create_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    class Client:
        sessions: dict[str, str] = {}
        seen: dict[str, Any] = {}

        def role_of(self, user: str) -> str:
            return "user"

        def export_me(self, who: Any) -> dict[str, Any]:
            return {"user": who.user, "conversations": [], "feedback": [{"comment": "EXPORT-MARKER"}]}

    demo = create_ui(load_settings(), "http://127.0.0.1:9", client=Client())  # type: ignore[arg-type]
    handlers = next(f for f in demo.fns.values() if f.name == "export").fn.__self__  # type: ignore[union-attr]
    out = handlers.export("fr", None)
    link = out[handlers.c.export_file]["value"]
    token = link.split('href="kit/download/', 1)[1].split('"', 1)[0]
    assert not (tmp_path / "gradio").exists() or not list((tmp_path / "gradio").rglob("*.json")), \
        "nothing goes to Gradio's cache, which serves its files to anyone signed in"
    (served,) = handlers.downloads.pending()
    assert "EXPORT-MARKER" in served.read_text(encoding="utf-8")
    assert served.stat().st_mode & 0o077 == 0
    name, data = handlers.downloads.take(token, frozenset({"local"}))
    assert b"EXPORT-MARKER" in data and name.startswith("kit-export-")
    assert list((tmp_path / "tmp").iterdir()) == [], "the file is deleted once downloaded"
