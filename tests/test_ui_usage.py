"""The Usage tab in real Chromium: an administrator and an auditor see the figures of audit rows the test writes
(charts, table, CSV export); a user-role account has no tab and the gateway refuses it the figures. The gateway
answers with an echo engine (the model is not the subject). With KIT_UPDATE_SCREENSHOTS=1 the picture of the
dashboard in docs/ is refreshed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ROOT, ServerHandle, free_port
from test_ui_browser import ARGS, CHROMIUM, PASSWORD, _save_small, texts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.timeout(600),
]

DAYS = 14
MODELS = ("gemma-3-270m-it", "smollm2-135m-instruct")


class Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.moment


def write_history(gw: ServerHandle) -> dict[str, Any]:
    """Two weeks of rows as the gateway writes them: eight staff each day on weekdays, answers with and without
    documents, refusals of each kind; returns what the last day holds."""
    from kit.audit import AuditEvent, AuditLog
    from kit.storage.state import audit_key

    url = f"sqlite:///{gw.settings.home / 'kit.db'}"
    clock = Clock()
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    last: dict[str, Any] = {}
    with AuditLog(url, gw.state.secret, chain_key=audit_key(gw.settings, url)[0], now=clock) as log:
        for back in range(DAYS - 1, -1, -1):
            clock.moment = today - timedelta(days=back)
            if clock.moment.weekday() >= 5:
                continue
            staff = 8 if back else 3  # the last day: fewer people than the threshold
            for i in range(staff * 3):
                refused = {1: ("limited", {}), 7: ("refused", {"reason": "charter"})}.get(i % 11)
                status, detail = refused or ("ok", {"documents": True} if i % 3 else {})
                log.record(AuditEvent(action="chat", user=f"agent{i % staff}", model=MODELS[i % 4 == 0],
                                      completion_tokens=0 if refused else 40 + 7 * (i % 5),
                                      latency_ms=0 if refused else 600 + 90 * (i % 7 + back % 3), status=status,
                                      doc_ids=["d1"] if status == "ok" and i % 3 == 1 else [], detail=detail))
            log.record(AuditEvent(action="chat", user="agent0", model=MODELS[0], status="blocked",
                                  pii_categories=["FR_NIR"], pii_action="block", detail={"blocked": "FR_NIR"}))
        last = {"day": clock.moment.date().isoformat(), "requests": 3 * 3 + 1}
    return last


@pytest.fixture(scope="module")
def usage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerHandle, str, dict[str, Any]]]:
    pytest.importorskip("playwright.sync_api")
    from echo_engine import start_echo_gateway

    from kit.config import load_settings
    from kit.storage.users import add_user
    from ui.app import launch_ui

    base = tmp_path_factory.mktemp("usage-ui")
    old = os.environ.get("KIT_HOME")
    gw, stop = start_echo_gateway(base / "home", base / "kit.yaml", ui={"auth": "local"})
    for name, role in (("root", "admin"), ("dpo", "auditor"), ("bob", "user")):
        add_user(gw.settings.home, name, role, PASSWORD)
        gw.acknowledge(name, role)
    last = write_history(gw)
    port = free_port()
    demo = launch_ui(load_settings(base / "kit.yaml"), gw.url, host="127.0.0.1", port=port, api_key=gw.service_key,
                     prevent_thread_lock=True, quiet=True)
    try:
        yield gw, f"http://127.0.0.1:{port}", last
    finally:
        demo.close()
        stop()
        if old is not None:
            os.environ["KIT_HOME"] = old


@pytest.fixture(scope="module")
def browser(usage_stack: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def signed_in(browser: Any, url: str, user: str, lang: str = "fr-FR") -> tuple[Any, Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang, accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.locator("#kit-main").wait_for(state="visible")
    return context, page


def test_admin_sees_charts_table_and_csv(browser: Any, usage_stack: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    gw, url, last = usage_stack
    fr = texts("fr")
    context, page = signed_in(browser, url, "root")
    try:
        page.locator("#kit-tabs").get_by_role("tab", name=fr("usage.tab")).click()
        expect(page.locator("#kit-usage-intro")).to_contain_text("< 5")
        page.click("#kit-usage-show")  # empty dates: the last 30 days, written back into the boxes
        expect(page.locator("#kit-usage-table")).to_contain_text(last["day"])
        assert page.locator("#kit-usage-to input, #kit-usage-to textarea").first.input_value() == last["day"]
        table = page.locator("#kit-usage-table")
        row = table.get_by_role("row").filter(has_text=last["day"]).filter(has_text=fr("usage.all_models")).first
        cells = [c.strip() for c in row.get_by_role("gridcell").all_inner_texts()]
        assert cells[2] == str(last["requests"]) and cells[3] == "< 5", cells
        for plot in ("#kit-usage-requests", "#kit-usage-refusals", "#kit-usage-latency", "#kit-usage-tokens"):
            expect(page.locator(plot)).to_be_visible()
            expect(page.locator(plot).locator("canvas, svg").first).to_be_visible()
        expect(page.locator("#kit-usage-refusals")).to_contain_text(fr("usage.plot_refusals"))
        with page.expect_download() as info:
            page.locator("#kit-usage-csv a").click()
        text = Path(info.value.path()).read_text(encoding="utf-8")
        assert text.startswith("period,model,requests,active_users,") and "refused:personal_data:FR_NIR" in text
        assert f"{last['day']},,{last['requests']},< 5," in text and "agent" not in text
        page.locator("#kit-usage-by").get_by_label(fr("usage.by_week"), exact=True).check()
        page.click("#kit-usage-show")
        expect(page.locator("#kit-usage-table")).to_contain_text("-W")
        page.locator("#kit-usage-by").get_by_label(fr("usage.by_day"), exact=True).check()
        page.click("#kit-usage-show")
        expect(page.locator("#kit-usage-table")).to_contain_text(last["day"])
        page.wait_for_timeout(800)
        shot = tmp_path / "usage.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("KIT_UPDATE_SCREENSHOTS") == "1":
            _save_small(shot, ROOT / "docs" / "usage-dashboard.png", limit=250_000)
        page.fill("#kit-usage-from input, #kit-usage-from textarea", "31/12/2026")
        page.click("#kit-usage-show")
        expect(page.locator(".kit-status.kit-error")).to_be_visible()
    finally:
        context.close()


def test_auditor_sees_the_tab_in_english_and_a_user_does_not(browser: Any, usage_stack: Any) -> None:
    from playwright.sync_api import expect

    gw, url, last = usage_stack
    en, fr = texts("en"), texts("fr")
    context, page = signed_in(browser, url, "dpo", "en-GB")
    try:
        page.locator("#kit-lang").get_by_label("English").check()
        page.locator("#kit-tabs").get_by_role("tab", name=en("usage.tab")).click()
        page.click("#kit-usage-show")
        expect(page.locator("#kit-usage-table")).to_contain_text(en("usage.col_users"))
        expect(page.locator("#kit-usage-summary")).to_contain_text("request(s)")
    finally:
        context.close()
    context, page = signed_in(browser, url, "bob")
    try:
        tabs = page.locator("#kit-tabs")
        expect(tabs.get_by_role("tab", name=fr("history.tab"))).to_be_visible()
        assert tabs.get_by_role("tab", name=fr("usage.tab")).count() == 0 or not tabs.get_by_role(
            "tab", name=fr("usage.tab")).is_visible()
        assert not page.locator("#kit-usage-show").is_visible()
    finally:
        context.close()
    r = httpx.get(gw.url + "/v1/admin/usage", headers=gw.headers("bob"), timeout=60)
    assert r.status_code == 403
