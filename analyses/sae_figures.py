"""Plotly figures for SAE runs: training curves, L0 and density histograms, the comparison plots."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ARCH_COLOURS = {"topk": "#1f77b4", "feature_choice": "#d62728", "mutual_choice": "#2ca02c", "other": "#7f7f7f"}


def training_curves(history: pd.DataFrame, title: str) -> go.Figure:
    fig = make_subplots(rows=2, cols=2, subplot_titles=["loss", "normalised MSE (batch)", "L0 (mean per token)",
                                                        "dead fraction"], shared_xaxes=True)
    for i, col in enumerate(["loss", "nmse", "l0", "dead_fraction"]):
        if col in history:
            fig.add_trace(go.Scatter(x=history.tokens, y=history[col], mode="lines", name=col, showlegend=False),
                          row=i // 2 + 1, col=i % 2 + 1)
    fig.update_xaxes(title_text="training tokens", row=2)
    fig.update_layout(title=title, height=520)
    return fig


def l0_histogram(l0: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Histogram(x=l0, nbinsx=int(min(100, max(10, l0.max() + 1))) if len(l0) else 10))
    fig.add_vline(x=float(np.mean(l0)) if len(l0) else 0, line_dash="dash", annotation_text="mean")
    fig.update_layout(title=title, xaxis_title="active features per token (L0)", yaxis_title="tokens", bargap=0.05)
    return fig


def density_histogram(density: np.ndarray, title: str) -> go.Figure:
    live = density[density > 0]
    fig = go.Figure(go.Histogram(x=np.log10(live), nbinsx=60, name="live"))
    fig.update_layout(title=f"{title} ({int((density == 0).sum())} dead features not shown)",
                      xaxis_title="log10 feature density (fraction of tokens)", yaxis_title="features")
    return fig


def comparison_figures(table: pd.DataFrame) -> dict[str, go.Figure]:
    t = table.copy()
    t["arch"] = t["arch"].fillna("other")
    figs = {}
    fig = px.scatter(t, x="l0_mean", y="nmse", color="arch", symbol="arch", hover_data=["run", "k", "d_sae", "aux_loss"],
                     color_discrete_map=ARCH_COLOURS, log_y=True,
                     title="Reconstruction vs sparsity: normalised MSE against mean L0 (lower left is better)")
    for arch, grp in t.sort_values("l0_mean").groupby("arch"):
        fig.add_trace(go.Scatter(x=grp.l0_mean, y=grp.nmse, mode="lines", line={"color": ARCH_COLOURS.get(arch, "#777"),
                                                                                 "dash": "dot"}, showlegend=False))
    fig.update_layout(xaxis_title="mean L0 (features per token)", yaxis_title="normalised MSE")
    figs["nmse_vs_l0"] = fig
    if t["ce_loss_recovered"].notna().any():
        fig = px.scatter(t, x="l0_mean", y="ce_loss_recovered", color="arch", symbol="arch", hover_data=["run"],
                         color_discrete_map=ARCH_COLOURS, title="CE loss recovered against mean L0")
        figs["ce_recovered_vs_l0"] = fig
    long = t.melt(id_vars=["run", "arch"], value_vars=["dead_fraction", "underused_fraction"], var_name="kind",
                  value_name="fraction")
    fig = px.bar(long, x="run", y="fraction", color="arch", pattern_shape="kind", barmode="group",
                 color_discrete_map=ARCH_COLOURS, title="Dead and underused features per run")
    figs["dead_features"] = fig
    return figs
