"""Agreement between attribution methods (Neely et al. 2022, "A Song of (Dis)agreement"): Kendall τ
and Spearman ρ between the full token rankings, and the overlap of their top-k tokens.
Low agreement between methods is normal on transformers (mean τ mostly 0.0-0.3 there)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    k = min(k, len(a))
    if k == 0:
        return float("nan")
    ta = set(np.argsort(-a, kind="stable")[:k].tolist())
    tb = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(ta & tb) / k


def pairwise(scores: dict[str, np.ndarray], k: int = 5) -> pd.DataFrame:
    rows = []
    for (ma, a), (mb, b) in itertools.product(scores.items(), repeat=2):
        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            tau = rho = 1.0 if ma == mb else float("nan")
        else:
            tau = float(stats.kendalltau(a, b).statistic)
            rho = float(stats.spearmanr(a, b).statistic)
        rows.append({"method_a": ma, "method_b": mb, "kendall_tau": tau, "spearman": rho,
                     f"top{k}_overlap": top_k_overlap(a, b, k)})
    return pd.DataFrame(rows)
