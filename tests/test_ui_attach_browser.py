"""Attached files in the browser chat, in real Chromium against the real gateway and model (the stack of
test_ui_browser): drop a file → a chip with its name, pages and the personal data found, before anything is
sent → an answer with the pages used under it → a task button (summarise) with its answer → unticking the chip
deletes the file at the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_ui_browser import browser, page, pytestmark, sign_in, stack, texts  # noqa: F401 - its fixtures and marks

from benchmarks.attachment_files import FRENCH_PAGES, text_pdf


def test_attach_chip_answer_with_pages_task_and_removal(page: Any, stack: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    fr = texts("fr")
    stack.gateway.acknowledge("alice")
    sign_in(page, stack, "alice")
    page.locator("#kit-main").wait_for(state="visible")

    note = tmp_path / "note-de-service.pdf"
    note.write_bytes(text_pdf(FRENCH_PAGES[:3]))
    contact = tmp_path / "contact.txt"
    contact.write_text("Pour le badge, écrire à jean.dupont@example.org au service logistique.\n", encoding="utf-8")
    page.locator("#kit-attach-drop input[type=file]").set_input_files([str(note), str(contact)])

    chips = page.locator("#kit-chips")
    expect(chips).to_contain_text("note-de-service.pdf · 3 p.", timeout=120_000)
    expect(chips).to_contain_text("contact.txt · 1 p.")
    expect(chips).to_contain_text(fr("pii.categories.EMAIL_ADDRESS"))  # found before any message is sent
    assert page.locator(".kit-ai-label").count() == 0

    page.fill("#kit-input textarea", "Qui délivre le badge de parking ?")
    page.click("#kit-send")
    page.locator(".kit-ai-label").first.wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible", timeout=240_000)
    pages = page.locator("#kit-chatbot .kit-pages").last
    expect(pages).to_contain_text(fr("attach.pages_row", name="note-de-service.pdf", pages="1, 2, 3"))

    page.click("#kit-task-summarise")
    page.locator(".kit-ai-label").nth(1).wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible", timeout=300_000)
    expect(page.locator("#kit-chatbot")).to_contain_text(fr("attach.ask_summarise",
                                                             names="note-de-service.pdf, contact.txt"))
    answer = page.locator("#kit-chatbot .bot").last.inner_text()
    assert fr("attach.pages_title") in answer and "note-de-service.pdf" in answer

    files = stack.api("GET", "/v1/files", "alice").json()["data"]
    assert {f["filename"] for f in files} == {"note-de-service.pdf", "contact.txt"}
    page.locator("#kit-chips").get_by_text("contact.txt", exact=False).click()  # untick: remove the file
    expect(chips).not_to_contain_text("contact.txt")
    remaining = [f["filename"] for f in stack.api("GET", "/v1/files", "alice").json()["data"]]
    assert remaining == ["note-de-service.pdf"]

    page.click("#kit-new")  # a new chat: the chips go
    expect(chips).to_be_hidden()
