"""Usage rules in the gateway: charter and acknowledgement, personal data, output marking, audit, rights of
persons. Real gateway with the echo engine (what reaches the model is the subject, not what it answers),
real detector, real SQLite, real HTTP on 127.0.0.1; the rules that need the real model behind them are in
test_policy_served.py."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServerHandle, run_kit, write_config

from kit.config import load_settings

EMAIL = "claire.martin@exemple.fr"
IBAN = "FR76 3000 6000 0112 3456 7890 189"


@pytest.fixture(scope="module")
def gw(echo_gateway: ServerHandle) -> ServerHandle:
    echo_gateway.acknowledge("alice")
    return echo_gateway


def chat(gw: ServerHandle, text: str, user: str = "alice", **extra: object) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(user), json=body, timeout=120)


def test_charter_lists_every_rule(gw: ServerHandle) -> None:
    c = httpx.get(gw.url + "/v1/charter", headers=gw.headers("alice")).json()
    s = gw.settings
    assert c["purpose"] == s.deployment.purpose and len(c["version"]) == 16
    assert [u["fr"] for u in c["forbidden_uses"]] == [u.fr for u in s.policy.forbidden_uses]
    assert any("décision" in u["fr"] for u in c["forbidden_uses"])  # no decision about people by default
    assert all("answer" not in q for q in c["quiz"])  # the answers are not given away
    assert c["user"]["acknowledged_at"]
    assert c["contacts"]["dpo"] == "dpo@example.org"


def test_charter_version_changes_with_content(tmp_path: Path) -> None:
    a = load_settings(write_config(tmp_path / "a.yaml")).charter()["version"]
    b = load_settings(write_config(tmp_path / "b.yaml", policy={"allowed_uses": ["Rédiger des courriels"]}))
    assert a != b.charter()["version"]
    assert a == load_settings(write_config(tmp_path / "c.yaml")).charter()["version"]


def test_acknowledgement_gate_and_quiz(gw: ServerHandle) -> None:
    r = chat(gw, "Bonjour", user="newcomer")
    assert r.status_code == 403 and "/v1/charter/acknowledge" in r.json()["error"]["message"]
    version = httpx.get(gw.url + "/v1/charter", headers=gw.headers("newcomer")).json()["version"]
    wrong = httpx.post(gw.url + "/v1/charter/acknowledge", headers=gw.headers("newcomer"),
                       json={"version": version, "quiz_answers": [1, 0, 0]})
    assert wrong.status_code == 403 and "question" in wrong.json()["error"]["message"]
    stale = httpx.post(gw.url + "/v1/charter/acknowledge", headers=gw.headers("newcomer"),
                       json={"version": "0" * 16, "quiz_answers": [0, 1, 1]})
    assert stale.status_code == 403
    gw.acknowledge("newcomer")
    assert chat(gw, "Bonjour", user="newcomer").status_code == 200


def test_blocked_personal_data_never_reaches_the_engine(gw: ServerHandle) -> None:
    before = gw.engine.stats.requests_total
    r = chat(gw, "Mon numéro de sécurité sociale est 1 85 05 78 006 084 91, peux-tu le vérifier ?")
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "personal_data_blocked" and "FR_NIR" in err["message"]
    r = chat(gw, "Paie avec la carte 4970 1012 3456 7893 stp", stream=True)
    assert r.status_code == 422 and "CREDIT_CARD" in r.json()["error"]["message"]
    assert gw.engine.stats.requests_total == before  # the engine's own counter did not move
    rows = [row for row in gw.state.audit.rows(action="chat") if row.status == "blocked"]
    assert rows and "FR_NIR" in rows[-2].pii_categories and rows[-1].pii_action == "block"


def test_masked_data_reaches_the_model_as_placeholders(gw: ServerHandle) -> None:
    r = chat(gw, f"Prépare un virement vers {IBAN} pour la facture 2024-118.")
    assert r.status_code == 200
    meta = r.json()["kit"]
    assert meta["personal_data"]["masked"] == ["IBAN_CODE"]
    sent = meta["sent_to_model"][0]
    assert "[IBAN_CODE_1]" in sent and "3000 6000" not in sent and "2024-118" in sent


def test_api_scan_preview(gw: ServerHandle) -> None:
    r = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers(), json={"text": f"écrire à {EMAIL}, IBAN {IBAN}"})
    data = r.json()
    assert {f["type"] for f in data["findings"]} == {"EMAIL_ADDRESS", "IBAN_CODE"}
    assert data["actions"] == {"EMAIL_ADDRESS": "warn", "IBAN_CODE": "mask"} and "[IBAN_CODE_1]" in data["masked_text"]


def test_every_message_the_client_sends_is_scanned(gw: ServerHandle) -> None:
    """A system or assistant message is scanned as a user message is (blocked, masked, audited)."""
    before = gw.engine.stats.requests_total
    for role in ("system", "assistant"):
        r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=120, json={
            "messages": [{"role": role, "content": "Le patient a le NIR 1 85 05 78 006 084 91."},
                         {"role": "user", "content": "Résume son dossier."}], "max_tokens": 8})
        assert r.status_code == 422 and "FR_NIR" in r.json()["error"]["message"], (role, r.text)
        row = [row for row in gw.state.audit.rows(action="chat")][-1]
        assert row.status == "blocked" and row.pii_categories == ["FR_NIR"]
    assert gw.engine.stats.requests_total == before
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(), timeout=120, json={
        "messages": [{"role": "system", "content": f"Le fournisseur est payé sur l'IBAN {IBAN}."},
                     {"role": "user", "content": "Rédige un rappel de paiement."}], "max_tokens": 8})
    assert r.status_code == 200 and r.json()["kit"]["personal_data"]["masked"] == ["IBAN_CODE"]
    assert list(gw.state.audit.rows(action="chat"))[-1].pii_categories == ["IBAN_CODE"]


def test_detection_turned_off_scans_nothing_and_says_so(gw: ServerHandle, tmp_path: Path) -> None:
    """policy.pii_detection: false (to measure the scan's cost, or behind another filter): messages pass
    unscanned and unchanged, and `kit doctor` and `kit report` say that the detection is off."""
    from kit.ops.report import build_report, to_markdown
    from kit.rules.policy import Gate

    settings = gw.settings.model_copy(deep=True)
    messages = [{"role": "user", "content": "Mon numéro de sécurité sociale est 1 85 05 78 006 084 91, et mon IBAN "
                 f"{IBAN}."}]
    assert Gate(settings, gw.state).apply_pii(messages).blocked == ["FR_NIR"]
    settings.policy.pii_detection = False
    outcome = Gate(settings, gw.state).apply_pii(messages)
    assert outcome.messages == messages and outcome.categories == [] and not outcome.blocked
    assert settings.charter()["pii_detection"] is False and "pii_detection" not in gw.settings.charter()
    assert settings.charter()["version"] != gw.settings.charter()["version"]  # users acknowledge it again
    cfg = write_config(tmp_path / "off.yaml", policy={"pii_detection": False})
    doctor = run_kit("doctor", env={"KIT_CONFIG": str(cfg)})
    assert "WARN  personal data: policy.pii_detection is off" in doctor.stdout
    report = build_report(load_settings(cfg))
    assert report["personal_data"]["detection"] is False
    assert "detection turned off" in to_markdown(report)


def test_remembered_messages_are_applied_without_a_scan(gw: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway applies the policy on its event loop, without a thread hop, when every message was
    scanned before (a conversation's earlier turns); otherwise it scans in a worker thread."""
    from kit.rules.policy import Gate
    from kit.rules.privacy import detector as module

    gate = Gate(gw.settings, gw.state)
    messages = [{"role": "user", "content": f"Transfère {IBAN} à {EMAIL}, réf. {uuid.uuid4().hex[:8]}."}]
    assert gate.apply_pii_remembered(messages) is None  # never seen: the caller scans it
    scanned = gate.apply_pii(messages)
    assert scanned.masked == ["IBAN_CODE"] and scanned.warned == ["EMAIL_ADDRESS"]
    assert gate.apply_pii_remembered(messages) == scanned
    monkeypatch.setattr(module, "_DETECTOR", None)  # detector not loaded yet: never loaded on the loop
    assert gate.apply_pii_remembered(messages) is None


def test_browser_system_prompt_is_exempt_by_identity_only(gw: ServerHandle) -> None:
    from kit.config import Text
    from kit.rules.policy import Gate, Identity

    settings = gw.settings.model_copy(deep=True)
    prompt = f"Tu es l'assistant du service ; le DPO est joignable à {EMAIL}."
    settings.policy.system_prompt = Text(fr=prompt, en=f"You are the assistant; the DPO is {EMAIL}.")
    gate = Gate(settings, gw.state)
    user = {"role": "user", "content": "Bonjour"}
    for lang in ("fr", "en"):
        own = {"role": "system", "content": settings.policy.system_prompt.get(lang)}
        assert gate.apply_pii([own, user], Identity("alice", "user", "service")).categories == []
    own = {"role": "system", "content": prompt}
    assert gate.apply_pii([own, user], Identity("alice", "user", "key")).categories == ["EMAIL_ADDRESS"]
    assert gate.apply_pii([own, user]).categories == ["EMAIL_ADDRESS"]
    edited = {"role": "system", "content": prompt + " Écris aussi à paul.vidal@exemple.fr."}
    outcome = gate.apply_pii([edited, user], Identity("alice", "user", "service"))
    assert outcome.categories == ["EMAIL_ADDRESS"] and outcome.warned == ["EMAIL_ADDRESS"]
    settings.policy.pii_actions["EMAIL_ADDRESS"] = "mask"
    masked = Gate(settings, gw.state).apply_pii([edited, user], Identity("alice", "user", "service"))
    assert EMAIL not in masked.messages[0]["content"] and "[EMAIL_ADDRESS_1]" in masked.messages[0]["content"]
    assert masked.messages[1] == user


def test_api_scan_runs_the_detector_once(gw: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.rules.privacy import get_detector

    detector = get_detector()
    calls: list[int] = []
    scan = detector.scan

    def counted(text: str) -> Any:
        calls.append(len(text))
        return scan(text)

    monkeypatch.setattr(detector, "scan", counted)
    r = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers(), json={"text": f"IBAN {IBAN}"})
    assert r.status_code == 200 and r.json()["masked_text"] == "IBAN [IBAN_CODE_1]"
    assert calls == [len(f"IBAN {IBAN}")]


def test_feedback_report_and_admin_views(gw: ServerHandle) -> None:
    assert chat(gw, "Bonjour").status_code == 200  # a chat of its own, whatever ran before
    r = httpx.post(gw.url + "/v1/feedback", headers=gw.headers(), json={"kind": "report", "comment": "réponse fausse"})
    assert r.status_code == 200
    assert httpx.get(gw.url + "/v1/admin/feedback", headers=gw.headers("alice", "user")).status_code == 403
    items = httpx.get(gw.url + "/v1/admin/feedback", headers=gw.headers("root", "admin")).json()["data"]
    assert items[0]["kind"] == "report" and items[0]["comment"] == "réponse fausse"
    stats = httpx.get(gw.url + "/v1/admin/stats", headers=gw.headers("audit", "auditor")).json()
    assert stats["by_action"]["report"] >= 1 and stats["by_action"]["chat"] >= 1
    assert httpx.get(gw.url + "/v1/admin/audit/verify", headers=gw.headers("audit", "auditor")).json()["ok"] is True
    # an auditor cannot close the chat; an admin can (degraded mode), then reopen it
    assert httpx.post(gw.url + "/v1/admin/chat", headers=gw.headers("audit", "auditor"),
                      json={"open": False}).status_code == 403
    closed = httpx.post(gw.url + "/v1/admin/chat", headers=gw.headers("root", "admin"),
                        json={"open": False, "message": "Maintenance jusqu'à 14 h"})
    assert closed.status_code == 200
    r = chat(gw, "Bonjour")
    assert r.status_code == 503 and "Maintenance" in r.json()["error"]["message"]
    httpx.post(gw.url + "/v1/admin/chat", headers=gw.headers("root", "admin"), json={"open": True})
    assert chat(gw, "Bonjour").status_code == 200


def test_conversations_rights_of_persons(gw: ServerHandle) -> None:
    cid = httpx.post(gw.url + "/v1/conversations", headers=gw.headers(), json={"title": "Note"}).json()["id"]
    assert chat(gw, "Propose un titre de note", conversation_id=cid).status_code == 200
    conv = httpx.get(gw.url + f"/v1/conversations/{cid}", headers=gw.headers()).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["meta"]["ai_generated"] is True
    assert httpx.get(gw.url + f"/v1/conversations/{cid}", headers=gw.headers("mallory")).status_code == 404
    export = httpx.get(gw.url + "/v1/me/export", headers=gw.headers()).json()
    assert any(c["id"] == cid for c in export["conversations"])
    assert httpx.delete(gw.url + "/v1/conversations", headers=gw.headers()).json()["deleted"] >= 1
    assert httpx.get(gw.url + "/v1/conversations", headers=gw.headers()).json()["data"] == []


@pytest.mark.slow  # six `kit audit` processes while chats go on for as long
def test_audit_export_while_the_gateway_writes(gw: ServerHandle) -> None:
    """`kit audit export` and `kit audit verify` from another process while chats append rows: both
    succeed, and the gateway goes on answering and recording (SQLite readers never break the writer)."""
    import threading

    env = {"KIT_HOME": str(gw.settings.home), "KIT_CONFIG": str(gw.settings.source)}
    statuses: list[int] = []
    done = threading.Event()

    def chatter() -> None:
        while not done.is_set():
            statuses.append(chat(gw, "Bonjour, une question courte.").status_code)
            done.wait(1.0)  # steady traffic, within the user's 30 requests per minute

    worker = threading.Thread(target=chatter)
    worker.start()
    try:
        for _ in range(3):
            out = run_kit("audit", "export", "--format", "jsonl", env=env, timeout=120)
            assert out.returncode == 0, out.stderr
            assert all(json.loads(line)["action"] for line in out.stdout.splitlines())
            ok = run_kit("audit", "verify", env=env, timeout=120)
            assert ok.returncode == 0, ok.stdout + ok.stderr
    finally:
        done.set()
        worker.join(timeout=180)
    assert statuses and set(statuses) == {200}, statuses
    assert chat(gw, "Encore une.").status_code == 200
    assert gw.state.audit.verify().ok  # a new reader in the gateway's process still finds its files
    with sqlite3.connect(gw.settings.home / "kit.db") as con:
        assert con.execute("SELECT count(*) FROM audit_log").fetchone()[0] >= len(statuses)


def test_audit_cli_detects_tampering(gw: ServerHandle, tmp_path: Path) -> None:
    env = {"KIT_HOME": str(gw.settings.home), "KIT_CONFIG": str(gw.settings.source)}  # the server's keys too
    assert chat(gw, "Bonjour").status_code == 200
    ok = run_kit("audit", "verify", env=env)
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    out = run_kit("audit", "export", "--format", "csv", env=env)
    assert out.returncode == 0 and "chat" in out.stdout
    assert "Bonjour" not in out.stdout, [line for line in out.stdout.splitlines() if "Bonjour" in line]
    stats = run_kit("audit", "stats", "--json", env=env)
    assert stats.returncode == 0 and '"chat"' in stats.stdout
    db = gw.settings.home / "kit.db"
    con = sqlite3.connect(db)
    table = "audit_log"
    ids = [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY id")]
    con.execute(f"UPDATE {table} SET completion_tokens = completion_tokens + 1 WHERE id = ?", (ids[1],))
    con.commit()
    con.close()
    bad = run_kit("audit", "verify", env=env)
    assert bad.returncode == 1 and f"first bad row: {ids[1]}" in bad.stdout


@pytest.mark.slow  # each `kit privacy scan` loads the language model in a new process
def test_privacy_scan_cli(tmp_path: Path) -> None:
    text = f"Écrire à {EMAIL} ou au 06 12 34 56 78, IBAN {IBAN}."
    r = run_kit("privacy", "scan", "-", "--json", input=text)
    assert r.returncode == 0, r.stderr
    findings = json.loads(r.stdout)["findings"]
    assert {f["type"] for f in findings} == {"EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE"}
    email = [f for f in findings if f["type"] == "EMAIL_ADDRESS"][0]
    assert text[email["start"]:email["end"]] == EMAIL and set(email) == {"type", "start", "end", "text", "score"}
    (tmp_path / "clean.txt").write_text("Rédige un compte rendu de la réunion du 12 mars (budget 2026, +4 %).")
    r = run_kit("privacy", "scan", str(tmp_path / "clean.txt"))
    assert r.returncode == 0 and "no personal data found" in r.stdout
    assert run_kit("privacy", "scan", str(tmp_path / "missing.txt")).returncode == 2


NIR_NBSP = "1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091"
NIR_DASHED = "1-85-05-78-006-084-91"


@pytest.mark.parametrize("value", [NIR_NBSP, NIR_DASHED, "1\u202f85 05 78\u200b006 084 91",
                                   "１８５０５７８００６０８４９１"])
def test_a_nir_however_written_is_blocked_and_previewed(gw: ServerHandle, value: str) -> None:
    """FR_NIR is blocked by default: the NIR written with no-break spaces, dashes, a zero-width space or
    fullwidth digits never reaches the engine, and the preview underlines the characters as typed."""
    before = gw.engine.stats.requests_total
    r = chat(gw, f"Mon numéro de sécurité sociale est {value}, peux-tu le vérifier ?")
    assert r.status_code == 422 and "FR_NIR" in r.json()["error"]["message"], r.text
    r = chat(gw, f"Le NIR de l'agent : {value}.", stream=True)
    assert r.status_code == 422
    assert gw.engine.stats.requests_total == before
    text = f"Le NIR {value} est dans le dossier."
    data = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers(), json={"text": text}).json()
    nirs = [f for f in data["findings"] if f["type"] == "FR_NIR"]
    assert [(f["start"], f["end"], f["text"]) for f in nirs] == [(7, 7 + len(value), value)]
    assert data["blocked"] == ["FR_NIR"]


@pytest.mark.slow  # each `kit privacy scan` loads the language model in a new process
def test_privacy_scan_cli_shows_the_characters_as_typed(tmp_path: Path) -> None:
    text = f"NIR {NIR_NBSP} et IBAN FR76-3000-6000-0112-3456-7890-189.\n"
    (tmp_path / "nbsp.txt").write_text(text, encoding="utf-8")
    r = run_kit("privacy", "scan", str(tmp_path / "nbsp.txt"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("FR_NIR") and lines[0].endswith(f"  {NIR_NBSP}") and "4-25" in lines[0]
    assert lines[1].startswith("IBAN_CODE") and lines[1].endswith("  FR76-3000-6000-0112-3456-7890-189")
    r = run_kit("privacy", "scan", "-", input="NIR 1 85 05 78\n006 084 91")
    assert r.stdout.strip().endswith("  1 85 05 78\\n006 084 91")


def test_sensitive_data_is_reported_under_warn_and_refused_under_block(gw: ServerHandle,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Health, religion, opinions... about a person: warned by default through the API, refused when the
    policy says block, and the engine never sees the refused message."""
    text = "Rédige un mot d'excuse : mon collègue est en arrêt maladie pour dépression."
    r = chat(gw, text)
    assert r.status_code == 200, r.text
    data = r.json()["kit"]["personal_data"]
    assert "SENSITIVE_HEALTH" in data["categories"] and data["actions"]["SENSITIVE_HEALTH"] == "warn"
    preview = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers(), json={"text": text}).json()
    assert "SENSITIVE_HEALTH" in preview["categories"]
    monkeypatch.setitem(gw.settings.policy.pii_actions, "SENSITIVE_HEALTH", "block")
    gw.acknowledge("sensitive-reader")  # the charter lists the actions: its version changed
    before = gw.engine.stats.requests_total
    r = chat(gw, text, user="sensitive-reader")
    assert r.status_code == 422 and "SENSITIVE_HEALTH" in r.json()["error"]["message"]
    assert gw.engine.stats.requests_total == before
    r = chat(gw, "Rédige un mot : la politique de santé publique du ministère change.", user="sensitive-reader")
    assert r.status_code == 200 and not [c for c in r.json()["kit"]["personal_data"]["categories"]
                                         if c.startswith("SENSITIVE_")]
