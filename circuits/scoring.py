"""How well a head-scoring method finds a ground-truth circuit: ROC-AUC, precision and recall, and ranks."""
from __future__ import annotations

import math

import numpy as np


def roc_auc(scores: dict, truth: set) -> float:
    """ROC-AUC of scores against membership in `truth` (NaN when every key is in or every key is out)."""
    from sklearn.metrics import roc_auc_score

    keys = list(scores)
    y = np.array([k in truth for k in keys])
    if y.all() or not y.any():
        return float("nan")
    s = np.nan_to_num(np.array([scores[k] for k in keys], float), nan=-np.inf)
    return float(roc_auc_score(y, s))


def selected(scores: dict, fraction: float) -> set:
    """The keys scoring at least `fraction` of the top score (none when the top score is not positive)."""
    finite = [v for v in scores.values() if not math.isnan(v)]
    top = max(finite, default=0.0)
    return {k for k, v in scores.items() if top > 0 and not math.isnan(v) and v >= fraction * top}


def precision_recall(scores: dict, truth: set, fraction: float) -> tuple[float, float]:
    chosen = selected(scores, fraction)
    precision = len(chosen & truth) / len(chosen) if chosen else float("nan")
    recall = len(chosen & truth) / len(truth) if truth else float("nan")
    return precision, recall


def ranks(scores: dict) -> dict:
    """1 = highest score."""
    order = sorted(scores, key=lambda k: (-np.nan_to_num(scores[k], nan=-np.inf), str(k)))
    return {k: i + 1 for i, k in enumerate(order)}


def pearson(a: dict, b: dict) -> float:
    keys = [k for k in a if k in b and not (math.isnan(a[k]) or math.isnan(b[k]))]
    if len(keys) < 2:
        return float("nan")
    x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
