"""The browser chat in real Chromium, against the real gateway and model.

One gateway and one UI per module (ui.auth: local). Every request the page makes is recorded and
must stay on this machine. Screenshots go to a temporary folder; with KIT_UPDATE_SCREENSHOTS=1 the
two in docs/ are refreshed (compressed to at most 150 KB).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import PURPOSE, ROOT, free_port, install_model, start_server

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "mot de passe solide"
MAX_TOKENS = int(os.environ.get("KIT_TEST_UI_MAX_TOKENS", "40"))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
UPLOAD_LIMIT = 200_000  # ui.max_upload_bytes of the test page
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.timeout(600),
]


class Stack:
    def __init__(self, gateway: Any, ui_url: str, home: Path, shots: Path) -> None:
        self.gateway, self.ui_url, self.home, self.shots = gateway, ui_url, home, shots
        self.requests: list[str] = []

    def api(self, method: str, path: str, user: str, role: str = "user", **kw: Any) -> httpx.Response:
        return httpx.request(
            method, self.gateway.url + path, headers=self.gateway.headers(user, role), timeout=60, **kw
        )


@pytest.fixture(scope="module")
def stack(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pytest.importorskip("playwright.sync_api")
    from kit.config import load_settings
    from kit.storage.users import add_user
    from ui.app import launch_ui

    base = tmp_path_factory.mktemp("ui")
    home = install_model(model_store, base / "home")
    old = os.environ.get("KIT_HOME")
    gateway, stop = start_server(
        home, base / "kit.yaml", parallel=2, ctx=2048, ui={"auth": "local", "max_upload_bytes": UPLOAD_LIMIT}
    )
    settings = load_settings(base / "kit.yaml")
    add_user(home, "alice", "user", PASSWORD)
    add_user(home, "bob", "user", PASSWORD)
    add_user(home, "root", "admin", PASSWORD)
    port = free_port()
    demo = launch_ui(  # with the gateway's service key, as `kit ui` always has one
        settings, gateway.url, host="127.0.0.1", port=port, api_key=gateway.service_key, max_tokens=MAX_TOKENS,
        prevent_thread_lock=True, quiet=True,
    )
    shots = base / "screenshots"
    shots.mkdir()
    try:
        yield Stack(gateway, f"http://127.0.0.1:{port}", home, shots)
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


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # the machine may be busy: wait, do not fail early
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="fr-FR")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.ui_url)
    context.set_default_timeout(60_000)
    pg = context.new_page()
    pg.on("request", lambda r: stack.requests.append(r.url))
    blocked: list[str] = []
    pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    yield pg
    context.close()
    assert not blocked, f"the page tried something its security policy forbids: {blocked}"
    outside = sorted(
        {u for u in stack.requests if urlsplit(u).hostname not in LOCAL_HOSTS and not u.startswith(("data:", "blob:"))}
    )
    assert not outside, f"the page made requests to other hosts: {outside}"


WATCH_ANSWERS = """() => {
  window.__kitSeen = [];
  const box = document.querySelector('#kit-chatbot');
  new MutationObserver(() => {
    const bots = box.querySelectorAll('.bot');
    if (bots.length) window.__kitSeen.push(bots[bots.length - 1].innerText);
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def sign_in(page: Any, stack: Stack, user: str) -> None:
    page.goto(stack.ui_url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#kit-gate, #kit-main", state="visible")


def admin_page(browser: Any, stack: Stack, height: int = 800) -> tuple[Any, Any]:
    """A second browser context signed in as the administrator (charter acknowledged); close the context."""
    stack.gateway.acknowledge("root", "admin")
    context = browser.new_context(viewport={"width": 1100, "height": height}, locale="fr-FR")
    admin = context.new_page()
    admin.on("request", lambda req: stack.requests.append(req.url))
    sign_in(admin, stack, "root")
    admin.locator("#kit-main").wait_for(state="visible")
    return context, admin


def screenshot(page: Any, stack: Stack, name: str) -> None:
    path = stack.shots / f"{name}.png"
    page.mouse.move(500, 300)  # no hover effect left in the picture (headless keeps it until a repaint)
    page.mouse.move(2, 2)
    page.screenshot()
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    if os.environ.get("KIT_UPDATE_SCREENSHOTS") == "1" and name.startswith("screenshot-"):
        _save_small(path, ROOT / "docs" / f"{name}.png")


def _save_small(src: Path, dest: Path, limit: int = 150_000) -> None:
    from PIL import Image

    image = Image.open(src).convert("RGB")
    for colors in (256, 128, 64, 32):
        buf = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
        if buf.tell() <= limit:
            break
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(buf.getvalue())
    assert dest.stat().st_size <= limit


def texts(lang: str) -> Any:
    from ui.texts import texts as load

    return load(lang)


def test_sign_in_gate_chat_personal_data_and_language(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    from kit.config import DEFAULT_FORBIDDEN

    fr, en = texts("fr"), texts("en")
    quiz = stack.gateway.settings.policy.quiz
    model = stack.gateway.engine.model_name
    # the page forbids itself any other host, names no outside image, and says it is French
    r = httpx.get(stack.ui_url + "/", timeout=30)
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "raw.githubusercontent.com" not in r.text and 'lang="fr"' in r.text
    sign_in(page, stack, "alice")

    # the gate: purpose, a forbidden use, the limits, the AI statement; the chat is not reachable
    gate = page.locator("#kit-gate")
    gate.wait_for(state="visible")
    for text in (PURPOSE, DEFAULT_FORBIDDEN[0].fr, fr.items("gate.limits")[0].split("**")[1], fr("gate.ai_title")):
        assert gate.get_by_text(text, exact=False).first.is_visible(), text
    assert not page.locator("#kit-input textarea").is_visible()
    screenshot(page, stack, "screenshot-welcome")

    # the three-question check, then acknowledge
    for i, question in enumerate(quiz):
        page.locator(".kit-question").nth(i).get_by_label(question.choices[question.answer].fr, exact=True).check()
    page.get_by_label(fr("gate.confirm")).check()
    page.click("#kit-ack")
    page.locator("#kit-main").wait_for(state="visible")
    assert not gate.is_visible()
    assert page.get_by_text(fr("chat.notice")[:40], exact=False).first.is_visible()  # permanent limits notice

    # a streamed answer with its AI label and the model's name
    page.fill("#kit-input textarea", "Write a short paragraph about teamwork at the town hall.")
    page.evaluate(WATCH_ANSWERS)  # records every state of the answer in the page itself
    page.click("#kit-send")
    page.locator(".kit-ai-label").first.wait_for(state="visible")  # the stream has started: Send is hidden
    page.locator("#kit-send").wait_for(state="visible", timeout=240_000)  # and it has ended
    seen = set(page.evaluate("window.__kitSeen"))
    label = page.locator(".kit-ai-label").last.inner_text()
    assert label == fr("chat.ai_label", model=model)
    answer = page.locator("#kit-chatbot .bot").last.inner_text().replace(label, "").strip()
    assert answer and answer != "…"
    pieces = {s for s in seen if s.replace(label, "").strip() not in ("", "…")}
    assert len(pieces) >= 2, f"the answer did not arrive in pieces (streaming): {seen}"
    screenshot(page, stack, "screenshot-chat")

    # copying an answer gives its text and the AI mention, without the label markup
    page.locator("#kit-chatbot .message-buttons-left").last.locator("button").first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith("\n\n" + fr("chat.watermark", model=model)), copied
    assert "kit-ai-label" not in copied and label not in copied

    # another answer to compare, shown alongside the first one, each labelled
    page.click("#kit-another")
    page.locator(".kit-ai-label").nth(1).wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible", timeout=240_000)
    labels = page.locator(".kit-ai-label").all_inner_texts()
    assert labels == [fr("chat.ai_label_alt", model=model, n=1), fr("chat.ai_label_alt", model=model, n=2)]

    # personal data: shown with the policy's action before anything is sent
    labels_before = page.locator(".kit-ai-label").count()
    page.fill("#kit-input textarea", "Écris à jean.dupont@example.org pour confirmer la réunion de jeudi.")
    page.click("#kit-send")
    panel = page.locator("#kit-pii")
    panel.wait_for(state="visible")
    assert "jean.dupont@example.org" in panel.inner_text()
    assert fr("pii.categories.EMAIL_ADDRESS") in panel.inner_text()
    assert fr("pii.actions.warn") in panel.inner_text()
    assert page.locator(".kit-ai-label").count() == labels_before  # nothing was sent
    assert page.locator("#kit-pii-send").is_visible()

    # English: labels change, the conversation and the pending check stay
    page.locator("#kit-lang").get_by_text(en("language_name"), exact=True).click()
    expect(page.locator("#kit-send")).to_have_text(en("chat.send"))
    expect(page.locator("#kit-tabs").get_by_role("tab", name=en("history.tab"))).to_be_visible()
    expect(page.locator(".kit-ai-label").last).to_have_text(en("chat.ai_label_alt", model=model, n=2))
    expect(page.locator("#kit-chatbot .bot").first).to_contain_text(answer.split()[0])
    expect(page.locator("#kit-chatbot")).to_contain_text("Write a short paragraph about teamwork")
    expect(panel).to_contain_text(en("pii.actions.warn"))
    expect(page.get_by_text(en("chat.notice")[:40], exact=False).first).to_be_visible()
    screenshot(page, stack, "english")


def test_gate_blocks_chat_and_user_has_no_admin_view(page: Any, browser: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    fr = texts("fr")
    sign_in(page, stack, "bob")
    page.locator("#kit-gate").wait_for(state="visible")
    # the chat is not reachable before acknowledging: not shown, and the gateway refuses it anyway
    assert not page.locator("#kit-main").is_visible()
    assert not page.locator("#kit-input textarea").is_visible()
    assert not page.locator("#kit-send").is_visible()
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    r = stack.api("POST", "/v1/chat/completions", "bob", json=body)
    assert r.status_code == 403 and "acknowledge" in r.json()["error"]["message"]
    # a wrong answer is refused with a message, and the chat stays closed
    page.locator(".kit-question").nth(0).get_by_label(
        stack.gateway.settings.policy.quiz[0].choices[1].fr, exact=True
    ).check()
    for i in (1, 2):
        q = stack.gateway.settings.policy.quiz[i]
        page.locator(".kit-question").nth(i).get_by_label(q.choices[q.answer].fr, exact=True).check()
    page.get_by_label(fr("gate.confirm")).check()
    page.click("#kit-ack")
    page.locator("#kit-gate-msg").wait_for(state="visible")
    assert fr("gate.wrong", numbers="1") in page.locator("#kit-gate-msg").inner_text()
    assert not page.locator("#kit-main").is_visible()

    # once acknowledged, a user-role account gets no admin tab, and the admin API refuses it
    stack.gateway.acknowledge("bob")
    page.reload()
    page.locator("#kit-main").wait_for(state="visible")
    tabs = page.locator("#kit-tabs")
    assert tabs.get_by_role("tab", name=fr("history.tab")).is_visible()
    assert (
        tabs.get_by_role("tab", name=fr("admin.tab")).count() == 0
        or not tabs.get_by_role("tab", name=fr("admin.tab")).is_visible()
    )
    for path in ("/v1/admin/stats", "/v1/admin/feedback", "/v1/admin/audit/verify"):
        assert stack.api("GET", path, "bob").status_code == 403, path
    assert stack.api("POST", "/v1/admin/chat", "bob", json={"open": False}).status_code == 403
    r = stack.api("POST", "/v1/feedback", "bob", json={"kind": "report", "comment": "answer was rude"})
    assert r.status_code == 200

    # an administrator sees the admin tab: figures, the report, the audit check
    context, admin = admin_page(browser, stack)
    try:
        admin.locator("#kit-tabs").get_by_role("tab", name=fr("admin.tab")).click()
        admin.locator("#kit-stats").get_by_text(fr("admin.stats_title")).wait_for(state="visible")
        expect(admin.locator("#kit-fb-table")).to_contain_text(fr("admin.kind_report"))
        expect(admin.locator("#kit-fb-table")).to_contain_text("answer was rude")
        admin.click("#kit-verify")
        expect(admin.locator("#kit-verify-result")).to_contain_text(
            fr("admin.verify_ok", rows=0).replace("*", "").split(":")[0].strip()
        )
        assert admin.locator("#kit-switch").is_visible()

        # the latest benchmark report: none yet (said so), then the one `kit bench report` published
        assert stack.api("GET", "/v1/admin/bench", "root", role="admin").status_code == 404
        assert stack.api("GET", "/v1/admin/bench", "bob").status_code == 403
        admin.click("#kit-bench")
        expect(admin.locator("#kit-bench-summary")).to_contain_text("kit bench report")
        from kit.files import bench_report_files

        html, md = bench_report_files(stack.home)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text("<!doctype html><title>bench</title><p>TTFT</p>", encoding="utf-8")
        md.write_text("## Serving\n\n| target | TTFT p95 ms |\n|---|---|\n| kit | 412 |\n", encoding="utf-8")
        admin.click("#kit-bench")
        expect(admin.locator("#kit-bench-summary")).to_contain_text("TTFT p95 ms")
        expect(admin.locator("#kit-bench-file")).to_contain_text("kit-bench-report")
    finally:
        context.close()


PARKING = """# Règlement du stationnement

## Badge de parking

Le badge de parking du personnel est délivré par le service logistique, sur demande écrite visée
par le chef de service. Il est valable deux ans et se renouvelle un mois avant son expiration.
Contact : logistique.stationnement@example.org.

## Places réservées

Les places proches de l'entrée sont réservées aux véhicules de service et aux personnes à mobilité
réduite. Un véhicule mal garé reçoit d'abord un avertissement, puis son badge est suspendu un mois.
"""

ARCHIVES = """# Archives du service

## Versement aux archives

Les dossiers clos depuis plus de cinq ans sont versés au service des archives chaque printemps,
avec un bordereau de versement signé par le chef de service.
"""


def test_documents_tab_then_sources_under_answers(page: Any, browser: Any, stack: Stack, tmp_path: Path) -> None:
    """An administrator indexes two files in the Documents tab (report with the personal data found,
    the list); a user who ticks "search our documents" gets an answer with its sources, each opening
    its excerpt, then the "no source found" notice for a question on nothing indexed; removal."""
    from playwright.sync_api import expect

    fr = texts("fr")
    parking, archives = tmp_path / "stationnement.md", tmp_path / "archives.md"
    parking.write_text(PARKING, encoding="utf-8")
    archives.write_text(ARCHIVES, encoding="utf-8")
    stack.gateway.acknowledge("alice")
    context, admin = admin_page(browser, stack, height=900)
    try:
        admin.locator("#kit-tabs").get_by_role("tab", name=fr("docs.tab")).click()
        admin.locator("#kit-docs-files input[type=file]").set_input_files([str(parking), str(archives)])
        expect(admin.locator("#kit-docs-files")).to_contain_text("stationnement.md")
        admin.click("#kit-docs-ingest")
        report = admin.locator("#kit-docs-report")
        expect(report).to_contain_text("stationnement.md", timeout=240_000)
        expect(report).to_contain_text("archives.md")
        expect(report).to_contain_text(fr("pii.categories.EMAIL_ADDRESS"))  # found at ingest, reported
        expect(admin.locator("#kit-docs-table")).to_contain_text("stationnement.md")
        expect(admin.locator("#kit-docs-table")).to_contain_text(fr("docs.public"))
        screenshot(admin, stack, "documents-tab")

        # the page's own upload limit (ui.max_upload_bytes) is in force on Gradio's upload route
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
        big = {"files": ("big.txt", b"x" * (UPLOAD_LIMIT + 1000), "text/plain")}
        r = httpx.post(stack.ui_url + "/gradio_api/upload", files=big, headers={"Cookie": cookies}, timeout=60)
        assert r.status_code == 413, r.text
        small = {"files": ("small.txt", b"x" * 1000, "text/plain")}
        r = httpx.post(stack.ui_url + "/gradio_api/upload", files=small, headers={"Cookie": cookies}, timeout=60)
        assert r.status_code == 200, r.text

        # a user asks with the documents switch on: the answer carries its sources
        sign_in(page, stack, "alice")
        page.locator("#kit-main").wait_for(state="visible")
        page.get_by_label(fr("docs.switch")).check()
        page.fill("#kit-input textarea", "Qui délivre le badge de parking du personnel ?")
        page.click("#kit-send")
        sources = page.locator("#kit-chatbot .bot").last.locator(".kit-sources")
        expect(sources).to_be_visible(timeout=240_000)
        page.locator("#kit-send").wait_for(state="visible", timeout=240_000)
        first = sources.locator("details.kit-source").first
        expect(first.locator("summary")).to_contain_text("[1] stationnement.md")
        expect(first.locator("summary")).to_contain_text("Badge de parking")
        assert not first.locator("blockquote").is_visible()
        first.locator("summary").click()
        expect(first.locator("blockquote")).to_contain_text("service logistique")
        screenshot(page, stack, "screenshot-sources")

        # copying the answer gives the sources as plain lines, without markup
        page.locator("#kit-chatbot .message-buttons-left").last.locator("button").first.click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert fr("docs.sources_title") in copied and "[1] stationnement.md" in copied, copied
        assert "<details" not in copied and "kit-sources" not in copied

        # nothing indexed on the subject: said so, under the answer
        page.fill("#kit-input textarea", "Quelle est la recette de la tarte tatin aux pommes caramélisées ?")
        page.click("#kit-send")
        expect(page.locator("#kit-chatbot .bot").last.locator(".kit-no-source")).to_have_text(
            fr("docs.no_source"), timeout=240_000
        )
        page.locator("#kit-send").wait_for(state="visible", timeout=240_000)

        # a user has no Documents tab, and the gateway refuses the upload anyway
        tabs = page.locator("#kit-tabs")
        assert tabs.get_by_role("tab", name=fr("docs.tab")).count() == 0 or not tabs.get_by_role(
            "tab", name=fr("docs.tab")
        ).is_visible()
        files = {"file": ("x.md", b"# x", "text/markdown")}
        assert stack.api("POST", "/v1/documents", "alice", files=files).status_code == 403

        # the administrator removes one document: gone from the list
        admin.locator("#kit-tabs").get_by_role("tab", name=fr("docs.tab")).click()
        admin.locator("#kit-docs-pick input").click()
        admin.get_by_role("option", name="archives.md", exact=False).click()
        admin.click("#kit-docs-remove")
        admin.click("#kit-docs-remove-yes")  # asked first
        expect(admin.locator("#kit-docs-msg")).to_contain_text(fr("docs.removed", n=1).split("(")[0].strip())
        expect(admin.locator("#kit-docs-table")).not_to_contain_text("archives.md")
        expect(admin.locator("#kit-docs-table")).to_contain_text("stationnement.md")
    finally:
        context.close()


def test_screenshots_are_small() -> None:
    for name in ("screenshot-welcome", "screenshot-chat", "screenshot-sources"):
        path = ROOT / "docs" / f"{name}.png"
        if path.exists():
            assert path.stat().st_size <= 150_000, path


def test_ui_health_answers_without_sign_in(stack: Stack) -> None:
    r = httpx.get(stack.ui_url + "/health", timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "ok"}

