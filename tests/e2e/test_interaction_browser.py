"""Real browser: a shared interaction-bases link opens the stored LIB result on the Interaction bases page,
its metrics, its Plotly charts (the interaction graphs among them) and its own share link."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import settle

pytestmark = pytest.mark.browser


def test_a_shared_lib_result_opens_with_its_graph(server, browser, server_workbench):
    from analyses.interaction_bases import InteractionBasesSpec

    spec = InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                     "layers.4.hook_out", "layers.5.hook_out"),
                                last_pos_from="", bases=("lib", "pca"))
    outcome = server_workbench.run(spec)  # stored on the server's home: the link opens it from the cache
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/?a={outcome.spec_hash}")
    page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    settle(page)
    body = page.inner_text("body")
    assert "Interaction bases" in body
    accuracy = f"{outcome.result.summary['unablated_accuracy']:.4f}"
    assert accuracy in page.inner_text("[data-testid='stMetric']"), body[:2000]
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=60_000)
    settle(page)
    charts = page.locator("[data-testid='stPlotlyChart']")
    assert charts.count() >= 4  # two interaction graphs, spectra, node ablation
    page.wait_for_selector("text=lib: interaction graph", timeout=60_000)  # drawn by Plotly in the browser
    page.wait_for_selector(f"text=a={outcome.spec_hash}", timeout=60_000)  # the share link shown is this result's
    page.close()
