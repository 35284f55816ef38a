"""Real browser: a readable link to one feature of a hook_z SAE opens its head attribution on the Attention
features page: its family and top head, the per-head heatmap drawn by Plotly, and the link to its dashboard."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import settle

pytestmark = pytest.mark.browser


def test_a_feature_link_opens_its_heads(server, browser, server_workbench):
    from analyses.attention_features import AttentionFeaturesSpec
    from analyses.sae_runs import SAETrainSpec

    run = SAETrainSpec(model="zoo-lm", hook="blocks.1.attn.hook_z", arch="topk", k=8, d_sae=256, n_tokens=65_536,
                       batch_size=1024, lr=2e-3, eval_tokens=4096)
    server_workbench.run(run)
    features = server_workbench.run(AttentionFeaturesSpec(model="zoo-lm", sae=run.hash)).result.tables["features"]
    feat = int(features[(features.family == "induction") & (features.top_head == "L1H1")].feature.iloc[0])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/?page=attention_features&model=zoo-lm&sae={run.hash}&feature={feat}")
    page.get_by_text(f"Feature {feat}:").first.wait_for(timeout=120_000)
    settle(page)
    metrics = page.inner_text("body")
    assert "induction" in metrics and "L1H1" in metrics, metrics[:2000]
    page.wait_for_selector(f"text=Feature {feat}: share per head", timeout=60_000)  # the Plotly heatmap's title
    link = page.get_by_text("Its dashboard in the SAE browser")
    assert "page=sae_browser" in link.get_attribute("href") and f"feature={feat}" in link.get_attribute("href")
    page.close()
