"""A history people can rely on, through the gateway's API: a stored answer keeps its sources, how it ended and
whether documents were asked for; the export holds them; feedback names the answer it is about; a removed
document stays in the register of documents for the audit's retention. A real gateway on 127.0.0.1 (real
stores, real document index, real embedding model); the engine answers with what it was given, cut at
``max_tokens`` words (the model is not the subject: what is kept about its answers is)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from echo_engine import CuttingEcho, start_echo_gateway
from helpers import ServerHandle, run_kit

PARKING = """# Stationnement

## Badge de parking

Le badge de parking du personnel est délivré par le service logistique, sur demande écrite visée par le chef
de service. Il est valable deux ans.
"""
ARCHIVES = """# Archives

Les dossiers clos depuis plus de cinq ans sont versés au service des archives chaque printemps.
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    from kit.storage.users import add_user

    base = tmp_path_factory.mktemp("history")
    old = {k: os.environ.get(k) for k in ("KIT_HOME", "KIT_CONFIG")}
    handle, stop = start_echo_gateway(base / "home", base / "kit.yaml", engine=CuttingEcho())
    os.environ["KIT_CONFIG"] = str(base / "kit.yaml")
    home = handle.settings.home
    add_user(home, "alice", "user", "a long enough password")
    add_user(home, "root", "admin", "a long enough password")
    add_user(home, "audra", "auditor", "a long enough password")
    handle.acknowledge("alice")
    upload(handle, "stationnement.md", PARKING)
    yield handle
    stop()
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def api(gw: ServerHandle, method: str, path: str, user: str = "alice", role: str = "user",
        **kw: Any) -> httpx.Response:
    return httpx.request(method, gw.url + path, headers=gw.headers(user, role), timeout=120, **kw)


def upload(gw: ServerHandle, name: str, text: str, groups: tuple[str, ...] = ()) -> dict[str, Any]:
    files = [("file", (name, text.encode("utf-8"), "text/markdown"))]
    r = api(gw, "POST", "/v1/documents", "root", "admin", files=files, data={"group": list(groups)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def chat(gw: ServerHandle, text: str, cid: str | None, *, documents: bool = False,
         max_tokens: int = 400) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    if cid:
        body["conversation_id"] = cid
    if documents:
        body["kit"] = {"documents": True}
    r = api(gw, "POST", "/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def new_conversation(gw: ServerHandle, title: str) -> str:
    r = api(gw, "POST", "/v1/conversations", json={"title": title})
    assert r.status_code == 200 and r.json()["stored"], r.text
    return str(r.json()["id"])


def audit_rows(gw: ServerHandle, action: str) -> list[Any]:
    return list(gw.state.audit.rows(action=action))


def test_a_stored_answer_keeps_its_sources_its_ending_and_the_documents_switch(gw: ServerHandle) -> None:
    cid = new_conversation(gw, "Badge")
    cut = chat(gw, "Qui délivre le badge de parking du personnel ?", cid, documents=True, max_tokens=6)
    assert cut["choices"][0]["finish_reason"] == "length"
    assert [s["source"] for s in cut["kit"]["sources"]][:1] == ["stationnement.md"]
    whole = chat(gw, "Merci beaucoup.", cid)
    assert whole["choices"][0]["finish_reason"] == "stop"

    stored = api(gw, "GET", f"/v1/conversations/{cid}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    first, second = stored[1]["meta"], stored[3]["meta"]
    assert first["finish"] == "length" and first["documents"] is True
    assert first["sources"] == cut["kit"]["sources"]  # as shown under the answer, excerpt and relevance
    assert first["answer_id"] == cut["id"]
    assert second["finish"] == "stop" and second["documents"] is False and "sources" not in second
    assert second["answer_id"] == whole["id"]

    exported = api(gw, "GET", "/v1/me/export").json()
    conv = next(c for c in exported["conversations"] if c["id"] == cid)
    assert conv["messages"][1]["meta"]["sources"][0]["source"] == "stationnement.md"
    assert "service logistique" in conv["messages"][1]["meta"]["sources"][0]["text"]
    assert conv["messages"][1]["meta"]["finish"] == "length"


def test_feedback_names_the_answer_it_is_about(gw: ServerHandle) -> None:
    cid = new_conversation(gw, "Avis")
    answer = chat(gw, "Rédige une note sur le tri du courrier.", cid)
    other = chat(gw, "Une autre question sans historique.", None)
    body = {"kind": "feedback", "rating": -1, "comment": "hors sujet", "conversation_id": cid,
            "answer_id": answer["id"], "model": "echo"}
    r = api(gw, "POST", "/v1/feedback", json=body)
    assert r.status_code == 200, r.text
    fid = r.json()["id"]

    # the administrators' list, the user's export and both audit rows carry the answer's id
    items = api(gw, "GET", "/v1/admin/feedback", "root", "admin").json()["data"]
    item = next(i for i in items if i["id"] == fid)
    assert item["meta"]["answer_id"] == answer["id"] and item["meta"]["conversation_id"] == cid
    mine = api(gw, "GET", "/v1/me/export").json()["feedback"]
    assert next(i for i in mine if i["id"] == fid)["meta"]["answer_id"] == answer["id"]
    assert any(row.detail.get("answer_id") == answer["id"] for row in audit_rows(gw, "feedback"))
    assert any(row.detail.get("answer_id") == answer["id"] for row in audit_rows(gw, "chat"))
    assert any(row.detail.get("answer_id") == other["id"] for row in audit_rows(gw, "chat"))

    # an answer that is not in the conversation named is refused, saying so; nothing is stored
    wrong = {**body, "answer_id": other["id"]}
    r = api(gw, "POST", "/v1/feedback", json=wrong)
    assert r.status_code == 404 and other["id"] in r.json()["error"]["message"], r.text
    assert len(api(gw, "GET", "/v1/admin/feedback", "root", "admin").json()["data"]) == len(items)
    # an answer outside any kept conversation can still be named (history off, or a report on it)
    r = api(gw, "POST", "/v1/feedback", json={"kind": "report", "comment": "faux", "answer_id": other["id"]})
    assert r.status_code == 200, r.text
    r = api(gw, "POST", "/v1/feedback", json={"kind": "report", "comment": "x", "answer_id": "x" * 65})
    assert r.status_code == 422 and "answer_id" in r.text, r.text


def test_a_removed_document_stays_in_the_register(gw: ServerHandle) -> None:
    report = upload(gw, "archives.md", ARCHIVES, ("rh",))
    doc_id = report["documents"][0]
    newer = ARCHIVES + "\nLe bordereau de versement est signé par le chef de service.\n"
    assert upload(gw, "archives.md", newer, ("rh",))["documents"] == [doc_id]  # a second version, same id
    r = api(gw, "DELETE", f"/v1/documents/{doc_id}", "root", "admin")
    assert r.status_code == 200 and r.json()["removed"] == [doc_id]
    removed = audit_rows(gw, "document_removed")[-1]
    assert removed.doc_ids == [doc_id]

    # the audit row's id leads to the register: name, fingerprint, groups and dates of each version
    for user, role in (("root", "admin"), ("audra", "auditor")):
        r = api(gw, "GET", "/v1/admin/documents/register", user, role)
        assert r.status_code == 200, r.text
    data = r.json()
    assert data["retention_days"] == gw.settings.policy.audit_retention_days
    versions = [e for e in data["data"] if e["id"] == doc_id]
    assert len(versions) == 2, versions
    old, new = sorted(versions, key=lambda e: e["replaced_at"] is None)  # the same second, maybe
    for entry, text in ((old, ARCHIVES), (new, newer)):
        assert entry["name"] == "archives.md" and entry["groups"] == ["rh"] and entry["collection"] == "default"
        assert entry["sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert old["replaced_at"] and old["removed_at"] is None
    assert new["removed_at"] and new["replaced_at"] is None
    parking = [e for e in data["data"] if e["name"] == "stationnement.md"]
    assert len(parking) == 1 and parking[0]["removed_at"] is None and parking[0]["groups"] == ["public"]

    assert api(gw, "GET", "/v1/admin/documents/register", "alice").status_code == 403

    # the same register on the command line
    done = run_kit("docs", "register", "--json", env={"KIT_HOME": str(gw.settings.home)})
    assert done.returncode == 0, done.stderr
    assert {(e["id"], e["sha256"]) for e in json.loads(done.stdout)["data"]} == {
        (e["id"], e["sha256"]) for e in data["data"]
    }
    done = run_kit("docs", "register", env={"KIT_HOME": str(gw.settings.home)})
    assert done.returncode == 0 and "archives.md" in done.stdout and old["sha256"][:12] in done.stdout


def test_a_file_not_indexed_says_why_in_a_word_a_page_can_translate(gw: ServerHandle) -> None:
    files = [("file", ("rapport.pdf", b"this is not a PDF at all", "application/pdf")),
             ("file", ("abime.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nstream\x00\x01", "application/pdf")),
             ("file", ("vide.md", b"", "text/markdown"))]
    r = api(gw, "POST", "/v1/documents", "root", "admin", files=files)
    assert r.status_code == 200, r.text
    failed = {f["source"]: f for f in r.json()["failed"]}
    assert {name: f["reason"] for name, f in failed.items()} == {
        "rapport.pdf": "wrong_format", "abime.pdf": "damaged", "vide.md": "no_text"}
    assert all(f["message"].startswith(name) for name, f in failed.items())  # the English text stays for scripts


def test_the_register_forgets_what_ended_before_the_retention(tmp_path: Path) -> None:
    from kit.documents.register import SCHEMA, entries, opened, purge, removed, replaced

    db = sqlite3.connect(tmp_path / "docs.db", isolation_level=None)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def at(days: int) -> str:
        return (start + timedelta(days=days)).isoformat(timespec="seconds")

    opened(db, "a", "a.md", "default", "1" * 64, ["public"], 10, at(0))
    opened(db, "b", "b.md", "default", "2" * 64, ["rh"], 10, at(0))
    replaced(db, "a", at(10))
    opened(db, "a", "a.md", "default", "3" * 64, ["public"], 12, at(10))
    removed(db, "b", at(20))
    assert len(entries(db)) == 3
    assert purge(db, at(200), retention_days=180) == 1  # a's first version ended 190 days before
    assert {(e.id, e.sha256[0]) for e in entries(db)} == {("a", "3"), ("b", "2")}
    assert purge(db, at(199), retention_days=180) == 0  # b ended 179 days before: kept
    assert purge(db, at(201), retention_days=180) == 1
    assert [e.id for e in entries(db)] == ["a"]  # a document still indexed is never forgotten
    assert purge(db, at(5000), retention_days=180) == 0


def test_an_index_older_than_the_register_is_registered_when_opened(tmp_path: Path) -> None:
    from kit.documents.store import Catalog

    path = tmp_path / "docs.db"
    Catalog(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE register")  # as an index written before the register existed
    db.execute("INSERT INTO documents (id, source, collection, sha256, groups, state, size, ingested_at) VALUES "
               "('d1', 'notes/conges.md', 'default', ?, '[\"rh\"]', 'ready', 42, '2026-01-02T10:00:00+00:00')",
               ("4" * 64,))
    db.execute("INSERT INTO documents (id, source, collection, state) VALUES ('d2', 'x.md', 'default', 'pending')")
    db.close()
    for _ in range(2):  # once only
        catalog = Catalog(path)
        entries = catalog.register_entries(retention_days=180)
        catalog.close()
        assert [(e.id, e.name, e.sha256, e.groups, e.size, e.removed_at) for e in entries] == [
            ("d1", "notes/conges.md", "4" * 64, ["rh"], 42, None)
        ]
