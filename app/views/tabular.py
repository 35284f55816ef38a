"""Tabular models page: the Shapley-value workflow (after the Alzheimer's-classification paper). Black boxes
(XGBoost, random forest, SVM) beside interpretable baselines (decision tree, logistic regression) trained as a
job on a dataset that ships with scikit-learn or an uploaded CSV; SHAP with each model's right explainer and its
cost; SHAP against the models' own and permutation importances; consolidation of correlated features; a
shifted split for transfer; forward selection; one row's waterfall. The sidebar's model is not used here."""
from __future__ import annotations

import streamlit as st

from analyses.tabular import (ALL_MODELS, TabularExplainSpec, TabularFitSpec, TabularRowSpec, TabularSelectionSpec)
from app import urlstate, widgets
from app.services import workbench
from compute.tabular_data import BUILT_IN, PREFIX, store_csv
from tabular.consolidation import parse_groups
from tabular.models import MODEL_KINDS

VIEWS = ["Models and SHAP", "One row", "Forward selection"]
UPLOAD = "upload a CSV…"
DATA_SHOWN = ("target", "positive_class", "drop_missing", "models", "test_share", "shift_feature", "shift_quantile",
              "shift_value", "seed")
SHOWN = DATA_SHOWN + ("max_rows", "min_abs_corr", "groups")

wb = workbench()
st.title("Tabular models")
st.caption("Black-box classifiers beside interpretable baselines on a table, explained with Shapley values and "
           "checked the way the workflow paper does: against the models' own importances, against correlated "
           "features (forward selection, aspect consolidation) and on a shifted split (transfer).")

shared = urlstate.take_shared(wb, TabularFitSpec, TabularExplainSpec, TabularSelectionSpec)
if shared is not None:
    st.session_state.update(tb_data=shared.model, **{f"tb_{k}": getattr(shared, k) for k in DATA_SHOWN})
    if not shared.target:  # the dataset's own target: filled in once the data is read
        st.session_state["tb_target"] = None
    st.session_state["tb_models"] = list(shared.models)
    if isinstance(shared, TabularExplainSpec):
        st.session_state.update(tb_max_rows=shared.max_rows, tb_min_abs_corr=shared.min_abs_corr,
                                tb_groups="\n".join(shared.groups))
    if isinstance(shared, TabularRowSpec):
        st.session_state.update(tb_view="One row", tb_row_model=shared.explained_model, tb_row=shared.row)
    elif isinstance(shared, TabularSelectionSpec):
        st.session_state.update(tb_view="Forward selection", tb_sel_model=shared.selection_model,
                                tb_folds=shared.folds)

datasets = [PREFIX + n for n in BUILT_IN] + st.session_state.setdefault("tb_uploads", [])
if st.session_state.get("tb_data_next"):  # after an upload: select it (set before the widget is drawn)
    st.session_state["tb_data"] = st.session_state.pop("tb_data_next")
urlstate.init_from_url("tb_data", "data", datasets[0])
if st.session_state["tb_data"] not in datasets:
    datasets.append(st.session_state["tb_data"])
c1, c2 = st.columns([2, 3])
data = c1.selectbox("Dataset", datasets + [UPLOAD], key="tb_data",
                    format_func=lambda d: d if d == UPLOAD else f"{d} (built in)" if d.removeprefix(PREFIX) in BUILT_IN
                    else f"{d} (uploaded)")
if data == UPLOAD:
    upload = c2.file_uploader("CSV with a header row; one column is the target", type=["csv", "txt"], key="tb_upload")
    if upload is None:
        st.stop()
    try:
        name = store_csv(wb.settings.uploads_dir, upload.getvalue())
        wb.store.record_upload(name, owner=wb.user.name)
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        st.stop()
    if name not in st.session_state["tb_uploads"]:
        st.session_state["tb_uploads"].append(name)
    st.session_state["tb_data_next"] = name
    st.rerun()
try:
    raw = wb.models.get(data).model
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()
c2.caption(raw.description)
columns = list(raw.frame.columns)
for key, value in (("tb_target", raw.target), ("tb_positive_class", ""), ("tb_drop_missing", False),
                   ("tb_models", list(ALL_MODELS)), ("tb_test_share", 0.25), ("tb_shift_feature", raw.shift_feature),
                   ("tb_shift_quantile", 0.8), ("tb_shift_value", ""), ("tb_seed", 0), ("tb_max_rows", 200),
                   ("tb_min_abs_corr", 0.7), ("tb_groups", "")):
    if st.session_state.get(key) is None:
        st.session_state[key] = value
if st.session_state["tb_target"] not in columns:
    st.session_state["tb_target"] = raw.target if raw.target in columns else columns[-1]
if st.session_state["tb_shift_feature"] not in [""] + columns:
    st.session_state["tb_shift_feature"] = ""

d1, d2, d3 = st.columns([2, 2, 1])
target = d1.selectbox("Target column", columns, key="tb_target")
classes = [""] + sorted(map(str, raw.frame[target].dropna().unique()))[:50]
if st.session_state["tb_positive_class"] not in classes:
    st.session_state["tb_positive_class"] = ""
positive = d2.selectbox("Positive class", classes, key="tb_positive_class",
                        format_func=lambda c: c or "auto (1, or the rarer class)")
drop = d3.checkbox("Drop rows with missing values", key="tb_drop_missing")
models = st.multiselect("Models", list(MODEL_KINDS), key="tb_models", format_func=lambda k: MODEL_KINDS[k])
with st.expander("Splits, transfer and consolidation"):
    e1, e2, e3, e4, e5 = st.columns(5)
    test_share = e1.slider("Test share", 0.1, 0.5, step=0.05, key="tb_test_share")
    shift = e2.selectbox("Shifted split on", [""] + [c for c in columns if c != target], key="tb_shift_feature",
                         format_func=lambda c: c or "none", help="rows with a shifted value of this column are kept "
                                                                 "out of training and testing, as an external cohort")
    quantile = e3.slider("above its quantile", 0.5, 0.95, step=0.05, key="tb_shift_quantile")
    value = e4.text_input("or equal to (a group)", key="tb_shift_value")
    seed = e5.number_input("Seed", 0, None, key="tb_seed")
    f1, f2 = st.columns([1, 3])
    max_rows = f1.number_input("Test rows explained", 10, 5000, key="tb_max_rows")
    corr = f1.slider("Group features correlated at |r| ≥", 0.0, 1.0, step=0.05, key="tb_min_abs_corr")
    groups = f2.text_area("Or groups by hand: one per line, features joined by |", key="tb_groups", height=110)

try:
    spec = urlstate.with_opened_settings(
        TabularExplainSpec(model=data, target="" if target == raw.target else target, positive_class=positive, drop_missing=bool(drop),
                           models=tuple(k for k in ALL_MODELS if k in models), test_share=float(test_share),
                           shift_feature=shift, shift_quantile=float(quantile), shift_value=value.strip(),
                           seed=int(seed), max_rows=int(max_rows), min_abs_corr=float(corr),
                           groups=tuple(g.strip() for g in groups.splitlines() if g.strip())), shown=SHOWN)
    spec.validate()
    table, splits = spec.load(wb.models.get(data))  # cheap: the data's problems show before any job starts
    parse_groups(spec.groups, table.features)  # and so do groups naming features the table lacks
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()
st.caption(f"{len(table.features)} features · positive class **{table.positive}** ({table.y.mean():.0%}) · rows: "
           f"{len(splits.train)} train, {len(splits.test)} test, {len(splits.shifted)} shifted ({splits.rule})"
           + (f" · one-hot: {', '.join(table.encoded)}" if table.encoded else "")
           + (f" · {table.dropped_rows} rows with missing values dropped" if table.dropped_rows else ""))

view = st.radio("View", VIEWS, horizontal=True, key="tb_view")
fit_spec = spec.fit_spec()
fit = widgets.job_result(wb, fit_spec, f"tb-fit-{fit_spec.hash}", "Train the models (background job)")
if fit is None:
    st.stop()
m = fit.tables["metrics"].set_index("model")
widgets.metric_row([(k, f"AUC {m.loc[k, 'test_auc']:.3f}" + (f" · shifted {m.loc[k, 'shifted_auc']:.3f}"
                                                              if m.loc[k, "shifted_auc"] == m.loc[k, "shifted_auc"] else ""))
                    for k in m.index])

if view == "Forward selection":
    g1, g2 = st.columns(2)
    st.session_state.setdefault("tb_sel_model", "logistic_regression")
    st.session_state.setdefault("tb_folds", 5)
    sel_model = g1.selectbox("Model", list(MODEL_KINDS), key="tb_sel_model", format_func=lambda k: MODEL_KINDS[k])
    folds = g2.number_input("Cross-validation folds", 2, 10, key="tb_folds")
    sspec = TabularSelectionSpec(**spec.data_fields(), selection_model=sel_model, folds=int(folds))
    sel = widgets.job_result(wb, sspec, f"tb-sel-{sspec.hash}", "Run forward selection (background job)")
    if sel is not None:
        s = sel.summary
        widgets.metric_row([("selected", f"{s['n_selected']} of {s['of']}"),
                            ("CV ROC-AUC", "–" if s["cv_auc"] is None else f"{s['cv_auc']:.4f}"),
                            ("test AUC, selected", "–" if s["test_auc_selected"] is None else f"{s['test_auc_selected']:.4f}"),
                            ("test AUC, all features", f"{s['test_auc_all']:.4f}")])
        st.caption(f"Rule: {s['rule']}. Selected: {', '.join(s['selected'])}.")
        widgets.show_result(sel, sspec.hash, f"tb-sel-{sspec.hash}",
                            urlstate.share_link("tabular", a=sspec.hash), first=("curve",))
    st.stop()

res = widgets.job_result(wb, spec, f"tb-x-{spec.hash}", "Explain with SHAP (background job)")
if res is None:
    st.stop()
s = res.summary
checks = res.tables["checks"]
if view == "One row":
    rows = sorted(res.tables["values"].row.unique())
    h1, h2 = st.columns(2)
    if st.session_state.get("tb_row_model") not in spec.models:
        st.session_state["tb_row_model"] = spec.models[0]
    if st.session_state.get("tb_row") not in rows:
        st.session_state["tb_row"] = int(rows[0])
    which = h1.selectbox("Model", list(spec.models), key="tb_row_model")
    row = h2.selectbox(f"Test row ({len(rows)} explained)", [int(r) for r in rows], key="tb_row")
    rspec = TabularRowSpec(**spec.explain_fields(), explained_model=which, row=int(row))
    try:
        rres = wb.run(rspec).result
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        st.stop()
    r = rres.summary
    widgets.metric_row([("expected value", f"{r['expected_value']:.3f}"), ("output", f"{r['output']:.3f}"),
                        ("space", r["output_space"]), ("largest push", r["top_feature"])])
    widgets.show_result(rres, rspec.hash, f"tb-row-{rspec.hash}", urlstate.share_link("tabular", a=rspec.hash),
                        last=("row",))
    st.stop()

widgets.metric_row([("SHAP − output (max)", f"{s['max_additivity_error']:.1e}"),
                    ("groups of correlated features", f"{s['groups']['multi_feature_groups']}"),
                    *[(f"ρ SHAP~native, {k}", f"{v:.2f}") for k, v in s["spearman_shap_native"].items() if v == v][:3]])
st.caption("Explainers and cost: " + "; ".join(f"**{c.model}** {c.explainer}, {c.seconds:.2f} s" for c in
                                               checks.itertuples()) + f". Groups: {s['groups']['rule']}.")
widgets.show_result(res, spec.hash, f"tb-x-{spec.hash}", urlstate.share_link("tabular", a=spec.hash),
                    first=("checks", "importance"), last=("agreement", "groups", "transfer", "permutation"))
