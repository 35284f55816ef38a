"""Aspect consolidation: correlated features grouped, and SHAP summed per group.

Correlated features split the credit between them in arbitrary ways (the workflow's concern), so features are
grouped by average-linkage clustering of 1 − |Pearson r| on the training rows, cut where the groups'
features correlate at |r| ≥ `min_abs_corr` on average; a group's SHAP value on a row is the sum of its
members' (Shapley values of a coalition of features, by additivity), and its importance the mean |sum|.
Groups can be given by hand instead (`a|b|c`, one group per entry), and any feature left out is its own group.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from compute.errors import BadInput


def correlation_groups(X: pd.DataFrame, min_abs_corr: float) -> list[list[str]]:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    cols = list(X.columns)
    if len(cols) == 1:
        return [cols]
    corr = X.corr().fillna(0.0).to_numpy()  # a constant column correlates with nothing
    dist = 1.0 - np.abs(corr)
    np.fill_diagonal(dist, 0.0)
    dist = np.clip((dist + dist.T) / 2, 0.0, None)
    labels = fcluster(linkage(squareform(dist, checks=False), method="average"), t=1.0 - min_abs_corr,
                      criterion="distance")
    groups: dict[int, list[str]] = {}
    for c, g in zip(cols, labels):
        groups.setdefault(int(g), []).append(c)
    return sorted(groups.values(), key=lambda g: cols.index(g[0]))


def parse_groups(entries, features: list[str]) -> list[list[str]]:
    """Hand-made groups `a|b|c`; features not named stay alone. BadInput on unknown or repeated features."""
    seen: set[str] = set()
    groups = []
    for entry in entries:
        members = [m.strip() for m in str(entry).split("|") if m.strip()]
        unknown = [m for m in members if m not in features]
        if unknown:
            raise BadInput(f"group '{entry}' names unknown feature(s): {', '.join(unknown[:5])}")
        again = [m for m in members if m in seen]
        if again:
            raise BadInput(f"feature(s) {', '.join(again)} appear in more than one group")
        seen.update(members)
        if members:
            groups.append(members)
    groups += [[f] for f in features if f not in seen]
    return sorted(groups, key=lambda g: features.index(g[0]))


def group_name(members: list[str]) -> str:
    return members[0] if len(members) == 1 else f"{members[0]} (+{len(members) - 1})"


def group_values(values: np.ndarray, features: list[str], groups: list[list[str]]) -> np.ndarray:
    """[rows, groups]: each group's SHAP value per row, the sum of its members'."""
    index = {f: i for i, f in enumerate(features)}
    return np.stack([values[:, [index[m] for m in g]].sum(1) for g in groups], axis=1)
