"""A batch comparison's tables: each method's metrics averaged over the items (prompts or images), and the
agreement between methods averaged the same way, as the ReAGent paper's tables are."""
from __future__ import annotations

import pandas as pd


def method_means(per_item: pd.DataFrame, agreements: list[pd.DataFrame],
                 skip: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-method means of the numeric columns other than `skip`, mean Kendall τ / Spearman per method pair)."""
    numeric = [c for c in per_item.columns if c not in ("method", *skip)]
    table = per_item.groupby("method", sort=False)[numeric].mean().reset_index()
    agree = pd.concat(agreements, ignore_index=True)
    mean_agree = agree.groupby(["method_a", "method_b"], sort=False)[["kendall_tau", "spearman"]].mean()
    return table, mean_agree.reset_index()
