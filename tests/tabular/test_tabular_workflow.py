"""The tabular Shapley workflow: Tree SHAP adds up to each model's output (read back from the saved files, no
pickle); a planted label that depends on two features gets those two first in every method; two duplicated
features are consolidated and their group gets the sum of what each got; forward selection finds the planted
pair and stops; the transfer split is kept out of training; the CLI prints the workflow's JSON."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from compute.tabular_data import store_csv

FEATURES = ["signal_a", "signal_b", "noise_1", "noise_2", "noise_3", "noise_4"]


def planted_csv(n: int = 400, seed: int = 0, duplicate: bool = False) -> bytes:
    """label = 1 when signal_a + signal_b > 0 (a little label noise); four noise columns; optionally a copy of
    signal_a."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    if duplicate:
        df.insert(1, "signal_a_copy", df.signal_a)
    flip = rng.random(n) < 0.03
    df["label"] = np.where((df.signal_a + df.signal_b > 0) ^ flip, "yes", "no")
    return df.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def planted(wb):
    from analyses.tabular import TabularExplainSpec

    model = store_csv(wb.settings.uploads_dir, planted_csv())
    spec = TabularExplainSpec(model=model, target="label", positive_class="yes", shift_feature="noise_1", max_rows=80,
                              background=30)
    return spec, wb.run(spec).result


def test_tree_shap_adds_up_to_the_saved_models_outputs(wb):
    from analyses.tabular import TabularExplainSpec
    from tabular.explain import explained_output
    from tabular.models import load

    spec = TabularExplainSpec(model="tabular:breast-cancer", models=("xgboost", "random_forest", "decision_tree"),
                              max_rows=60)
    res = wb.run(spec).result
    folder = wb.artifact_folder(spec.fit_spec())
    assert sorted(p.name for p in folder.iterdir()) == ["decision_tree.skops", "features.json", "random_forest.skops",
                                                        "xgboost.json"]  # no pickle anywhere
    table, _ = spec.load(wb.models.get(spec.model))
    checks = res.tables["checks"].set_index("model")
    vals = res.tables["values"]
    for kind in spec.models:
        model = load(kind, folder)
        v = vals[vals.model == kind].pivot(index="row", columns="feature", values="shap")[table.features]
        want = explained_output(model, kind, table.X.to_numpy()[v.index.to_numpy()])
        assert np.allclose(v.sum(1).to_numpy() + checks.loc[kind, "expected_value"], want, atol=1e-4), kind
    assert res.summary["max_additivity_error"] < 1e-4
    assert checks.loc["xgboost", "output"] == "log-odds" and checks.loc["random_forest", "output"] == "probability"


def test_a_planted_pair_comes_first_in_every_method(planted):
    spec, res = planted
    want = {"signal_a", "signal_b"}
    for kind, top in res.summary["top_features"].items():
        assert set(top[:2]) == want, (kind, top)
    perm = res.tables["permutation"]
    for kind, part in perm.groupby("model"):
        assert set(part.sort_values("permutation", ascending=False).feature.head(2)) == want, kind
        if part.native.notna().all():
            assert set(part.sort_values("native", ascending=False).feature.head(2)) == want, kind
    checks = res.tables["checks"].set_index("model")
    assert checks.loc["svm", "model_evaluations_per_row"] > 0 and checks.loc["svm", "seconds"] > 0
    assert (checks.additivity_error < 1e-4).all()


def test_the_shifted_split_is_held_out_and_compared(wb, planted):
    spec, res = planted
    fit = wb.run(spec.fit_spec()).result
    rows = fit.summary["rows"]
    assert rows["train"] + rows["test"] + rows["shifted"] == 400 and 70 <= rows["shifted"] <= 90
    assert fit.summary["shift"].startswith("noise_1 >")
    # a shift in a feature the label ignores leaves the importances in place
    for _, r in res.tables["transfer"].iterrows():
        shifted = sorted(FEATURES, key=lambda f: -r[f"shifted_{f}"])
        assert set(shifted[:2]) == {"signal_a", "signal_b"}, (r.model, shifted)
    assert set(res.summary["spearman_test_vs_shifted"]) == set(spec.models)
    assert fit.tables["metrics"].shifted_auc.min() > 0.85


def test_duplicated_features_are_consolidated_and_their_group_sums_them(wb):
    from analyses.tabular import TabularExplainSpec

    model = store_csv(wb.settings.uploads_dir, planted_csv(duplicate=True))
    kinds = ("xgboost", "random_forest", "logistic_regression", "svm")
    res = wb.run(TabularExplainSpec(model=model, target="label", positive_class="yes", models=kinds, max_rows=60,
                                    background=30)).result
    g = res.tables["groups"]
    pair = g[g.members == "signal_a | signal_a_copy"]
    assert len(pair) == len(kinds), g[g["size"] > 1]  # the copies form one group, in every model
    assert (g["size"] > 1).sum() == len(kinds)  # and nothing else is grouped
    for _, r in pair.iterrows():  # both copies push the same way on every row: the group gets their sum
        assert r.importance == pytest.approx(r.sum_of_members, rel=0.02), r.model
    # and the group is worth what signal_a alone is worth without its copy (logistic regression: linear, exact)
    alone = wb.run(TabularExplainSpec(model=store_csv(wb.settings.uploads_dir, planted_csv()), target="label",
                                      positive_class="yes", models=("logistic_regression",), max_rows=60,
                                      background=30)).result
    a = alone.tables["importance"].set_index("feature").loc["signal_a", "logistic_regression"]
    lr = pair.set_index("model").loc["logistic_regression", "importance"]
    assert lr == pytest.approx(a, rel=0.15)


def test_hand_made_groups_and_bad_ones(wb, planted):
    from analyses.tabular import TabularExplainSpec
    from compute.errors import BadInput

    spec, _ = planted
    fields = {k: v for k, v in spec.to_dict().items() if k != "kind"}
    res = wb.run(TabularExplainSpec(**{**fields, "models": ("logistic_regression",), "groups": ("noise_1|noise_2",)})).result
    g = res.tables["groups"]
    assert list(g[g["size"] > 1].members) == ["noise_1 | noise_2"]
    with pytest.raises(BadInput, match="unknown feature"):
        wb.run(TabularExplainSpec(**{**fields, "models": ("logistic_regression",), "groups": ("noise_1|nope",)}))


def test_forward_selection_finds_the_planted_pair_and_stops(wb, planted):
    from analyses.tabular import TabularSelectionSpec

    spec, _ = planted
    res = wb.run(TabularSelectionSpec(model=spec.model, target="label", positive_class="yes",
                                      selection_model="logistic_regression")).result
    s = res.summary
    assert set(s["selected"][:2]) == {"signal_a", "signal_b"} and s["n_selected"] <= 3, s
    curve = res.tables["curve"]
    assert curve.cv_auc.is_monotonic_increasing and curve.cv_auc.iloc[1] > 0.95
    assert s["test_auc_selected"] >= s["test_auc_all"] - 0.01


def test_a_row_waterfall_ends_at_the_models_output(wb, planted):
    from analyses.tabular import TabularRowSpec

    spec, res = planted
    fields = {k: v for k, v in spec.to_dict().items() if k != "kind"}
    row = wb.run(TabularRowSpec(**fields, explained_model="xgboost")).result
    s = row.summary
    one = row.tables["row"]
    assert s["output"] == pytest.approx(s["expected_value"] + one.shap.sum())
    assert one.shap.abs().is_monotonic_decreasing and s["row"] in s["all_rows"]


def test_cli_prints_the_workflow(tmp_path, capsys):
    from cli.main import main

    path = tmp_path / "planted.csv"
    path.write_bytes(planted_csv())
    code = main(["tabular", "--data", str(path), "--target", "label", "--positive", "yes", "--models",
                 "xgboost,decision_tree", "--rows", "40", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["positive_class"] == "yes" and set(out["models"]) == {"xgboost", "decision_tree"}
    assert set(out["models"]["xgboost"]["top_features"][:2]) == {"signal_a", "signal_b"}
    assert out["models"]["decision_tree"]["family"] == "interpretable"
