"""Real browser: run a prompt on the Models page, take the share link, open it in a new browser context."""
from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import metrics, settle, wait_for_at_least

pytestmark = pytest.mark.browser


def test_prompt_share_link_reopens_in_a_new_browser(server, browser, tmp_path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{server}/")
    settle(page)
    box = page.get_by_label("Prompt")
    box.fill("def f(x):\n    return x\n\ndef f(x):\n    return")
    page.get_by_role("button", name="Run prompt").click()
    page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    settle(page)
    first = metrics(page)
    assert first["tokens"].isdigit() and int(first["tokens"]) > 5
    link = page.locator("[data-testid='stCode']").first.inner_text().strip()
    assert re.search(r"/\?a=[0-9a-f]{16}", link), link
    assert link.startswith(server)
    assert "a=" in page.url  # the address bar holds the analysis too
    page.screenshot(path=str(tmp_path / "first.png"))
    ctx.close()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})  # no shared state with the first
    page2 = fresh.new_page()
    page2.goto(link)
    page2.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    settle(page2)
    assert metrics(page2) == first
    assert wait_for_at_least(page2.get_by_text("loaded from the result cache"), 1) >= 1
    assert page2.get_by_label("Prompt").input_value() == "def f(x):\n    return x\n\ndef f(x):\n    return"
    fresh.close()
