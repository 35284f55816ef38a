"""Real browser: train a tiny SAE from the SAE training page and see its result."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import settle, wait_for_at_least

pytestmark = pytest.mark.browser


def test_train_a_tiny_sae_end_to_end(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/?page=sae_training")
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


def test_a_feature_link_opens_its_dashboard(server, browser, server_workbench):
    """A researcher sends a feature's link; a fresh browser opens that feature's dashboard."""
    from analyses.sae_dashboard import SAEDashboardSpec
    from analyses.sae_runs import SAETrainSpec

    wb = server_workbench
    run = SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", arch="topk", k=8, d_sae=256,
                       n_tokens=32_768, batch_size=1024, lr=2e-3, eval_tokens=4096)
    wb.run(run)
    dash = wb.run(SAEDashboardSpec(model="zoo-lm", sae=run.hash, n_tokens=32_768)).result
    feats = dash.tables["features"]
    feature = int(feats.sort_values("fires").iloc[-1].feature)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/?page=sae_browser&model=zoo-lm&sae={run.hash}&feature={feature}&tokens=32768")
    settle(page)
    page.get_by_text(f"Feature {feature}:").first.wait_for(timeout=120_000)
    settle(page)
    assert "sae_browser" in page.url and f"feature={feature}" in page.url
    m = page.locator("[data-testid='stMetric']").filter(has_text="fires on")
    fires = int(m.locator("[data-testid='stMetricValue']").inner_text().split()[0].replace(",", ""))
    assert fires == int(feats.fires[feature])
    # the top context is highlighted token by token: the firing token carries the max activation
    assert wait_for_at_least(page.locator("span[title]"), 21) > 20
    ctx.close()
