"""Accessibility of the browser chat (RGAA, WCAG 2.1 AA) in real Chromium: axe-core on every screen and state
in both languages, the page's language, accessible names (answers read as text, the language switch named),
keyboard-only use of the main flow, the accessibility statement, and the chat's own sign-in page (one
language at a time, a locked account told so with when the lock ends).

axe-core is pinned in tests/a11y/package-lock.json (scripts/test.sh runs `npm ci` there) and injected into
each page. One gateway (real stores, real document index, the echo engine: the model is not the subject) and
one chat per module. With KIT_A11Y_RESULTS=path, every axe result (all impacts) is written there as JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "mot de passe solide"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LOCALES = {"fr": "fr-FR", "en": "en-GB"}
PARKING = """# Règlement du stationnement

## Badge de parking

Le badge de parking du personnel est délivré par le service logistique, sur demande écrite visée
par le chef de service. Il est valable deux ans et se renouvelle un mois avant son expiration.
"""
QUESTION = "Qui délivre le badge de parking du personnel ?"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.timeout(900),
]


def texts(lang: str) -> Any:
    from ui.texts import texts as load

    return load(lang)


class Stack:
    def __init__(self, gateway: Any, url: str) -> None:
        self.gateway, self.url = gateway, url
        self.home = gateway.settings.home
        self.results: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pytest.importorskip("playwright.sync_api")
    if not AXE.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is missing: axe-core cannot be installed (apt-get install npm)")
        pytest.fail(f"{AXE} is missing: run `npm ci` in tests/a11y (scripts/test.sh does)")
    from echo_engine import start_echo_gateway

    from kit.config import load_settings
    from kit.documents.ingest import ingest
    from kit.storage.users import add_user
    from ui.app import launch_ui

    base = tmp_path_factory.mktemp("a11y")
    old = os.environ.get("KIT_HOME")
    gateway, stop = start_echo_gateway(base / "home", base / "kit.yaml", ui={"auth": "local"})
    home = gateway.settings.home
    for name in ("fr-user", "en-user", "kbd", "dora"):
        add_user(home, name, "user", PASSWORD)
    add_user(home, "root", "admin", PASSWORD)
    gateway.acknowledge("root", "admin")
    (base / "stationnement.md").write_text(PARKING, encoding="utf-8")
    report = ingest([base / "stationnement.md"], [], settings=gateway.settings,
                    index=gateway.app.state.context.documents.index())
    assert report.ok, report
    comment = "La réponse cite une note de service abrogée depuis 2019 : merci de vérifier la source indiquée."
    r = httpx.post(gateway.url + "/v1/feedback", headers=gateway.headers("fr-user"), timeout=60,
                   json={"kind": "report", "comment": comment})
    assert r.status_code == 200, r.text
    port = free_port()
    demo = launch_ui(load_settings(base / "kit.yaml"), gateway.url, host="127.0.0.1", port=port,
                     api_key=gateway.service_key, max_tokens=40, prevent_thread_lock=True, quiet=True)
    s = Stack(gateway, f"http://127.0.0.1:{port}")
    try:
        yield s
    finally:
        if os.environ.get("KIT_A11Y_RESULTS"):
            Path(os.environ["KIT_A11Y_RESULTS"]).write_text(json.dumps(s.results, indent=1, ensure_ascii=False))
        demo.close()
        stop()
        if old is not None:
            os.environ["KIT_HOME"] = old


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # the machine may be busy: wait, do not fail early
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser: Any, lang: str, width: int = 1280, height: int = 800, scheme: str = "light") -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=LOCALES[lang],
                                  color_scheme=scheme)
    context.set_default_timeout(60_000)
    return context.new_page()


def audit(stack: Stack, page: Any, screen: str, lang: str) -> None:
    """axe-core on the page as it is: no serious or critical violation, and the page says its language."""
    assert page.evaluate("document.documentElement.lang") == lang, screen
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return {rules: r.passes.length + r.violations.length + r.incomplete.length,
                  violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' '))}))};
        }"""
    )
    stack.results.append({"screen": screen, "lang": lang, **found})
    bad = [v for v in found["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{screen} ({lang}): {json.dumps(bad, indent=1, ensure_ascii=False)}"


def sign_in(page: Any, stack: Stack, user: str, lang: str) -> None:
    page.goto(f"{stack.url}/?lang={lang}")
    page.get_by_label(texts(lang)("signin.user")).fill(user)
    page.get_by_label(texts(lang)("signin.password")).fill(PASSWORD)
    page.get_by_role("button", name=texts(lang)("signin.submit")).click()
    page.wait_for_selector("#kit-gate, #kit-main", state="visible")


def ask(page: Any, text: str, documents: bool = False) -> Any:
    if documents:
        page.locator("#kit-docs-switch input").check()
    page.fill("#kit-input textarea", text)
    page.click("#kit-send")
    answer = page.locator("#kit-chatbot [data-testid=bot]").last
    answer.locator(".kit-ai-label").wait_for(state="visible")
    page.locator("#kit-send").wait_for(state="visible")
    return answer


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_screen_has_no_serious_axe_violation(stack: Stack, browser: Any, lang: str) -> None:
    from playwright.sync_api import expect

    t = texts(lang)
    page = new_page(browser, lang)
    try:
        page.goto(f"{stack.url}/?lang={lang}")  # first visit: the sign-in page
        audit(stack, page, "sign-in", lang)
        page.get_by_label(t("signin.user")).fill(f"{lang}-user")
        page.get_by_label(t("signin.password")).fill("not the password")
        page.keyboard.press("Enter")
        expect(page.get_by_role("alert")).to_have_text(t("signin.wrong"))
        audit(stack, page, "sign-in, wrong password", lang)
        page.goto(f"{stack.url}/accessibility?lang={lang}")
        audit(stack, page, "accessibility statement", lang)

        sign_in(page, stack, f"{lang}-user", lang)  # the charter gate, with its quiz
        page.locator("#kit-gate").wait_for(state="visible")
        audit(stack, page, "charter gate", lang)

        stack.gateway.acknowledge(f"{lang}-user")
        page.reload()
        page.locator("#kit-main").wait_for(state="visible")
        answer = ask(page, QUESTION, documents=True)  # an answer with its sources, one of them opened
        source = answer.locator("details.kit-source").first
        source.locator("summary").click()
        expect(source.locator("blockquote")).to_contain_text("service logistique")
        audit(stack, page, "chat, answer with sources", lang)

        tabs = page.locator("#kit-tabs")
        tabs.get_by_role("tab", name=t("history.tab")).click()
        expect(page.locator("#kit-hist-list")).to_be_visible()
        audit(stack, page, "history", lang)
        tabs.get_by_role("tab", name=t("charter.tab")).click()
        expect(page.locator("#kit-charter-again")).to_be_visible()
        audit(stack, page, "charter", lang)
    finally:
        page.context.close()

    admin = new_page(browser, lang)
    try:
        sign_in(admin, stack, "root", lang)
        tabs = admin.locator("#kit-tabs")
        tabs.get_by_role("tab", name=t("admin.tab")).click()
        expect(admin.locator("#kit-fb-table")).to_contain_text("abrogée")
        audit(stack, admin, "administration", lang)
        # the feedback table is readable on a normal screen: no column crushed, none pushed out of sight
        table = admin.locator("#kit-fb-table").bounding_box()
        for th in admin.locator("#kit-fb-table th").all():
            box = th.bounding_box()
            assert box["width"] >= 80 and box["x"] + box["width"] <= table["x"] + table["width"] + 1, (
                th.inner_text(), box, table)
        tabs.get_by_role("tab", name=t("docs.tab")).click()
        expect(admin.locator("#kit-docs-table")).to_contain_text("stationnement.md")
        audit(stack, admin, "documents", lang)
    finally:
        admin.context.close()


def test_the_dark_colour_scheme_has_no_serious_axe_violation(stack: Stack, browser: Any) -> None:
    """A browser that prefers dark colours gets Gradio's dark theme: its contrasts hold too."""
    from playwright.sync_api import expect

    fr = texts("fr")
    page = new_page(browser, "fr", scheme="dark")
    try:
        sign_in(page, stack, "root", "fr")
        assert page.evaluate("document.body.classList.contains('dark') || "
                             "!!document.querySelector('.dark')"), "the dark theme is not in force"
        answer = ask(page, QUESTION, documents=True)
        answer.locator("details.kit-source summary").first.click()
        audit(stack, page, "chat, answer with sources (dark colours)", "fr")
        tabs = page.locator("#kit-tabs")
        tabs.get_by_role("tab", name=fr("charter.tab")).click()
        expect(page.locator("#kit-charter-again")).to_be_visible()
        audit(stack, page, "charter (dark colours)", "fr")
        tabs.get_by_role("tab", name=fr("admin.tab")).click()
        expect(page.locator("#kit-fb-table")).to_be_visible()
        audit(stack, page, "administration (dark colours)", "fr")
        tabs.get_by_role("tab", name=fr("docs.tab")).click()
        expect(page.locator("#kit-docs-table")).to_contain_text("stationnement.md")
        audit(stack, page, "documents (dark colours)", "fr")
    finally:
        page.context.close()


def test_language_answers_and_switch_are_named_for_screen_readers(stack: Stack, browser: Any) -> None:
    """The page says its language and changes it with the switch; answers are named by who speaks and read
    as the text they show (no markup in any accessible name); every fixed label follows the language."""
    from playwright.sync_api import expect

    fr, en = texts("fr"), texts("en")
    stack.gateway.acknowledge("fr-user")
    page = new_page(browser, "fr")
    try:
        sign_in(page, stack, "fr-user", "fr")
        assert page.evaluate("document.documentElement.lang") == "fr"
        answer = ask(page, "Résume la note sur le télétravail.")
        expect(answer).to_have_attribute("role", "article")
        expect(answer).to_have_attribute("aria-label", fr("a11y.bot_message"))
        expect(page.get_by_role("article", name=fr("a11y.bot_message")).last).to_contain_text("télétravail")
        expect(page.get_by_role("article", name=fr("a11y.user_message")).last).to_contain_text("télétravail")
        expect(page.locator("#kit-chatbot [role=log]")).to_have_attribute("aria-label", fr("a11y.conversation"))
        names = page.evaluate("[...document.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label'))")
        assert not [n for n in names if "<" in n or "'s message" in n], names
        switch = page.get_by_role("radiogroup", name=fr("a11y.language_switch"))
        expect(switch).to_be_visible()
        expect(switch.get_by_role("radio", name="English")).to_have_count(1)

        page.get_by_role("button", name=fr("a11y.like")).last.click()  # the feedback panel
        expect(page.locator("#kit-feedback")).to_be_visible()
        audit(stack, page, "chat, feedback panel", "fr")
        page.fill("#kit-input textarea", "Écris à jean.dupont@example.org pour confirmer la réunion.")
        page.click("#kit-send")
        expect(page.locator("#kit-pii")).to_contain_text("jean.dupont@example.org")
        audit(stack, page, "chat, personal-data panel", "fr")

        switch.get_by_text("English", exact=True).click()
        expect(page.locator("#kit-send")).to_have_text(en("chat.send"))
        assert page.evaluate("document.documentElement.lang") == "en"
        audit(stack, page, "chat, after switching from French", "en")
        expect(page.get_by_role("radiogroup", name=en("a11y.language_switch"))).to_be_visible()
        expect(answer).to_have_attribute("aria-label", en("a11y.bot_message"))
        expect(page.locator("#kit-templates")).to_contain_text(en("chat.templates"))  # not left in French
        expect(page.locator("#kit-chatbot button[aria-label]").first).not_to_have_attribute(
            "aria-label", fr("a11y.copy"))
        expect(page.locator("#kit-a11y-link")).to_have_text(en("a11y.footer"))
        page.reload()  # a reload opens the page in the language its address asks for (?lang=fr)
        assert page.evaluate("document.documentElement.lang") == "fr"
    finally:
        page.context.close()


def tab_to(page: Any, test: str, limit: int = 150) -> None:
    """Press Tab until the focused element passes `test` (a JS expression on `el`)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!el && ({test}); }})()"):
            return
    raise AssertionError(f"no element with {test} reached with Tab")


def test_main_flow_with_the_keyboard_alone(stack: Stack, browser: Any) -> None:
    """Sign in, answer the charter's quiz and acknowledge it, type and send, read the answer: Tab, Space, Enter
    and typing only, never the mouse."""
    from playwright.sync_api import expect

    fr = texts("fr")
    quiz = stack.gateway.settings.policy.quiz
    page = new_page(browser, "fr")
    try:
        page.goto(stack.url)
        page.wait_for_function("document.activeElement && document.activeElement.id === 'kit-user'")  # focus first
        page.keyboard.type("kbd")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.locator("#kit-gate").wait_for(state="visible")

        for i, question in enumerate(quiz):
            tab_to(page, f"el.type === 'radio' && el.closest('.kit-question') === "
                         f"document.querySelectorAll('.kit-question')[{i}] && el.value === '{question.answer}'")
            page.keyboard.press("Space")
        tab_to(page, "el.type === 'checkbox' && !!el.closest('#kit-confirm')")
        page.keyboard.press("Space")
        tab_to(page, "el.id === 'kit-ack'")
        page.keyboard.press("Enter")
        page.locator("#kit-main").wait_for(state="visible")

        tab_to(page, "el.tagName === 'TEXTAREA' && !!el.closest('#kit-input')")
        page.keyboard.type("Donne trois conseils pour une réunion efficace.")
        tab_to(page, "el.id === 'kit-send'")
        page.keyboard.press("Enter")
        answer = page.get_by_role("article", name=fr("a11y.bot_message")).last
        expect(answer).to_contain_text("réunion efficace")
        log = page.locator("#kit-chatbot [role=log]")
        expect(log).to_have_attribute("aria-live", "polite")  # the answer is announced as it arrives
        # the answer's own controls are reached with Tab from the message box
        tab_to(page, "el.tagName === 'BUTTON' && !!el.closest('#kit-chatbot') && "
                     f"el.getAttribute('aria-label') === {json.dumps(fr('a11y.copy'))}")
        # and the other tabs: back with Shift+Tab to the History tab (or to a tab, then the arrow keys), Enter
        history = f"document.activeElement.textContent.trim() === {json.dumps(fr('history.tab'))}"
        on_tab = "document.activeElement.getAttribute('role') === 'tab'"
        for _ in range(80):
            page.keyboard.press("Shift+Tab")
            if page.evaluate(on_tab) and not page.evaluate(history):
                for _ in range(3):
                    page.keyboard.press("ArrowRight")
                    if page.evaluate(history):
                        break
            if page.evaluate(history):
                break
        assert page.evaluate(history), page.evaluate("document.activeElement.outerHTML")
        page.keyboard.press("Enter")
        expect(page.locator("#kit-hist-list")).to_be_visible()
    finally:
        page.context.close()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_accessibility_statement_is_reachable_from_every_page(stack: Stack, browser: Any, lang: str) -> None:
    from playwright.sync_api import expect

    t = texts(lang)
    page = new_page(browser, lang)
    try:
        page.goto(f"{stack.url}/?lang={lang}")
        for screen in ("sign-in", "chat"):
            link = page.get_by_role("link", name=t("a11y.footer"))
            expect(link).to_be_visible()
            link.click()
            expect(page.get_by_role("heading", level=1)).to_have_text(t("a11y.statement.heading"))
            body = page.locator("main").inner_text()
            for key in ("state_title", "tests_title", "issues_title", "contact_title", "recourse_title"):
                assert t(f"a11y.statement.{key}") in body, (screen, key)
            assert "Défenseur des droits" in body and "dpo@example.org" in body  # the deployment's contact
            assert page.evaluate("document.documentElement.lang") == lang
            if screen == "sign-in":
                stack.gateway.acknowledge(f"{lang}-user")
                sign_in(page, stack, f"{lang}-user", lang)
                page.locator("#kit-main").wait_for(state="visible")
        page.get_by_role("link", name=t("a11y.statement.back")).click()
        page.locator("#kit-main").wait_for(state="visible")  # back to the chat, still signed in
    finally:
        page.context.close()


def test_sign_in_page_is_the_kits_own_one_language_at_a_time(stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    fr, en = texts("fr"), texts("en")
    org = stack.gateway.settings.deployment.organisation
    page = new_page(browser, "fr")
    try:
        page.goto(stack.url)
        assert page.title() == fr("signin.page_title", title=fr("app.page_title", organisation=org))
        expect(page.get_by_role("heading", level=1)).to_have_text(fr("signin.heading"))
        expect(page.locator("header")).to_contain_text(fr("app.subtitle", organisation=org))
        text = page.locator("body").inner_text()
        assert en("signin.intro") not in text and en("signin.submit") not in text.replace("English", "")
        expect(page.get_by_label(fr("signin.user"))).to_have_attribute("autocomplete", "username")
        expect(page.get_by_label(fr("signin.password"))).to_have_attribute("type", "password")
        languages = page.get_by_role("navigation", name=fr("a11y.language_switch"))
        expect(languages.get_by_role("link", name="Français")).to_have_attribute("aria-current", "true")
        languages.get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(en("signin.heading"))
        assert page.evaluate("document.documentElement.lang") == "en"
        assert fr("signin.intro") not in page.locator("body").inner_text()
        page.get_by_role("button", name=en("signin.submit")).click()  # nothing typed
        expect(page.get_by_role("alert")).to_have_text(en("signin.missing"))
        expect(page.get_by_label(en("signin.user"))).to_be_focused()
    finally:
        page.context.close()


def test_a_locked_account_is_told_when_the_lock_ends_then_unlocked(stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    from kit.storage.users import unlock_user

    fr = texts("fr")
    url = stack.gateway.url + "/v1/auth/login"
    for i in range(5):  # five failures, each from another address: the account is locked, no address is
        headers = {**stack.gateway.headers(None), "X-Kit-Client-Address": f"198.51.100.{60 + i}"}
        r = httpx.post(url, headers=headers, json={"user": "dora", "password": "wrong"}, timeout=60)
        assert r.status_code == 401, r.text
    page = new_page(browser, "fr")
    try:
        page.goto(stack.url)
        page.get_by_label(fr("signin.user")).fill("dora")
        page.get_by_label(fr("signin.password")).fill(PASSWORD)  # the right password
        page.keyboard.press("Enter")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(fr("signin.locked").split(",")[0])
        said = alert.inner_text()
        assert fr("signin.wrong") not in said and "{" not in said
        shown = re.search(r"\b(\d{1,2}:\d{2})\b", said)  # when the lock ends: five minutes after the first failure
        soon = page.evaluate("[...Array(13).keys()].map(i => new Date(Date.now() + (240 + 10 * i) * 1000)"
                             ".toLocaleTimeString('fr', {hour: '2-digit', minute: '2-digit'}))")
        assert shown and shown.group(1) in soon, (said, soon)
        assert re.search(r"\b[4-5] min", said), said
        unlock_user(stack.home, "dora")  # `kit users unlock dora`
        page.get_by_role("button", name=fr("signin.submit")).click()
        page.wait_for_selector("#kit-gate, #kit-main", state="visible")
    finally:
        page.context.close()
