"""Every kind of analysis a page shows comes back from its share link exactly: a fresh session opened at
?a=<hash> (no page named) lands on the kind's page and shows the tables the analysis produced, equal."""
import pandas as pd
import pytest

from tests.app.helpers import errors, new_app


def _specs(small_sae):
    from analyses.attribution_image import AttributionImageSpec
    from analyses.attribution_text import AttributionTextSpec
    from analyses.model_check import ModelCheckSpec
    from analyses.prompt import PromptSpec
    from analyses.sae_dashboard import SAEFeatureSpec
    from analyses.sae_error import SAEErrorSpec
    from analyses.sae_prompt import SAEPromptSpec
    from analyses.sae_runs import SAECompareSpec
    from analyses.sae_steer import SAESteerSpec

    return {
        "prompt": PromptSpec(model="zoo-lm", prompt="def add(a, b):\n    return a + b"),
        "model_check": ModelCheckSpec(model="zoo-modadd"),
        # settings no widget shows (faithfulness_samples, seed, fit_fraction, skip_positions, …) must survive
        "attribution_text": AttributionTextSpec(model="zoo-lm", prompt="import os\nimport sys", target="\n",
                                                methods=("occlusion", "saliency"), faithfulness_samples=2, seed=3),
        "attribution_image": AttributionImageSpec(model="zoo-digits-cnn", image="digits:4",
                                                  methods=("gradcam", "occlusion")),
        "sae_prompt": SAEPromptSpec(model="zoo-lm", sae=small_sae, prompt="class A:\n    def f(self):"),
        "sae_steer": SAESteerSpec(model="zoo-lm", sae=small_sae, prompt="import os\nimport", steer_features=(3, 9),
                                  coefficients=(20.0, -4.5), max_new_tokens=4),
        "sae_error": SAEErrorSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, fit_fraction=0.6, skip_positions=4,
                                  ce_rows=8),
        "sae_feature": SAEFeatureSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, feature=5, n_top=12),
        "sae_compare": SAECompareSpec(model="zoo-lm", runs=(small_sae,)),
    }


def _same_frame(shown: pd.DataFrame, table: pd.DataFrame) -> bool:
    """The shown frame is the table, or the table's columns that the page chose to show (with its rows)."""
    if not set(shown.columns) <= set(table.columns) or len(shown) != len(table):
        return False
    try:
        pd.testing.assert_frame_equal(shown.reset_index(drop=True), table[list(shown.columns)].reset_index(drop=True),
                                      check_dtype=False, check_exact=False, rtol=1e-9)
        return True
    except AssertionError:
        return False


KINDS = ["prompt", "model_check", "attribution_text", "attribution_image", "sae_prompt", "sae_steer",
         "sae_error", "sae_feature", "sae_compare"]
# the table each page shows as a table (None: the page shows this kind as metrics and figures)
MAIN_TABLE = {"prompt": "tokens", "model_check": None, "attribution_text": "methods", "attribution_image": "methods",
              "sae_prompt": "tokens", "sae_steer": None, "sae_error": None, "sae_feature": "neighbours",
              "sae_compare": "runs"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_share_link_restores_the_analysis_tables(wb, small_sae, kind):
    spec = _specs(small_sae)[kind]
    outcome = wb.run(spec)
    tables = {name: t for name, t in outcome.result.tables.items() if isinstance(t, pd.DataFrame) and len(t)}
    at = new_app(a=outcome.spec_hash)
    at.run()
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    # the page rebuilt exactly this spec: the share link it offers names the same hash
    links = [c.value for c in at.code if "a=" in c.value]
    assert any(f"a={outcome.spec_hash}" in link for link in links), (kind, outcome.spec_hash, links)
    shown = [d.value for d in at.dataframe]
    matched = {name for name, t in tables.items() if any(_same_frame(s, t) for s in shown)}
    if MAIN_TABLE[kind] is not None:
        assert MAIN_TABLE[kind] in matched, (kind, sorted(matched), list(tables), [list(s.columns) for s in shown])
