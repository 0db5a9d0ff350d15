"""Every route that reads documents, scans text or refuses a request leaves an audit row, minimised as chat
rows are (a pseudonym, ids and counts, no text); document search needs the charter and an open chat; scans
and searches count against the requests-per-minute limit; a scan's text is bounded; a cancelled answer is
recorded as cancelled; an upload is bounded while it arrives, chunked or not, its names are checked, and
its errors name the uploaded file, never a temporary path. Real gateway and engine, real Chroma, real
embedding model, real SQLite, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServerHandle

pytestmark = pytest.mark.slow

LEAVE = """# Congés annuels

Article 1. Chaque agent à temps plein bénéficie de vingt-sept jours de congés annuels par an.
Article 2. Les congés sont posés dans l'outil de gestion du temps au moins quinze jours à l'avance.
"""
EMAIL = "jeanne.martin@exemple.fr"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gw(gateway: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    from kit.documents.ingest import ingest
    from kit.storage.users import add_user

    folder = tmp_path_factory.mktemp("docs")
    (folder / "conges.md").write_text(LEAVE, encoding="utf-8")
    report = ingest([folder / "conges.md"], ["rh"], settings=gateway.settings,
                    index=gateway.app.state.context.documents.index())
    assert report.ok and report.chunks >= 1
    add_user(gateway.settings.home, "ana", "user", "a long enough password", ["rh"])
    for user in ("ana", "alice"):
        gateway.acknowledge(user)
    return gateway


def rows(gw: ServerHandle, action: str) -> list[Any]:
    return list(gw.state.audit.rows(action=action))


def wait_rows(gw: ServerHandle, action: str, count: int, timeout: float = 30) -> list[Any]:
    deadline = time.time() + timeout
    while True:
        found = rows(gw, action)
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.1)


def search(gw: ServerHandle, user: str, query: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/documents/search", headers=gw.headers(user), json={"query": query, "k": 5},
                      timeout=120)


def test_search_is_audited_with_ids_and_count_never_the_query(gw: ServerHandle) -> None:
    before = len(rows(gw, "document_search"))
    query = "Combien de jours de congés annuels pour un agent ?"
    r = search(gw, "ana", query)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results
    found = rows(gw, "document_search")
    assert len(found) == before + 1
    row = found[-1]
    assert row.status == "ok" and row.user not in ("", "ana")
    assert row.doc_ids == sorted({str(x["document_id"]) for x in results})
    assert row.detail["results"] == len(results)
    excerpts = str(row.detail["excerpts"]).split(",")
    assert excerpts == [f"{x['document_id']}:{x['chunk_index']}" for x in results]
    assert row.text is None and "congés" not in json.dumps(asdict(row), ensure_ascii=False)


def test_search_needs_the_charter_and_an_open_chat(gw: ServerHandle) -> None:
    r = search(gw, "newcomer", "congés")
    assert r.status_code == 403 and "acknowledge" in r.json()["error"]["message"]
    admin = gw.headers("root", "admin")
    assert httpx.post(gw.url + "/v1/admin/chat", headers=admin, json={"open": False, "message": "maintenance"}
                      ).status_code == 200
    try:
        r = search(gw, "ana", "congés")
        assert r.status_code == 503 and "maintenance" in r.json()["error"]["message"]
    finally:
        httpx.post(gw.url + "/v1/admin/chat", headers=admin, json={"open": True}).raise_for_status()
    assert search(gw, "ana", "congés").status_code == 200


def test_listing_and_scan_are_audited_without_text(gw: ServerHandle) -> None:
    listed = httpx.get(gw.url + "/v1/documents", headers=gw.headers("ana"))
    assert listed.status_code == 200
    row = rows(gw, "document_list")[-1]
    assert row.detail["documents"] == len(listed.json()["data"]) >= 1 and row.user not in ("", "ana")
    text = f"Écrire à {EMAIL} pour le dossier."
    r = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers("ana"), json={"text": text})
    assert r.status_code == 200, r.text
    row = rows(gw, "privacy_scan")[-1]
    assert "EMAIL_ADDRESS" in row.pii_categories and row.detail["length"] == len(text)
    assert row.status == "ok" and row.text is None and EMAIL not in json.dumps(asdict(row), ensure_ascii=False)


def test_scan_refuses_a_text_longer_than_the_longest_message(gw: ServerHandle) -> None:
    limit = gw.settings.policy.max_prompt_chars
    r = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers("ana"), json={"text": "a" * (limit + 1)})
    assert r.status_code == 413
    message = r.json()["error"]["message"]
    assert "policy.max_prompt_chars" in message and str(limit) in message and "caractères" in message


def test_scan_and_search_count_against_lookups_per_minute(gw: ServerHandle) -> None:
    from kit.storage.users import add_user

    add_user(gw.settings.home, "rater", "user", "a long enough password", ["rh"])
    gw.acknowledge("rater")
    limits = gw.settings.limits.user
    saved = limits.lookups_per_minute
    limits.lookups_per_minute = 2
    try:
        scan = {"text": "Bonjour."}
        assert httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers("rater"), json=scan).status_code == 200
        assert search(gw, "rater", "congés").status_code == 200
        r = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers("rater"), json=scan)
        assert r.status_code == 429 and "lookups_per_minute" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) >= 1
        r = search(gw, "rater", "congés")
        assert r.status_code == 429
        assert rows(gw, "privacy_scan")[-1].status == "limited"
        assert rows(gw, "document_search")[-1].status == "limited"
    finally:
        limits.lookups_per_minute = saved


def test_a_context_overflow_refusal_is_audited(gw: ServerHandle) -> None:
    text = " ".join(f"mot{i}" for i in range(1500))  # more tokens than the test server's 1024 of context
    r = httpx.post(gw.url + CHAT, headers=gw.headers("alice"), timeout=60,
                   json={"messages": [{"role": "user", "content": text}], "max_tokens": 4})
    assert r.status_code == 400 and r.json()["error"]["type"] == "context_length_exceeded"
    row = rows(gw, "chat")[-1]
    assert row.status == "refused" and row.detail["reason"] == "context_overflow"
    assert row.text is None and "mot10" not in json.dumps(asdict(row))


def _cancelled(gw: ServerHandle) -> int:
    return sum(1 for row in rows(gw, "chat") if row.status == "cancelled")


def _ended(gw: ServerHandle, count: int) -> int:
    deadline = time.time() + 30
    while _cancelled(gw) < count and time.time() < deadline:
        time.sleep(0.1)
    return _cancelled(gw)


def test_a_request_the_client_leaves_is_recorded_as_cancelled(gw: ServerHandle) -> None:
    body = {"messages": [{"role": "user", "content": "Write a very long essay about rivers."}], "max_tokens": 400,
            "ignore_eos": True, "temperature": 0}
    before = _cancelled(gw)
    with httpx.stream("POST", gw.url + CHAT, headers=gw.headers("alice"), json={**body, "stream": True},
                      timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i > 6:
                break  # leave mid-stream
    assert _ended(gw, before + 1) == before + 1
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.url + CHAT, headers=gw.headers("alice"), json=body, timeout=1.0)
    assert _ended(gw, before + 2) == before + 2
    assert all(row.status != "ok" or row.detail["finish"] != "cancelled" for row in rows(gw, "chat"))


def _multipart(boundary: str, fields: list[tuple[str, str]], files: list[tuple[str, bytes]]) -> Iterator[bytes]:
    for name, value in fields:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for filename, data in files:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _uploads() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("kit-upload-*")}


def test_a_chunked_upload_over_the_limit_is_refused_while_it_arrives(gw: ServerHandle) -> None:
    ui = gw.settings.ui
    saved = ui.max_upload_bytes
    ui.max_upload_bytes = 4096
    before = _uploads()
    try:
        boundary = "kitboundary1234"
        body = _multipart(boundary, [("group", "rh")], [("gros.md", b"# Titre\n\n" + b"texte " * 20_000)])
        r = httpx.post(gw.url + "/v1/documents", content=body, timeout=60,
                       headers={**gw.headers("root", "admin"),
                                "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
        assert r.status_code == 413, r.text
        message = r.json()["error"]["message"]
        assert "ui.max_upload_bytes" in message and "4096" in message and "octets" in message
    finally:
        ui.max_upload_bytes = saved
    assert _uploads() <= before
    assert not [d for d in gw.app.state.context.documents.index().catalog.documents(None) if "gros" in d.source]


def test_an_upload_with_an_invalid_group_or_collection_gets_400(gw: ServerHandle) -> None:
    admin = gw.headers("root", "admin")
    files = {"file": ("note.md", b"# Note\n\nUne note de service.\n")}
    r = httpx.post(gw.url + "/v1/documents", headers=admin, files=files, data={"group": "pas un groupe!"})
    assert r.status_code == 400, r.text
    assert "group" in r.json()["error"]["message"] and "pas un groupe!" in r.json()["error"]["message"]
    r = httpx.post(gw.url + "/v1/documents", headers=admin, files=files, data={"collection": "../etc"})
    assert r.status_code == 400, r.text
    assert "collection" in r.json()["error"]["message"]


def test_upload_errors_name_the_file_never_a_temporary_path(gw: ServerHandle) -> None:
    admin = gw.headers("root", "admin")
    files = [("file", ("rapport.pdf", b"this is not a PDF at all")), ("file", ("vide.md", b""))]
    r = httpx.post(gw.url + "/v1/documents", headers=admin, files=files, data={"group": "rh"}, timeout=120)
    assert r.status_code == 200, r.text
    failed = r.json()["failed"]
    assert {f["source"] for f in failed} == {"rapport.pdf", "vide.md"}
    for issue in failed:
        assert issue["message"].startswith(issue["source"]), issue
    assert tempfile.gettempdir() not in r.text and "kit-upload-" not in r.text
