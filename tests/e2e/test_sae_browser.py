"""Real browser: train a tiny SAE from the SAE training page and see its result."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import settle

pytestmark = pytest.mark.browser


def test_train_a_tiny_sae_end_to_end(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/sae_training")
    settle(page)
    page.get_by_label("d_sae (features)").fill("128")
    page.get_by_label("training tokens").fill("16384")
    page.get_by_label("k (features per token; average for FC/MC)").fill("4")
    page.get_by_text("Mutual Choice", exact=True).click()
    page.get_by_role("button", name="Train as a background job").click()
    page.get_by_text("submitted").wait_for(timeout=60_000)
    # the live fragment follows the job until it is done
    page.get_by_text("· done").first.wait_for(timeout=240_000)
    page.reload()
    settle(page)
    page.get_by_role("tab", name="Runs").click()
    metric = page.locator("[data-testid='stMetric']").filter(has_text="normalised MSE")
    metric.wait_for(timeout=60_000)
    value = float(metric.locator("[data-testid='stMetricValue']").inner_text())
    assert 0 < value < 1
    ctx.close()
