"""Real browser: a colleague's share link to an influence query on the zoo LM (not yet computed on this server)
opens on the Influence page filled in; one click runs it as a background job (factors, then the query); the
most helpful training sequences appear coloured token by token, each with a link to the Models page."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import metrics, settle, wait_for_at_least

pytestmark = pytest.mark.browser


def test_an_lm_query_from_a_share_link(server, browser, server_workbench):
    from analyses.influence_lm import InfluenceLMSpec

    spec = InfluenceLMSpec(model="zoo-lm", max_sequences=40, prompt="import os\nimport sys\n\nprint(os.path",
                           completion=".join(")
    h = server_workbench.store.put_spec(spec.to_dict())  # the link's spec only: nothing computed yet
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/?a={h}")
    settle(page)
    page.get_by_role("heading", name="Influence").wait_for(timeout=60_000)
    assert page.get_by_label("Completion (its log-probability after the prompt is the measurement; one token "
                             "works too)").input_value() == ".join("
    page.get_by_role("button", name="Find the influential training sequences (background job)").click()
    # the job's live progress, then the page reruns by itself to show the result
    page.locator("[data-testid='stMetric']").filter(has_text="training sequences scored").wait_for(timeout=300_000)
    settle(page)
    assert metrics(page)["training sequences scored"] == "40"
    page.get_by_text("Most helpful training sequences", exact=True).wait_for(timeout=60_000)
    # the expanded sequences are drawn one span per token, each titled with its score
    assert wait_for_at_least(page.locator("span[title]"), 50) >= 50
    assert page.get_by_role("link", name="Open this sequence on the Models page").count() >= 2
    assert "positive = helpful" in page.inner_text("body")
    ctx.close()
