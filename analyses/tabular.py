"""The Shapley-value workflow for tabular classifiers (after "Machine Learning Workflow to Explain Black-box
Models for Early Alzheimer's Disease Classification"): black boxes beside interpretable baselines, SHAP
against the models' own importances, forward selection and aspect consolidation against correlated
features, and a transfer check on a shifted split.

A spec's `model` is a dataset (`tabular:breast-cancer`, or `tabular:csv:SHA` for an uploaded CSV:
compute/tabular_data.py). Kinds:
- `tabular_fit` (a job): the models trained on the training split and saved (XGBoost JSON, skops), held-out
  accuracy and ROC-AUC on the test split and on the shifted split;
- `tabular_explain` (a job): SHAP values per model (the right explainer each, with its cost), global
  importance, beeswarm and dependence plots, SHAP vs the models' own importances (impurity / gain /
  coefficients) and permutation importance as rank correlations, agreement between models, the
  consolidated groups and their importance, importances on the test vs the shifted split;
- `tabular_row`: one row's waterfall for one model;
- `tabular_selection` (a job): forward selection for one model, its curve and the selected set's test AUC.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from compute.errors import BadInput

from .base import FitSpec, Result, Spec, bounded
from .registry import register
from .tabular_figures import (agreement_heatmap, beeswarm, correlation_heatmap, dependence, group_bars, importance_bars,
                              metric_bars, selection_curve, transfer_scatter, waterfall)

ALL_MODELS = ("xgboost", "random_forest", "svm", "decision_tree", "logistic_regression")
SHOWN_FEATURES = 15  # in the importance and beeswarm figures


@dataclass(frozen=True)
class TabularDataSpec(Spec):
    """The data fields every tabular kind shares: which table, which target, which splits."""
    target: str = ""  # "" = the dataset's own (the last column of a CSV)
    positive_class: str = ""  # "" = 1 for 0/1 targets, else the rarer class
    drop_missing: bool = False
    features: tuple[str, ...] = ()  # a subset of the features (forward selection's, say); () = all
    models: tuple[str, ...] = ALL_MODELS
    test_share: float = bounded(0.25, 0.1, 0.5)
    shift_feature: str = ""  # "" = no shifted split
    shift_quantile: float = bounded(0.8, 0.5, 0.95)
    shift_value: str = ""  # hold out this value of shift_feature instead of a quantile
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        from compute.tabular_data import is_tabular
        from tabular.models import check_kinds

        if not is_tabular(self.model):
            raise BadInput(f"tabular analyses run on a dataset (tabular:breast-cancer, or an uploaded CSV), not on "
                           f"the model '{self.model}'")
        check_kinds(self.models)

    def data_fields(self) -> dict:
        names = {f.name for f in fields(TabularDataSpec)}
        return {k: v for k, v in self.to_dict().items() if k in names}

    def fit_spec(self) -> "TabularFitSpec":
        return TabularFitSpec(**self.data_fields())

    def load(self, lm):
        """(table, splits) of this spec: the model-ready table and its train/test/shifted rows."""
        from compute.tabular_data import read_table
        from tabular.splits import make_splits

        table = read_table(lm.model, self.target, self.positive_class, self.drop_missing)
        if self.features:
            unknown = [f for f in self.features if f not in table.features]
            if unknown:
                raise BadInput(f"unknown feature(s) {', '.join(unknown[:5])}; the data has {', '.join(table.features[:10])}…")
            table.X = table.X[list(self.features)]
        return table, make_splits(table, self.test_share, self.seed, self.shift_feature, self.shift_quantile,
                                  self.shift_value)


@dataclass(frozen=True)
class TabularFitSpec(TabularDataSpec, FitSpec, kind="tabular_fit", title="Tabular models", page="tabular"):
    ARTIFACT = "tabular_models"

    def describe(self) -> str:
        return f"{len(self.models)} tabular model(s) on {self.model}"


def _auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan")


@register(TabularFitSpec, long=True)
def run_tabular_fit(spec: TabularFitSpec, ctx) -> Result:
    import time

    from tabular.models import INTERPRETABLE, MODEL_KINDS, describe_params, fit, positive_probability, save

    lm = ctx.model(spec.model)
    table, splits = spec.load(lm)
    X, y = table.X.to_numpy(), table.y
    folder = ctx.workbench.artifact_folder(spec)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for i, kind in enumerate(spec.models):
        ctx.progress(i / len(spec.models), f"training {MODEL_KINDS[kind]}")
        t0 = time.perf_counter()
        model = fit(kind, X[splits.train], y[splits.train], spec.seed)
        seconds = time.perf_counter() - t0
        save(model, kind, tmp)
        row = {"model": kind, "name": MODEL_KINDS[kind], "family": "interpretable" if kind in INTERPRETABLE else "black box",
               "fit_seconds": seconds, "params": describe_params(model, kind)}
        for split, idx in (("train", splits.train), ("test", splits.test), ("shifted", splits.shifted)):
            if len(idx):
                p = positive_probability(model, X[idx])
                row[f"{split}_accuracy"] = float(((p >= 0.5) == y[idx]).mean())
                row[f"{split}_auc"] = _auc(y[idx], p)
            else:
                row[f"{split}_accuracy"] = row[f"{split}_auc"] = np.nan
        rows.append(row)
    (tmp / "features.json").write_text(json.dumps(table.features))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)  # all models or none: a cancelled or failed fit leaves no half folder
    metrics = pd.DataFrame(rows)
    summary = {"dataset": spec.model, "description": lm.model.description, "target": table.target,
               "positive_class": table.positive, "negative_class": table.negative, "features": len(table.features),
               "encoded_columns": table.encoded, "dropped_rows": table.dropped_rows,
               "rows": {"train": len(splits.train), "test": len(splits.test), "shifted": len(splits.shifted)},
               "positive_share": float(table.y.mean()), "shift": splits.rule,
               "best_test_auc": metrics.sort_values("test_auc", ascending=False).model.iloc[0],
               "saved_as": "XGBoost JSON; scikit-learn models with skops (no pickle)"}
    ctx.progress(1.0, "done")
    return Result(TabularFitSpec.KIND, summary, {"metrics": metrics}, {"metrics": metric_bars(metrics)})


def load_models(ctx, spec: TabularDataSpec) -> dict:
    from tabular.models import load

    fit_spec = spec.fit_spec()
    ctx.require(fit_spec, share=(0.0, 0.2))
    folder = ctx.workbench.artifact_folder(fit_spec)
    return {kind: load(kind, folder) for kind in spec.models}


@dataclass(frozen=True)
class TabularExplainSpec(TabularDataSpec, kind="tabular_explain", title="Tabular SHAP", page="tabular"):
    max_rows: int = bounded(200, 10, 5000)  # test (and shifted) rows explained
    background: int = bounded(50, 10, 500)  # training rows the model-agnostic and linear explainers integrate over
    svm_evals: int = bounded(0, 0, 100_000)  # PermutationExplainer evaluations per row (0: max(500, 2·features + 1))
    permutation_repeats: int = bounded(10, 1, 100)
    min_abs_corr: float = bounded(0.7, 0.0, 1.0)  # consolidation: features correlated at least this much group
    groups: tuple[str, ...] = ()  # hand-made groups "a|b|c" instead of the clustering

    def depends_on(self):
        return (self.fit_spec(),)

    def explain_fields(self) -> dict:
        names = {f.name for f in fields(TabularExplainSpec)}
        return {k: v for k, v in self.to_dict().items() if k in names}

    def describe(self) -> str:
        return f"SHAP of {len(self.models)} tabular model(s) on {self.model}"


def _rows(idx: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@register(TabularExplainSpec, long=True)
def run_tabular_explain(spec: TabularExplainSpec, ctx) -> Result:
    from sklearn.inspection import permutation_importance

    from tabular.consolidation import correlation_groups, group_name, group_values, parse_groups
    from tabular.explain import explain
    from tabular.models import MODEL_KINDS, NATIVE, native_importance

    lm = ctx.model(spec.model)
    table, splits = spec.load(lm)
    models = load_models(ctx, spec)
    X, y, feats = table.X.to_numpy(), table.y, table.features
    test = _rows(splits.test, spec.max_rows, spec.seed)
    shifted = _rows(splits.shifted, spec.max_rows, spec.seed)
    background = X[_rows(splits.train, spec.background, spec.seed + 1)]
    groups = (parse_groups(spec.groups, feats) if spec.groups
              else correlation_groups(table.X.iloc[splits.train], spec.min_abs_corr))
    gnames = [group_name(g) for g in groups]

    importance = pd.DataFrame({"feature": feats})
    checks, values, group_rows, transfer, perm_rows = [], [], [], [], []
    for i, (kind, model) in enumerate(models.items()):
        lo = 0.2 + 0.8 * i / len(models)
        ctx.progress(lo, f"SHAP of {MODEL_KINDS[kind]}")
        ex = explain(model, kind, X[test], background, spec.seed, spec.svm_evals)
        imp = ex.importance()
        importance[kind] = imp
        native = native_importance(model, kind, feats)
        ctx.progress(lo + 0.5 * 0.8 / len(models), f"permutation importance of {MODEL_KINDS[kind]}")
        perm = permutation_importance(model, X[splits.test], y[splits.test], scoring="roc_auc",
                                      n_repeats=spec.permutation_repeats, random_state=spec.seed)
        perm_rows += [{"model": kind, "feature": f, "permutation": float(m), "permutation_std": float(s),
                       "native": None if native is None else float(native[j]), "shap": float(imp[j])}
                      for j, (f, m, s) in enumerate(zip(feats, perm.importances_mean, perm.importances_std))]
        checks.append({"model": kind, "explainer": ex.explainer, "output": ex.output, "expected_value": ex.expected,
                       "rows_explained": len(test), "model_evaluations_per_row": ex.model_evaluations,
                       "seconds": ex.seconds, "additivity_error": ex.additivity_error,
                       "native_importance": NATIVE[kind],
                       "spearman_shap_native": np.nan if native is None else _spearman(imp, native),
                       "spearman_shap_permutation": _spearman(imp, perm.importances_mean)})
        values.append(pd.DataFrame({"model": kind, "row": np.repeat(test, len(feats)),
                                    "feature": np.tile(feats, len(test)), "value": X[test].reshape(-1),
                                    "shap": ex.values.reshape(-1)}))
        gv = group_values(ex.values, feats, groups)
        group_rows += [{"model": kind, "group": n, "members": " | ".join(g), "size": len(g),
                        "importance": float(np.abs(gv[:, k]).mean()),
                        "sum_of_members": float(imp[[feats.index(m) for m in g]].sum())}
                       for k, (n, g) in enumerate(zip(gnames, groups))]
        if len(shifted):
            ex_shift = explain(model, kind, X[shifted], background, spec.seed, spec.svm_evals)
            si = ex_shift.importance()
            top_t, top_s = set(np.argsort(-imp)[:5]), set(np.argsort(-si)[:5])
            transfer.append({"model": kind, "spearman_test_vs_shifted": _spearman(imp, si),
                             "top5_overlap": len(top_t & top_s) / 5,
                             **{f"test_{f}": float(v) for f, v in zip(feats, imp)},
                             **{f"shifted_{f}": float(v) for f, v in zip(feats, si)}})
    kinds = list(models)
    for kind in kinds:
        importance[f"{kind}_rank"] = importance[kind].rank(ascending=False, method="min").astype(int)
    importance["mean_rank"] = importance[[f"{k}_rank" for k in kinds]].mean(1)
    importance = importance.sort_values("mean_rank").reset_index(drop=True)
    agreement = pd.DataFrame([[_spearman(importance[a], importance[b]) for b in kinds] for a in kinds],
                             index=kinds, columns=kinds).reset_index(names="model")
    checks = pd.DataFrame(checks)
    group_table = pd.DataFrame(group_rows)
    values = pd.concat(values, ignore_index=True)
    transfer = pd.DataFrame(transfer)
    corr = table.X.iloc[splits.train].corr().fillna(0.0)
    order = [m for g in groups for m in g]

    summary = {"dataset": spec.model, "target": table.target, "positive_class": table.positive,
               "rows_explained": len(test), "shifted_rows_explained": len(shifted), "shift": splits.rule,
               "top_features": {k: importance.sort_values(k, ascending=False).feature.head(5).tolist() for k in kinds},
               "spearman_shap_native": dict(zip(checks.model, checks.spearman_shap_native)),
               "spearman_shap_permutation": dict(zip(checks.model, checks.spearman_shap_permutation)),
               "max_additivity_error": float(checks.additivity_error.max()),
               "groups": {"rule": (f"hand-made ({len(spec.groups)} given)" if spec.groups else
                                   f"average-linkage clusters of 1 − |r|, cut at mean |r| ≥ {spec.min_abs_corr}"),
                          "multi_feature_groups": sum(len(g) > 1 for g in groups), "groups": len(groups)},
               "seconds": dict(zip(checks.model, checks.seconds))}
    if len(transfer):
        summary["spearman_test_vs_shifted"] = dict(zip(transfer.model, transfer.spearman_test_vs_shifted))
    figures = {"importance": importance_bars(importance.head(SHOWN_FEATURES), kinds),
               "agreement": agreement_heatmap(agreement, kinds),
               "groups": group_bars(group_table, kinds),
               "correlation": correlation_heatmap(corr.loc[order, order], groups)}
    for kind in kinds:
        top = importance.sort_values(kind, ascending=False).feature.head(SHOWN_FEATURES).tolist()
        figures[f"beeswarm_{kind}"] = beeswarm(values[values.model == kind], top, kind, checks.set_index("model").loc[kind, "output"])
        figures[f"dependence_{kind}"] = dependence(values[values.model == kind], top[0], top[1] if len(top) > 1 else None, kind)
    if len(transfer):
        figures["transfer"] = transfer_scatter(transfer, feats)
    ctx.progress(1.0, "done")
    return Result(TabularExplainSpec.KIND, summary,
                  {"importance": importance, "checks": checks, "agreement": agreement, "groups": group_table,
                   "permutation": pd.DataFrame(perm_rows), "transfer": transfer, "values": values}, figures)


@dataclass(frozen=True)
class TabularRowSpec(TabularExplainSpec, kind="tabular_row", title="Tabular row", page="tabular"):
    explained_model: str = "xgboost"
    row: int = bounded(-1, -1, None)  # a row id among the explained test rows; -1 = the first

    def explain_spec(self) -> TabularExplainSpec:
        return TabularExplainSpec(**self.explain_fields())

    def validate(self) -> None:
        super().validate()
        if self.explained_model not in self.models:
            raise BadInput(f"'{self.explained_model}' is not among this analysis's models ({', '.join(self.models)})")


@register(TabularRowSpec)
def run_tabular_row(spec: TabularRowSpec, ctx) -> Result:
    base = ctx.require(spec.explain_spec(), share=(0.0, 0.9))
    vals = base.tables["values"]
    vals = vals[vals.model == spec.explained_model]
    rows = sorted(vals.row.unique())
    row = rows[0] if spec.row < 0 else spec.row
    if row not in rows:
        raise BadInput(f"row {row} is not among the {len(rows)} explained test rows (e.g. {', '.join(map(str, rows[:8]))})")
    one = vals[vals.row == row].copy()
    check = base.tables["checks"].set_index("model").loc[spec.explained_model]
    one = one.reindex(one.shap.abs().sort_values(ascending=False).index).reset_index(drop=True)
    expected = float(check.expected_value)
    output = expected + float(one.shap.sum())
    summary = {"model": spec.explained_model, "row": int(row), "expected_value": expected, "output": output,
               "output_space": check.output, "top_feature": one.feature.iloc[0],
               "all_rows": [int(r) for r in rows]}
    return Result(TabularRowSpec.KIND, summary, {"row": one[["feature", "value", "shap"]]},
                  {"waterfall": waterfall(one, expected, spec.explained_model, int(row), check.output)})


@dataclass(frozen=True)
class TabularSelectionSpec(TabularDataSpec, kind="tabular_selection", title="Forward selection", page="tabular"):
    selection_model: str = "logistic_regression"
    folds: int = bounded(5, 2, 10)
    min_gain: float = bounded(0.001, 0.0, 0.1)
    max_features: int = bounded(0, 0, 1000)  # 0 = until the AUC stops rising

    def validate(self) -> None:
        super().validate()
        from tabular.models import check_kinds

        check_kinds([self.selection_model])

    def describe(self) -> str:
        return f"forward selection for {self.selection_model} on {self.model}"


@register(TabularSelectionSpec, long=True)
def run_tabular_selection(spec: TabularSelectionSpec, ctx) -> Result:
    from tabular.models import fit, positive_probability
    from tabular.selection import forward_selection

    lm = ctx.model(spec.model)
    table, splits = spec.load(lm)
    X, y, feats = table.X.to_numpy(), table.y, table.features
    tr = splits.train
    steps = forward_selection(spec.selection_model, X[tr], y[tr], feats, spec.folds, spec.seed, spec.min_gain,
                              spec.max_features, progress=lambda f, m="": ctx.progress(0.95 * min(f, 1.0), m))
    curve = pd.DataFrame([s.__dict__ for s in steps])
    chosen = [feats.index(s.added) for s in steps]
    test_auc = {}
    for name, cols in (("selected", chosen), ("all", list(range(len(feats))))):
        if cols:
            model = fit(spec.selection_model, X[tr][:, cols], y[tr], spec.seed)
            test_auc[name] = _auc(y[splits.test], positive_probability(model, X[splits.test][:, cols]))
    summary = {"model": spec.selection_model, "selected": [s.added for s in steps], "n_selected": len(steps),
               "of": len(feats), "cv_auc": float(curve.cv_auc.iloc[-1]) if len(curve) else None,
               "test_auc_selected": test_auc.get("selected"), "test_auc_all": test_auc.get("all"),
               "rule": f"add the feature raising {spec.folds}-fold CV ROC-AUC most, while it rises by ≥ {spec.min_gain}"}
    ctx.progress(1.0, "done")
    return Result(TabularSelectionSpec.KIND, summary, {"curve": curve},
                  {"curve": selection_curve(curve, spec.selection_model)})


def tabular_report(fit: Result, explained: Result, selection: Result | None = None) -> dict:
    """The CLI's JSON: per model its held-out scores, top features and the workflow's checks."""
    m = fit.tables["metrics"].set_index("model")
    c = explained.tables["checks"].set_index("model")
    t = explained.tables["transfer"].set_index("model") if len(explained.tables["transfer"]) else None
    s = explained.summary
    nan = lambda v: None if v is None or v != v else float(v)  # noqa: E731 - JSON has no NaN
    models = {k: {"family": m.loc[k, "family"], "test_accuracy": nan(m.loc[k, "test_accuracy"]),
                  "test_auc": nan(m.loc[k, "test_auc"]), "shifted_auc": nan(m.loc[k, "shifted_auc"]),
                  "top_features": s["top_features"][k], "explainer": c.loc[k, "explainer"], "output": c.loc[k, "output"],
                  "shap_seconds": nan(c.loc[k, "seconds"]), "additivity_error": nan(c.loc[k, "additivity_error"]),
                  "spearman_shap_native": nan(c.loc[k, "spearman_shap_native"]),
                  "spearman_shap_permutation": nan(c.loc[k, "spearman_shap_permutation"]),
                  "spearman_test_vs_shifted": None if t is None else nan(t.loc[k, "spearman_test_vs_shifted"])}
              for k in m.index}
    g = explained.tables["groups"]
    groups = sorted({mem for mem, size in zip(g.members, g["size"]) if size > 1})
    out = {"dataset": fit.summary["dataset"], "target": fit.summary["target"],
           "positive_class": fit.summary["positive_class"], "rows": fit.summary["rows"], "shift": fit.summary["shift"],
           "models": models, "groups": [grp.split(" | ") for grp in groups], "group_rule": s["groups"]["rule"]}
    if selection is not None:
        out["selection"] = {k: selection.summary[k] for k in ("model", "selected", "cv_auc", "test_auc_selected",
                                                              "test_auc_all")}
    return out
