"""Forward selection (the workflow's first step against correlated features): starting from no feature, add
the one that raises the cross-validated ROC-AUC on the training rows most, while it rises by at least
`min_gain`; the curve of every step is kept, with the runner-up at each step."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import fit, positive_probability


@dataclass
class Step:
    step: int
    added: str
    cv_auc: float
    gain: float
    runner_up: str
    runner_up_auc: float


def cv_auc(kind: str, X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> float:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    scores = []
    for train, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = fit(kind, X[train], y[train], seed)
        scores.append(roc_auc_score(y[val], positive_probability(model, X[val])))
    return float(np.mean(scores))


def forward_selection(kind: str, X: np.ndarray, y: np.ndarray, features: list[str], folds: int = 5, seed: int = 0,
                      min_gain: float = 0.001, max_features: int = 0, progress=None, cancelled=None) -> list[Step]:
    chosen: list[int] = []
    best = 0.5  # the AUC of no information
    steps: list[Step] = []
    limit = max_features or len(features)
    while len(chosen) < limit:
        scores = {}
        rest = [i for i in range(len(features)) if i not in chosen]
        for n, i in enumerate(rest):
            if cancelled is not None:
                cancelled()
            scores[i] = cv_auc(kind, X[:, chosen + [i]], y, folds, seed)
            if progress:
                progress(len(chosen) / limit + (n + 1) / len(rest) / limit,
                         f"step {len(chosen) + 1}: {n + 1}/{len(rest)} candidates")
        ranked = sorted(scores, key=lambda i: -scores[i])
        top = ranked[0]
        gain = scores[top] - best
        if gain < min_gain:
            break
        second = ranked[1] if len(ranked) > 1 else None
        steps.append(Step(len(chosen) + 1, features[top], scores[top], gain,
                          features[second] if second is not None else "", scores[second] if second is not None else np.nan))
        chosen.append(top)
        best = scores[top]
    return steps
