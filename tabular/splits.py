"""Train / test / shifted splits. The shifted split stands in for the paper's external cohorts: rows whose
value of one column lies above a quantile (a shifted feature range) or equals a value (a held-out group) are
kept out of training and testing altogether; the rest is split train/test, stratified by class."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from compute.errors import BadInput


@dataclass
class Splits:
    train: np.ndarray
    test: np.ndarray
    shifted: np.ndarray  # empty when no shift is asked for
    rule: str


def make_splits(table, test_share: float, seed: int, shift_feature: str = "", shift_quantile: float = 0.8,
                shift_value: str = "") -> Splits:
    from sklearn.model_selection import train_test_split

    n = len(table.y)
    shifted = np.zeros(n, bool)
    rule = "none"
    if shift_feature:
        source = table.source if table.source is not None else table.X
        if shift_feature not in source.columns or shift_feature == table.target:
            raise BadInput(f"cannot shift on '{shift_feature}': not a feature column of this data")
        col = source[shift_feature]
        if shift_value:
            shifted = col.astype(str).to_numpy() == shift_value
            rule = f"{shift_feature} = {shift_value}"
        else:
            if not pd.api.types.is_numeric_dtype(col):
                raise BadInput(f"'{shift_feature}' is not numeric: hold out one of its values (shift value) instead")
            cut = float(col.quantile(shift_quantile))
            shifted = col.to_numpy() > cut
            rule = f"{shift_feature} > {cut:.4g} (its {shift_quantile:.0%} quantile)"
        ys = table.y[shifted]
        if shifted.sum() < 10 or ys.min(initial=1) == ys.max(initial=0):
            raise BadInput(f"the shifted split ({rule}) has {int(shifted.sum())} rows and {len(set(ys))} class(es): "
                           f"it needs both classes and at least 10 rows; choose another column or quantile")
    rest = np.flatnonzero(~shifted)
    y = table.y[rest]
    if min(y.sum(), len(y) - y.sum()) < 4:
        raise BadInput("after the shifted split too few rows of one class remain to train and test")
    train, test = train_test_split(rest, test_size=test_share, random_state=seed, stratify=y)
    return Splits(np.sort(train), np.sort(test), np.flatnonzero(shifted), rule)
