"""AppTest: every view of the SAE browser on a small SAE, a feature link, and bad input."""
import pytest

from analyses.sae_dashboard import SAEDashboardSpec
from analyses.sae_error import SAEErrorSpec
from tests.app.helpers import button, errors, metrics, new_app, open_page

TOKENS = 32_768


def _page(**query):
    return open_page("sae_browser", **query)


@pytest.fixture(scope="module")
def dashboards(wb, small_sae):
    return wb.run(SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=TOKENS)).result


def test_feature_list_then_a_feature(small_sae, dashboards):
    at = _page(model="zoo-lm", sae=small_sae, tokens=str(TOKENS))
    m = metrics(at)
    assert m["features"] == "256" and m["tokens"] == f"{TOKENS:,}"
    table = [d.value for d in at.dataframe if "label" in d.value.columns][0]
    assert len(table) == 256 and {"density", "mean_activation", "dead", "underused"} <= set(table.columns)
    at.text_input(key="browser_filter").set_value("self")
    at.run()
    filtered = [d.value for d in at.dataframe if "label" in d.value.columns][0]
    assert 0 < len(filtered) < 256 and filtered.label.str.contains("self", case=False).all()
    # open a feature the way a click on the list does
    at.session_state["browser_feature"] = int(filtered.iloc[0].feature)
    at.segmented_control(key="browser_view").set_value("Feature")
    at.run()
    assert not at.exception and not errors(at), errors(at)
    assert any(s.value.startswith(f"Feature {int(filtered.iloc[0].feature)}:") for s in at.subheader)
    assert "density" in metrics(at)


def test_feature_link_opens_its_dashboard(small_sae, dashboards):
    feature = int(dashboards.tables["features"].sort_values("fires").iloc[-1].feature)
    at = _page(page="sae_browser", model="zoo-lm", sae=small_sae, feature=str(feature), tokens=str(TOKENS))
    assert any(s.value.startswith(f"Feature {feature}:") for s in at.subheader)
    assert int(metrics(at)["fires on"].split()[0].replace(",", "")) > 0
    link = [c.value for c in at.code if "feature=" in c.value][0]
    assert f"feature={feature}" in link and f"sae={small_sae}" in link and "tokens=32768" in link


def test_feature_out_of_range_gets_a_message(small_sae, dashboards):
    at = _page(model="zoo-lm", sae=small_sae, feature="9999", tokens=str(TOKENS))
    assert any("out of range: this SAE has 256 features" in e for e in errors(at))


def test_dashboards_are_computed_as_a_job(wb, small_sae):
    at = _page(model="zoo-lm", sae=small_sae, tokens="65536")
    button(at, "Compute dashboard data (background job)").click()
    at.run()
    assert not errors(at), errors(at)
    spec = SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=65_536)
    job = next(j for j in wb.jobs.list() if j.spec_hash == spec.hash)
    assert wb.jobs.wait(job.id, timeout=240).status == "done"
    at.run()
    assert metrics(at)["tokens"] == "65,536"


def test_features_on_a_prompt(small_sae):
    at = _page(model="zoo-lm", sae=small_sae, view="On a prompt")
    at.text_area(key="browser_prompt").set_value("class Foo:\n    def bar(self):\n        return self")
    button(at, "Show features").click()
    at.run()
    assert not errors(at), errors(at)
    assert metrics(at)["mean L0"] == "8.00"
    assert any("hash" in c.value or "a=" in c.value for c in at.code)


def test_steering_with_zero_coefficient_matches(small_sae):
    at = _page(model="zoo-lm", sae=small_sae, view="Steering")
    at.text_area(key="browser_steer_prompt").set_value("import os\nimport")
    at.text_input(key="browser_steer_features").set_value("3, 9")
    at.text_input(key="browser_coef").set_value("0")
    at.slider(key="browser_new_tokens").set_value(5)
    button(at, "Compare with the unmodified model").click()
    at.run()
    assert not errors(at), errors(at)
    assert metrics(at)["KL(unmodified ‖ steered), next token"] == "0.0000"
    at.text_input(key="browser_steer_features").set_value("3, x")
    button(at, "Compare with the unmodified model").click()
    at.run()
    assert any("comma-separated integers" in e for e in errors(at))


def test_sae_error_view(wb, small_sae):
    s = wb.run(SAEErrorSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384)).result.summary
    at = _page(model="zoo-lm", sae=small_sae, view="SAE error")
    at.select_slider(key="browser_err_tokens").set_value(16_384)
    at.run()
    assert not errors(at), errors(at)
    m = metrics(at)  # the stored result of that spec, as stored
    assert m["error variance linearly predictable"] == f"{s['r2_vector']:.1%}"
    assert m["error norm² linearly predictable (R²)"] == f"{s['r2_norm']:.1%}"
    assert m["CE increase from the nonlinear error"] == f"{s['ce_increase_from_nonlinear']:.1%}"


def test_an_sae_of_another_model_is_refused(small_sae):
    at = _page(model="zoo-modadd", sae=small_sae)
    assert any("trained on zoo-lm, not on zoo-modadd" in e for e in errors(at))
