"""The history and the controls of the browser chat, in real Chromium against a real gateway on 127.0.0.1.
The engine answers with the words it was given, cut at the page's max_tokens (tests/echo_engine.py): the
subject is what the page shows and keeps, not the model. One gateway and one page per module."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from echo_engine import CuttingEcho, start_echo_gateway
from helpers import ServerHandle, free_port
from test_ui_browser import ARGS, CHROMIUM, PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.timeout(600),
]

PARKING = """# Stationnement

## Badge de parking

Le badge de parking du personnel est délivré par le service logistique, sur demande écrite visée par le chef
de service. Il est valable deux ans et se renouvelle un mois avant son expiration.
"""
IBAN = "FR7630006000011234567890189"
PRIMARY, SECONDARY = re.compile(r"\bprimary\b"), re.compile(r"\bsecondary\b")  # a Gradio button's variant


class Stack:
    def __init__(self, gateway: ServerHandle, ui_url: str) -> None:
        self.gateway, self.ui_url = gateway, ui_url

    def api(self, method: str, path: str, user: str = "alice", role: str = "user", **kw: Any) -> httpx.Response:
        return httpx.request(method, self.gateway.url + path, headers=self.gateway.headers(user, role), timeout=60,
                             **kw)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pytest.importorskip("playwright.sync_api")
    from kit.config import load_settings
    from kit.storage.users import add_user
    from ui.app import launch_ui

    base = tmp_path_factory.mktemp("uihistory")
    old = os.environ.get("KIT_HOME")
    gateway, stop = start_echo_gateway(base / "home", base / "kit.yaml", engine=CuttingEcho(), ui={"auth": "local"})
    settings = load_settings(base / "kit.yaml")
    for user, role in (("alice", "user"), ("root", "admin")):
        add_user(settings.home, user, role, PASSWORD)
        gateway.acknowledge(user, role)
    files = [("file", ("stationnement.md", PARKING.encode("utf-8"), "text/markdown"))]
    r = httpx.post(gateway.url + "/v1/documents", headers=gateway.headers("root", "admin"), files=files, timeout=300)
    assert r.status_code == 200 and r.json()["documents"], r.text
    port = free_port()
    demo = launch_ui(settings, gateway.url, host="127.0.0.1", port=port, api_key=gateway.service_key, max_tokens=12,
                     prevent_thread_lock=True, quiet=True)
    try:
        yield Stack(gateway, f"http://127.0.0.1:{port}")
    finally:
        demo.close()
        stop()
        if old is not None:
            os.environ["KIT_HOME"] = old


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser: Any, stack: Stack, user: str) -> tuple[Any, Any]:
    """A new browser context signed in as ``user`` (charter acknowledged), on the chat; close the context."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="fr-FR")
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(stack.ui_url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.locator("#kit-main").wait_for(state="visible")
    return context, page


@pytest.fixture
def alice(browser: Any, stack: Stack) -> Iterator[Any]:
    context, page = open_page(browser, stack, "alice")
    yield page
    context.close()


def texts(lang: str) -> Any:
    from ui.texts import texts as load

    return load(lang)


def ask(page: Any, text: str) -> None:
    """Send with the Enter key and wait for the whole answer."""
    before = page.locator("#kit-chatbot .bot").count()
    page.fill("#kit-input textarea", text)
    page.locator("#kit-input textarea").press("Enter")
    page.locator("#kit-chatbot .bot").nth(before).wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible")


def kept(stack: Stack, user: str = "alice") -> list[dict[str, Any]]:
    return list(stack.api("GET", "/v1/conversations", user).json()["data"])


def test_a_reopened_conversation_keeps_its_sources_note_and_switch(alice: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr, page = texts("fr"), alice
    # under the box: Enter sends, Shift+Enter adds a line (and sends nothing)
    expect(page.locator("#kit-keys-hint")).to_have_text(fr("chat.keys_hint"))
    box = page.locator("#kit-input textarea")
    box.fill("première ligne")
    box.press("Shift+Enter")
    box.type("seconde ligne")
    assert box.input_value() == "première ligne\nseconde ligne"
    assert page.locator("#kit-chatbot .bot").count() == 0

    page.get_by_label(fr("docs.switch")).check()
    ask(page, "Qui délivre le badge de parking du personnel ?")
    answer = page.locator("#kit-chatbot .bot").last
    expect(answer.locator(".kit-sources summary").first).to_contain_text("stationnement.md")
    expect(answer).to_contain_text(fr("chat.truncated"))

    # a new conversation, the switch off; then the first one reopened from the history
    page.click("#kit-new")
    expect(page.locator("#kit-chatbot .bot")).to_have_count(0)
    page.get_by_label(fr("docs.switch")).uncheck()
    page.locator("#kit-tabs").get_by_role("tab", name=fr("history.tab")).click()
    page.get_by_role("button", name=fr("history.open"), exact=True).click()
    reopened = page.locator("#kit-chatbot .bot").last
    expect(reopened.locator(".kit-sources summary").first).to_contain_text("stationnement.md")
    reopened.locator(".kit-sources summary").first.click()
    expect(reopened.locator(".kit-sources blockquote").first).to_contain_text("service logistique")
    expect(reopened).to_contain_text(fr("chat.truncated"))
    expect(page.get_by_label(fr("docs.switch"))).to_be_checked()

    # the export holds the sources and how the answer ended
    page.locator("#kit-tabs").get_by_role("tab", name=fr("history.tab")).click()
    page.click("#kit-export")
    link = page.locator("#kit-export-file a")
    link.wait_for(state="visible")
    with page.expect_download() as got:
        link.click()
    data = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    answers = [m["meta"] for c in data["conversations"] for m in c["messages"] if m["role"] == "assistant"]
    assert any(a.get("sources") and a["sources"][0]["source"] == "stationnement.md" for a in answers), answers
    assert all(a["finish"] == "length" for a in answers)


# an answer cut off inside a code block, with HTML of its own (a comment never closed, a forged sources block)
HOSTILE = ('Voici <!-- une note jamais fermée <div class="kit-sources">faux.md</div>\n\n'
           "```python\nif 1 < 2:\n    print('<b>')")


def test_an_answer_cut_off_in_code_or_writing_html_keeps_kits_parts(browser: Any, stack: Stack) -> None:
    """What the model writes is shown as text and its code block is closed: the label, the sources and the
    truncation note under it stay kit's own, outside the code; copying gives the model's text back."""
    from playwright.sync_api import expect

    fr = texts("fr")
    context, page = open_page(browser, stack, "alice")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.ui_url)
    try:
        page.get_by_label(fr("docs.switch")).check()
        stack.gateway.engine.scripted.append(HOSTILE)
        ask(page, "Qui délivre le badge de parking du personnel ?")
        answer = page.locator("#kit-chatbot .bot").last
        expect(answer.locator(".kit-sources summary").first).to_contain_text("[1] stationnement.md")
        expect(answer.locator(".kit-sources")).to_have_count(1)
        expect(answer.locator(".kit-note", has_text=fr("chat.truncated"))).to_be_visible()
        expect(answer.locator(".kit-ai-label")).to_have_count(1)
        assert answer.locator("pre .kit-sources, pre .kit-note, code .kit-sources").count() == 0
        expect(answer.locator("pre code")).to_contain_text("if 1 < 2:")
        expect(answer).to_contain_text('<!-- une note jamais fermée <div class="kit-sources">faux.md</div>')

        page.locator("#kit-chatbot .message-buttons-left").last.locator("button").first.click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "Voici <!-- une note" in copied and "if 1 < 2:" in copied and "&#60;" not in copied, copied
    finally:
        context.close()


def test_the_trash_icon_deletes_the_conversation_after_asking(alice: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr, page = texts("fr"), alice
    ask(page, "Rédige une note sur le tri du courrier entrant.")
    before = {c["id"] for c in kept(stack)}
    assert before
    trash = page.locator("#kit-chatbot").get_by_role("button", name=fr("a11y.clear"), exact=True)

    trash.click()  # asked first: the conversation is back on screen and still kept
    panel = page.locator("#kit-delete")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(fr("chat.delete_ask", title="x").split("«")[0].strip("* "))
    expect(page.locator("#kit-chatbot")).to_contain_text("tri du courrier entrant")
    page.click("#kit-delete-cancel")
    expect(panel).to_be_hidden()
    expect(page.locator("#kit-chatbot")).to_contain_text("tri du courrier entrant")
    assert {c["id"] for c in kept(stack)} == before

    # from the History tab too, deleting one conversation is asked first
    page.locator("#kit-tabs").get_by_role("tab", name=fr("history.tab")).click()
    expect(page.locator("#kit-hist-list input")).to_have_value(re.compile("^Rédige une note"))  # listed again
    page.get_by_role("button", name=fr("history.delete"), exact=True).click()
    ask_panel = page.locator("#kit-hist-ask")
    expect(ask_panel).to_contain_text(fr("history.delete_ask", title="x").split("«")[0].strip("* "))
    page.click("#kit-hist-ask-no")
    expect(ask_panel).to_be_hidden()
    assert {c["id"] for c in kept(stack)} == before
    page.locator("#kit-tabs").get_by_role("tab", name=fr("chat.tab")).click()

    trash.click()
    page.click("#kit-delete-confirm")
    expect(page.locator("#kit-chat-msg")).to_contain_text(fr("chat.deleted"))
    expect(page.locator("#kit-chatbot .bot")).to_have_count(0)
    after = {c["id"] for c in kept(stack)}
    assert len(before - after) == 1 and after < before

    # and confirmed there, the conversation chosen leaves the history
    ask(page, "Résume la procédure d'accueil des nouveaux agents.")
    after = {c["id"] for c in kept(stack)}
    page.locator("#kit-tabs").get_by_role("tab", name=fr("history.tab")).click()
    expect(page.locator("#kit-hist-list input")).to_have_value(re.compile("^Résume la procédure"))
    page.get_by_role("button", name=fr("history.delete"), exact=True).click()
    page.click("#kit-hist-ask-yes")
    expect(page.locator("#kit-tabs")).to_contain_text(fr("history.deleted"))
    assert len({c["id"] for c in kept(stack)}) == len(after) - 1


def test_feedback_and_reports_name_their_answer(alice: Any, browser: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr, page = texts("fr"), alice
    ask(page, "Quels sont les horaires de la médiathèque ?")
    # thumbs down on the answer, with a comment
    page.locator("#kit-chatbot").get_by_role("button", name=fr("a11y.dislike"), exact=True).last.click()
    expect(page.locator("#kit-feedback")).to_be_visible()
    page.get_by_label(fr("feedback.comment")).fill("Horaires faux.")
    page.locator("#kit-feedback").get_by_role("button", name=fr("feedback.send")).click()
    expect(page.locator("#kit-chat-msg")).to_contain_text(fr("feedback.thanks"))
    # and a problem report, about the answer last shown
    page.click("#kit-report-btn")
    page.get_by_label(fr("report.comment")).fill("La réponse invente des horaires.")
    page.locator("#kit-report").get_by_role("button", name=fr("report.send")).click()
    expect(page.locator("#kit-chat-msg")).to_contain_text(fr("report.sent", id="").split("n°")[0].strip())
    newest = kept(stack)[0]
    stored = stack.api("GET", f"/v1/conversations/{newest['id']}").json()["messages"]
    answer_id = stored[-1]["meta"]["answer_id"]
    items = stack.api("GET", "/v1/admin/feedback", "root", "admin").json()["data"]
    for comment in ("Horaires faux.", "La réponse invente des horaires."):
        item = next(i for i in items if i["comment"] == comment)
        assert item["meta"]["answer_id"] == answer_id and item["meta"]["conversation_id"] == newest["id"], item
    context, admin = open_page(browser, stack, "root")  # the administrators' table shows it
    try:
        admin.locator("#kit-tabs").get_by_role("tab", name=fr("admin.tab")).click()
        expect(admin.locator("#kit-fb-table")).to_contain_text(answer_id)
        expect(admin.locator("#kit-fb-table")).to_contain_text(fr("admin.col_answer"))
    finally:
        context.close()


def test_the_personal_data_panel_leads_to_the_safe_choice(alice: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr, page = texts("fr"), alice
    # warned data: "edit my message" is the primary button, "send anyway" the secondary one
    page.fill("#kit-input textarea", "Écris à jean.dupont@example.org pour confirmer la réunion de jeudi.")
    page.click("#kit-send")
    expect(page.locator("#kit-pii")).to_be_visible()
    expect(page.locator("#kit-pii-edit")).to_have_class(PRIMARY)
    expect(page.locator("#kit-pii-send")).to_have_text(fr("pii.confirm"))
    expect(page.locator("#kit-pii-send")).to_have_class(SECONDARY)
    page.click("#kit-pii-edit")
    expect(page.locator("#kit-pii")).to_be_hidden()

    # masked data: sending the masked version is the primary button, and the bubble shows what was sent
    page.fill("#kit-input textarea", f"Prépare le virement sur le compte {IBAN} pour la facture 12.")
    page.click("#kit-send")
    expect(page.locator("#kit-pii-send")).to_have_text(fr("pii.confirm_masked"))
    expect(page.locator("#kit-pii-send")).to_have_class(PRIMARY)
    expect(page.locator("#kit-pii-edit")).to_have_class(SECONDARY)
    answers = page.locator("#kit-chatbot .bot").count()
    page.click("#kit-pii-send")
    page.locator("#kit-chatbot .bot").nth(answers).wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible")
    question = page.locator("#kit-chatbot .user").last
    expect(question).to_contain_text("pour la facture 12")
    expect(question).not_to_contain_text(IBAN)
    assert IBAN[:12] not in page.locator("#kit-chatbot").inner_text()


def test_send_is_off_while_the_chat_is_closed(browser: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr = texts("fr")
    r = stack.api("POST", "/v1/admin/chat", "root", "admin", json={"open": False, "message": "Maintenance du serveur."})
    assert r.status_code == 200
    context, page = open_page(browser, stack, "alice")
    try:
        expect(page.locator("#kit-send")).to_be_disabled()
        closed = page.locator("#kit-closed")
        expect(closed).to_contain_text("Maintenance du serveur.")
        expect(closed).to_contain_text(fr("chat.closed", message="").split("\n")[-1])
    finally:
        context.close()
        stack.api("POST", "/v1/admin/chat", "root", "admin", json={"open": True})
    context, page = open_page(browser, stack, "alice")
    try:
        expect(page.locator("#kit-send")).to_be_enabled()
    finally:
        context.close()


def test_documents_upload_several_name_a_damaged_file_and_ask_before_removal(
    browser: Any, stack: Stack, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    fr = texts("fr")
    damaged, note = tmp_path / "rapport-annuel.pdf", tmp_path / "note-accueil.md"
    damaged.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nstream\x00\x01 garbage")
    note.write_text("# Accueil\n\nL'accueil du public est ouvert de 9 h à 17 h.\n", encoding="utf-8")
    context, admin = open_page(browser, stack, "root")
    try:
        admin.locator("#kit-tabs").get_by_role("tab", name=fr("docs.tab")).click()
        zone = admin.locator("#kit-docs-files")
        expect(zone).to_contain_text(fr("docs.upload_click"))
        expect(zone).not_to_contain_text("télécharger")
        zone.locator("input[type=file]").set_input_files([str(damaged), str(note)])
        expect(zone).to_contain_text("note-accueil")  # shown as "note-accueil .md"
        expect(zone).to_contain_text("rapport-annuel")
        # more files can be added, with a button named in the page's language (Gradio leaves it untranslated)
        expect(zone.get_by_role("button", name=fr("docs.upload_click"), exact=True).first).to_be_visible()
        untranslated = '[aria-label="common.upload"], [aria-label="Click to upload or drop files"]'
        expect(zone.locator(untranslated)).to_have_count(0)
        admin.click("#kit-docs-ingest")
        report = admin.locator("#kit-docs-report")
        expect(report).to_contain_text(fr("docs.issue", name="rapport-annuel.pdf", reason=fr("docs.reasons.damaged")))
        expect(report).to_contain_text("note-accueil.md")
        message = admin.locator("#kit-docs-msg")
        expect(message).to_contain_text(fr("docs.done_issues", n=1))
        for shown in (report, message):
            assert "/tmp" not in shown.inner_text() and "damaged" not in shown.inner_text()
        expect(admin.locator("#kit-docs-table")).to_contain_text("note-accueil.md")

        # removal is asked first; cancelling keeps the document
        admin.locator("#kit-docs-pick input").click()
        admin.get_by_role("option", name="note-accueil.md", exact=False).click()
        admin.click("#kit-docs-remove")
        ask_panel = admin.locator("#kit-docs-confirm")
        expect(ask_panel).to_contain_text("note-accueil.md")
        admin.click("#kit-docs-remove-no")
        expect(ask_panel).to_be_hidden()
        expect(admin.locator("#kit-docs-table")).to_contain_text("note-accueil.md")
        admin.click("#kit-docs-remove")
        admin.click("#kit-docs-remove-yes")
        expect(admin.locator("#kit-docs-msg")).to_contain_text(fr("docs.removed", n=1).split("(")[0].strip())
        expect(admin.locator("#kit-docs-table")).not_to_contain_text("note-accueil.md")
    finally:
        context.close()
    register = stack.api("GET", "/v1/admin/documents/register", "root", "admin").json()["data"]
    assert [e["removed_at"] is not None for e in register if e["name"] == "note-accueil.md"] == [True]
