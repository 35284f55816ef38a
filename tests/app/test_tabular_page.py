"""AppTest: the Tabular models page trains the models and explains them as jobs, restores both from a share
link, shows one row's waterfall, and says what is wrong with a bad CSV before any job starts."""
import numpy as np
import pandas as pd

from tests.app.helpers import errors, metrics, open_page, run_job

MODELS = ["xgboost", "logistic_regression"]


def test_train_explain_share_and_a_row(wb):
    from analyses.tabular import TabularExplainSpec

    at = open_page("tabular")
    assert not errors(at), errors(at)
    at.multiselect(key="tb_models").set_value(MODELS).run()
    spec = TabularExplainSpec(model="tabular:breast-cancer", models=tuple(MODELS), shift_feature="mean texture")
    run_job(wb, at, spec.fit_spec(), "Train the models (background job)")
    assert metrics(at)["xgboost"].startswith("AUC 0.9")
    run_job(wb, at, spec, "Explain with SHAP (background job)")
    assert float(metrics(at)["SHAP − output (max)"]) < 1e-4
    assert any("spearman_shap_native" in d.value.columns for d in at.dataframe)

    shared = open_page("tabular", a=spec.hash)  # the link restores the models and the splits
    assert not errors(shared), errors(shared)
    assert shared.multiselect(key="tb_models").value == MODELS
    assert shared.selectbox(key="tb_shift_feature").value == "mean texture"
    assert "SHAP − output (max)" in metrics(shared)

    shared.radio(key="tb_view").set_value("One row").run()
    assert not errors(shared), errors(shared)
    m = metrics(shared)
    assert m["space"] == "log-odds" and float(m["output"]) == float(m["output"])


def test_a_bad_csv_is_explained_before_any_job(wb):
    from compute.tabular_data import store_csv

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.normal(60, 8, 80), "score": rng.normal(size=80)})
    df["converted"] = (df.score > 0).astype(int)
    df.loc[[2, 9, 11], "age"] = np.nan
    name = store_csv(wb.settings.uploads_dir, df.to_csv(index=False).encode())
    at = open_page("tabular", data=name)
    assert any("missing values in 1 column(s): age (3)" in e for e in errors(at)), errors(at)
    assert not [b for b in at.button if b.label.startswith("Train")]
    at.checkbox(key="tb_drop_missing").check().run()
    assert not errors(at), errors(at)
    assert [b for b in at.button if b.label.startswith("Train")]
