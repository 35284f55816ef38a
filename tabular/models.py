"""The workflow's classifiers: three black boxes (XGBoost, random forest, RBF SVM) and the interpretable
baselines the paper checks them against (a decision tree, logistic regression); saving without pickle; each
model's own importances.

Saved formats: XGBoost's own JSON (`save_model`), scikit-learn models with skops (`.skops`: the estimator's
state as a schema plus arrays; loading refuses any type not on our list, so a stored file cannot run code as
a pickle can). Hand-rolled array formats would need re-implementing each estimator's private state.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compute.errors import BadInput

MODEL_KINDS = {
    "xgboost": "gradient-boosted trees (XGBoost)",
    "random_forest": "random forest",
    "svm": "support-vector machine (RBF kernel)",
    "decision_tree": "decision tree (depth ≤ 4)",
    "logistic_regression": "logistic regression",
}
INTERPRETABLE = ("decision_tree", "logistic_regression")
NATIVE = {"xgboost": "gain", "random_forest": "impurity decrease", "decision_tree": "impurity decrease",
          "logistic_regression": "|coefficient| (standardised)", "svm": None}
# what skops may build when it loads our files: the estimators above and their parts, nothing else
SKOPS_TRUSTED = {
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler", "sklearn.svm._classes.SVC",
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._tree.Tree",
    "numpy.dtype", "numpy.ndarray", "numpy.float64", "numpy.int64", "builtins.slice",
}


def check_kinds(kinds) -> None:
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown:
        raise BadInput(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_KINDS)}")
    if not kinds:
        raise BadInput("choose at least one model")


def make(kind: str, seed: int, threads: int = 1):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    if kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.9, random_state=seed,
                             n_jobs=threads, eval_metric="logloss", importance_type="gain")
    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=threads)
    if kind == "svm":
        from sklearn.calibration import CalibratedClassifierCV

        # Platt-scaled probabilities, as SVC(probability=True) gave before scikit-learn deprecated it
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(kernel="rbf", C=1.0), method="sigmoid",
                                                                      ensemble=False, cv=5))
    if kind == "decision_tree":
        return DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=seed)
    if kind == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    check_kinds([kind])


def fit(kind: str, X: np.ndarray, y: np.ndarray, seed: int, threads: int = 1):
    model = make(kind, seed, threads)
    model.fit(X, y)
    return model


def positive_probability(model, X: np.ndarray) -> np.ndarray:
    return model.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]


def save(model, kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "xgboost":
        path = folder / "xgboost.json"
        model.save_model(str(path))
        return path
    import skops.io as sio

    path = folder / f"{kind}.skops"
    sio.dump(model, path)
    return path


def load(kind: str, folder: Path):
    if kind == "xgboost":
        from xgboost import XGBClassifier

        path = folder / "xgboost.json"
        if not path.is_file():
            raise BadInput(f"no saved {kind} model in {folder}")
        model = XGBClassifier()
        try:
            model.load_model(str(path))
        except Exception as e:  # noqa: BLE001 - a corrupt file
            raise BadInput(f"cannot read the saved XGBoost model: {type(e).__name__}") from None
        return model
    import skops.io as sio

    path = folder / f"{kind}.skops"
    if not path.is_file():
        raise BadInput(f"no saved {kind} model in {folder}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # noqa: BLE001
        raise BadInput(f"cannot read the saved {kind} model: {type(e).__name__}") from None
    odd = sorted(set(untrusted) - SKOPS_TRUSTED)
    if odd:
        raise BadInput(f"the saved {kind} model holds types this workbench does not load: {', '.join(odd[:5])}")
    model = sio.load(path, trusted=list(untrusted))
    if type(model) is not type(make(kind, 0)):  # noqa: E721 - exactly our estimator, not a look-alike
        raise BadInput(f"the saved file is a {type(model).__name__}, not a saved {kind} model")
    return model


def native_importance(model, kind: str, features: list[str]) -> np.ndarray | None:
    """The model's own importance per feature (None for the RBF SVM, which has none)."""
    if kind in ("xgboost", "random_forest", "decision_tree"):
        return np.asarray(model.feature_importances_, dtype=np.float64)
    if kind == "logistic_regression":
        return np.abs(model[-1].coef_[0]).astype(np.float64)  # on standardised inputs: comparable across features
    return None


def describe_params(model, kind: str) -> str:
    est = model[-1] if hasattr(model, "steps") else model
    est = getattr(est, "estimator", est)  # the SVC inside its calibration
    keep = {"xgboost": ("n_estimators", "max_depth", "learning_rate"), "random_forest": ("n_estimators", "min_samples_leaf"),
            "svm": ("C", "kernel", "gamma"), "decision_tree": ("max_depth", "min_samples_leaf"),
            "logistic_regression": ("C",)}[kind]
    params = est.get_params()
    return json.dumps({k: params.get(k) for k in keep})
