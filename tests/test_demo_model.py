"""A demonstration model says it is one: the catalogue's flag, the gateway's /health and charter, the notice on the
chat page (real browser) while it serves, and none for a model without the flag. `kit doctor` and `kit report`
are covered in test_report.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ROOT, ServerHandle
from test_ui_usage import CHROMIUM, browser, signed_in, usage_stack

__all__ = ["browser", "usage_stack"]  # the real gateway and chat of test_ui_usage (echo engine), reused here


def test_the_catalogue_flags_only_the_embedded_model_as_a_demo() -> None:
    from kit.models.catalog import load_catalog

    catalog = load_catalog(ROOT / "models.yaml")
    demos = [e.name for e in catalog.models if e.demo]
    assert demos == ["smollm2-135m-instruct"]
    assert catalog.get("qwen2.5-1.5b-instruct").demo is False


@pytest.mark.slow
def test_the_gateway_says_a_demo_model_serves(gateway: ServerHandle) -> None:
    """The real engine on the embedded model: /health and the charter the chat reads both say demo."""
    assert gateway.engine.demo is True
    health = httpx.get(gateway.url + "/health", timeout=60).json()
    assert health["model"] == "smollm2-135m-instruct" and health["demo"] is True
    charter = httpx.get(gateway.url + "/v1/charter", headers=gateway.headers("alice"), timeout=60).json()
    assert charter["model"] == {"name": "smollm2-135m-instruct", "demo": True}


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_the_chat_page_shows_the_notice_while_a_demo_model_serves(browser: Any, usage_stack: Any) -> None:
    from playwright.sync_api import expect

    from ui.texts import texts

    gw, url, _ = usage_stack
    fr, en = texts("fr"), texts("en")
    gw.engine.demo = True
    try:
        context, page = signed_in(browser, url, "bob")
        try:
            notice = page.locator("#kit-demo-notice")
            expect(notice).to_be_visible()
            expect(notice).to_have_text(fr("chat.demo_model"))
            assert "Modèle de démonstration" in notice.inner_text()
            page.locator("#kit-lang").get_by_label("English").check()
            expect(notice).to_have_text(en("chat.demo_model"))
            assert "Demonstration model" in notice.inner_text()
        finally:
            context.close()
    finally:
        gw.engine.demo = False
    context, page = signed_in(browser, url, "bob")
    try:
        expect(page.locator(".kit-notice").first).to_be_visible()
        assert page.locator("#kit-demo-notice").count() == 0  # not a demo model: no such notice
    finally:
        context.close()
