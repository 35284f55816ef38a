"""Real browser: compare two attribution methods on a prompt and read their faithfulness table."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import metrics, settle, wait_for_at_least

pytestmark = pytest.mark.browser


def test_compare_two_methods_on_a_prompt(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = ctx.new_page()
    page.goto(f"{server}/?page=attribution")
    settle(page)
    page.get_by_label("Prompt", exact=True).fill("import os\nimport sys\n\nprint(os.path")
    page.get_by_label("Target continuation (empty: the model's next token)").fill(".")
    methods = page.locator("[data-testid='stMultiSelect']").first
    methods.get_by_role("button", name="Clear all").click()
    for label in ("Integrated Gradients", "Attention rollout"):
        methods.locator("input").fill(label)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Compare").click()
    page.locator("[data-testid='stMetric']").filter(has_text="log p(target)").wait_for(timeout=180_000)
    settle(page)
    m = metrics(page)
    assert m["methods"] == "2" and m["target"] == "'.'"
    # one highlighted row of tokens per method
    rows = page.locator("table tr").filter(has_text="Integrated Gradients")
    assert wait_for_at_least(rows, 1) >= 1
    assert wait_for_at_least(page.locator("tr").filter(has_text="Attention rollout"), 1) >= 1
    assert "a=" in page.url
    ctx.close()
