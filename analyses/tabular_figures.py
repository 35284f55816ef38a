"""Plotly figures of the tabular workflow: metrics, importances, beeswarm, dependence, waterfall, agreement,
consolidated groups, feature correlations, transfer, forward selection."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MODEL_COLOURS = {"xgboost": "#e4572e", "random_forest": "#76b041", "svm": "#2e86ab", "decision_tree": "#f3a712",
                 "logistic_regression": "#7b2d8b"}


def metric_bars(metrics: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for split, colour in (("test", "#2e86ab"), ("shifted", "#e4572e")):
        if metrics[f"{split}_auc"].notna().any():
            fig.add_bar(x=metrics.model, y=metrics[f"{split}_auc"], name=f"{split} ROC-AUC", marker_color=colour,
                        text=[f"{v:.3f}" for v in metrics[f"{split}_auc"]], textposition="outside")
    fig.update_layout(title="Held-out ROC-AUC: black boxes beside the interpretable baselines", barmode="group",
                      yaxis=dict(title="ROC-AUC", range=[0.5, 1.02]), height=380)
    return fig


def importance_bars(importance: pd.DataFrame, kinds: list[str]) -> go.Figure:
    """Mean |SHAP| per feature and model, each model's scaled to its largest (their output spaces differ)."""
    fig = go.Figure()
    for k in kinds:
        v = importance[k] / (importance[k].max() or 1.0)
        fig.add_bar(y=importance.feature, x=v, name=k, orientation="h", marker_color=MODEL_COLOURS.get(k),
                    customdata=importance[k], hovertemplate="%{y}: mean |SHAP| %{customdata:.4g}<extra>" + k + "</extra>")
    fig.update_layout(title="Global importance: mean |SHAP| (scaled to each model's largest)", barmode="group",
                      yaxis=dict(autorange="reversed"), xaxis_title="relative mean |SHAP|",
                      height=max(380, 28 * len(importance) * max(1, len(kinds)) // 2))
    return fig


def beeswarm(values: pd.DataFrame, features: list[str], kind: str, output: str) -> go.Figure:
    """SHAP value per row (x) for each feature (rows, most important first), coloured by the feature's value."""
    fig = go.Figure()
    rng = np.random.default_rng(0)
    for i, f in enumerate(features):
        part = values[values.feature == f]
        v = part.value.to_numpy(float)
        lo, hi = np.nanpercentile(v, 5), np.nanpercentile(v, 95)
        colour = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full(len(v), 0.5)
        fig.add_scatter(x=part.shap, y=i + rng.uniform(-0.3, 0.3, len(part)), mode="markers", name=f,
                        marker=dict(color=colour, colorscale="Bluered", size=5, cmin=0, cmax=1, showscale=i == 0,
                                    colorbar=dict(title="feature value", tickvals=[0, 1], ticktext=["low", "high"])),
                        customdata=np.stack([v, part.row], -1),
                        hovertemplate=f"{f}<br>value %{{customdata[0]:.4g}}<br>SHAP %{{x:.4g}}<br>row %{{customdata[1]}}"
                                      "<extra></extra>", showlegend=False)
    fig.add_vline(x=0, line=dict(color="#999", width=1))
    fig.update_layout(title=f"{kind}: SHAP values per row ({output})", xaxis_title=f"SHAP value ({output})",
                      yaxis=dict(tickvals=list(range(len(features))), ticktext=features, autorange="reversed"),
                      height=max(380, 30 * len(features) + 120))
    return fig


def dependence(values: pd.DataFrame, feature: str, colour_by: str | None, kind: str) -> go.Figure:
    part = values[values.feature == feature]
    marker = dict(size=6)
    if colour_by is not None:
        other = values[values.feature == colour_by].set_index("row").value
        marker.update(color=other.reindex(part.row).to_numpy(), colorscale="Bluered", showscale=True,
                      colorbar=dict(title=colour_by[:20]))
    fig = go.Figure(go.Scatter(x=part.value, y=part.shap, mode="markers", marker=marker,
                               hovertemplate=f"{feature} %{{x:.4g}}<br>SHAP %{{y:.4g}}<extra></extra>"))
    fig.update_layout(title=f"{kind}: dependence on {feature}" + (f" (colour: {colour_by})" if colour_by else ""),
                      xaxis_title=feature, yaxis_title=f"SHAP value of {feature}", height=380)
    return fig


def waterfall(row: pd.DataFrame, expected: float, kind: str, row_id: int, output: str, shown: int = 12) -> go.Figure:
    top = row.head(shown)
    rest = float(row.shap.iloc[shown:].sum())
    labels = [f"{f} = {v:.4g}" for f, v in zip(top.feature, top.value)]
    y = list(top.shap)
    if len(row) > shown:
        labels.append(f"{len(row) - shown} other features")
        y.append(rest)
    fig = go.Figure(go.Waterfall(orientation="h", base=expected, y=["E[f(X)]"] + labels + ["f(x)"],
                                 x=[0.0] + y + [0.0], measure=["absolute"] + ["relative"] * len(y) + ["total"],
                                 text=[f"{expected:.3f}"] + [f"{v:+.3f}" for v in y] + [f"{expected + sum(y):.3f}"]))
    fig.update_layout(title=f"{kind}, row {row_id}: from the expected value to its output ({output})",
                      yaxis=dict(autorange="reversed"), height=max(380, 30 * (len(y) + 2) + 120))
    return fig


def agreement_heatmap(agreement: pd.DataFrame, kinds: list[str]) -> go.Figure:
    z = agreement[kinds].to_numpy(float)
    fig = go.Figure(go.Heatmap(z=z, x=kinds, y=kinds, zmin=-1, zmax=1, colorscale="RdBu", texttemplate="%{z:.2f}",
                               colorbar=dict(title="Spearman")))
    fig.update_layout(title="Agreement between models: Spearman correlation of mean |SHAP|", height=420)
    return fig


def group_bars(groups: pd.DataFrame, kinds: list[str]) -> go.Figure:
    multi = groups[groups["size"] > 1]
    fig = go.Figure()
    for k in kinds:
        part = multi[multi.model == k]
        v = part.importance / (groups[groups.model == k].importance.max() or 1.0)
        fig.add_bar(y=part.group, x=v, name=k, orientation="h", marker_color=MODEL_COLOURS.get(k),
                    customdata=part.members, hovertemplate="%{customdata}<br>%{x:.3f}<extra>" + k + "</extra>")
    fig.update_layout(title="Consolidated aspects: each group's mean |Σ SHAP| (scaled to the model's largest group)",
                      barmode="group", yaxis=dict(autorange="reversed"), height=max(360, 40 * len(multi) + 120))
    return fig


def correlation_heatmap(corr: pd.DataFrame, groups: list[list[str]]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1,
                               colorscale="RdBu", colorbar=dict(title="r")))
    edge = 0
    for g in groups:  # outline each multi-feature group on the diagonal
        if len(g) > 1:
            fig.add_shape(type="rect", x0=edge - 0.5, x1=edge + len(g) - 0.5, y0=edge - 0.5, y1=edge + len(g) - 0.5,
                          line=dict(color="black", width=2))
        edge += len(g)
    n = len(corr)
    fig.update_layout(title="Feature correlations (training rows), ordered and boxed by consolidated group",
                      yaxis=dict(autorange="reversed", showticklabels=n <= 40), xaxis=dict(showticklabels=n <= 40),
                      height=min(900, 300 + 14 * n))
    return fig


def transfer_scatter(transfer: pd.DataFrame, features: list[str]) -> go.Figure:
    fig = go.Figure()
    for _, r in transfer.iterrows():
        t = np.array([r[f"test_{f}"] for f in features])
        s = np.array([r[f"shifted_{f}"] for f in features])
        top = max(t.max(), s.max()) or 1.0
        fig.add_scatter(x=t / top, y=s / top, mode="markers", name=f"{r.model} (ρ = {r.spearman_test_vs_shifted:.2f})",
                        text=features, marker=dict(color=MODEL_COLOURS.get(r.model), size=7),
                        hovertemplate="%{text}<br>test %{x:.3f}<br>shifted %{y:.3f}<extra></extra>")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dot"), showlegend=False)
    fig.update_layout(title="Transfer: mean |SHAP| on the test split vs the shifted split", xaxis_title="test (scaled)",
                      yaxis_title="shifted (scaled)", height=440)
    return fig


def selection_curve(curve: pd.DataFrame, kind: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=curve.step, y=curve.cv_auc, mode="lines+markers+text", text=curve.added,
                               textposition="top left", hovertemplate="step %{x}: + %{text}<br>CV AUC %{y:.4f}<extra></extra>"))
    fig.update_layout(title=f"Forward selection for {kind}: cross-validated ROC-AUC as features are added",
                      xaxis_title="features selected", yaxis_title="CV ROC-AUC", height=400)
    return fig
