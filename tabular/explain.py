"""SHAP values with the explainer each model calls for, and how much each cost.

- trees (XGBoost, random forest, decision tree): `shap.TreeExplainer`, exact and fast (tree-path-dependent);
  XGBoost is explained in log-odds (its raw margin), the forests in the positive class's probability;
- logistic regression: `shap.LinearExplainer` on the standardised inputs (exact, log-odds), against a
  background of training rows;
- the RBF SVM: model-agnostic `shap.PermutationExplainer` on the positive class's probability with an
  independent masker over a background of training rows; its cost (model evaluations, seconds) is reported,
  and it grows with features × background × rows explained.
Every explainer's values add up to the explained output minus its expected value (Shapley efficiency);
`additivity_error` measures it on every run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .models import positive_probability

OUTPUT = {"xgboost": "log-odds", "random_forest": "probability", "decision_tree": "probability",
          "logistic_regression": "log-odds", "svm": "probability"}


@dataclass
class Explanation:
    values: np.ndarray  # [rows, features]
    expected: float
    output: str  # what the values explain: "log-odds" or "probability" of the positive class
    explainer: str
    model_evaluations: int  # calls of the model on one row (0 where the explainer reads the model's structure)
    seconds: float
    additivity_error: float

    def importance(self) -> np.ndarray:
        return np.abs(self.values).mean(0)


def explained_output(model, kind: str, X: np.ndarray) -> np.ndarray:
    """The quantity the SHAP values of `kind` add up to, per row."""
    if kind == "xgboost":
        return model.predict(X, output_margin=True).astype(np.float64)
    if kind == "logistic_regression":
        return model.decision_function(X).astype(np.float64)
    return positive_probability(model, X)


def _positive(values, expected):
    """Tree explainers of scikit-learn classifiers give both classes: keep the positive one."""
    values = np.asarray(values)
    if values.ndim == 3:
        values = values[:, :, 1]
    expected = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    return values.astype(np.float64), float(expected[-1])


def explain(model, kind: str, X: np.ndarray, background: np.ndarray, seed: int = 0, max_evals: int = 0) -> Explanation:
    import shap

    X = np.asarray(X, dtype=np.float64)
    t0 = time.perf_counter()
    evals = 0
    if kind in ("xgboost", "random_forest", "decision_tree"):
        explainer = shap.TreeExplainer(model)
        values, expected = _positive(explainer.shap_values(X), explainer.expected_value)
        name = "TreeExplainer (tree-path-dependent, exact)"
    elif kind == "logistic_regression":
        scaler, lr = model[0], model[-1]
        explainer = shap.LinearExplainer(lr, scaler.transform(background))
        values, expected = _positive(explainer.shap_values(scaler.transform(X)), explainer.expected_value)
        name = f"LinearExplainer (interventional, exact; {len(background)} background rows)"
    else:
        f = lambda rows: positive_probability(model, rows)  # noqa: E731
        masker = shap.maskers.Independent(background, max_samples=len(background))
        budget = max_evals or max(500, 2 * X.shape[1] + 1)
        explainer = shap.PermutationExplainer(f, masker, seed=seed)
        out = explainer(X, max_evals=budget, silent=True)
        values, expected = out.values.astype(np.float64), float(np.mean(out.base_values))
        evals = budget * len(background)
        name = f"PermutationExplainer (model-agnostic; {budget} evaluations × {len(background)} background rows per row)"
    seconds = time.perf_counter() - t0
    target = explained_output(model, kind, X)
    err = float(np.abs(values.sum(1) + expected - target).max()) if len(X) else 0.0
    return Explanation(values, expected, OUTPUT[kind], name, evals, seconds, err)
