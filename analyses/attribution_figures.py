"""Plotly figures of the attribution comparison: token heatmap (one row per method), faithfulness,
deletion / insertion curves, agreement matrix, cost."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]


def token_heatmap(scores: pd.DataFrame, tokens: list[str], target: str) -> go.Figure:
    methods = list(dict.fromkeys(scores.method))
    z = [scores[scores.method == m].normalised.tolist() for m in methods]
    text = [tokens for _ in methods]
    fig = go.Figure(go.Heatmap(z=z, x=[f"{i}:{t}" for i, t in enumerate(tokens)], y=methods, text=text,
                               texttemplate="%{text}", colorscale=DIVERGING, zmid=0, zmin=-1, zmax=1,
                               hovertemplate="%{y}<br>token %{x}<br>score (normalised) %{z:.3f}<extra></extra>",
                               xgap=1, ygap=2))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=f"Token attributions for the target '{target}' (each method scaled to max |score| = 1)",
                      height=120 + 44 * len(methods))
    return fig


def faithfulness_bars(metrics: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=["soft normalised sufficiency / comprehensiveness "
                                                        "(bars) vs random (markers)",
                                                        "deletion AUC (lower better) / insertion AUC (higher better)"])
    for col, (metric, name) in enumerate((("soft_ns", "Soft-NS"), ("soft_nc", "Soft-NC"))):
        fig.add_trace(go.Bar(x=metrics.method, y=metrics[metric], name=name, offsetgroup=col), row=1, col=1)
        fig.add_trace(go.Scatter(x=metrics.method, y=metrics[f"{metric}_random"], mode="markers",
                                 name=f"{name} random", marker_symbol="x", marker_size=9), row=1, col=1)
    fig.add_trace(go.Bar(x=metrics.method, y=metrics.deletion_auc, name="deletion AUC"), row=1, col=2)
    fig.add_trace(go.Bar(x=metrics.method, y=metrics.insertion_auc, name="insertion AUC"), row=1, col=2)
    fig.update_layout(title="Faithfulness per method", barmode="group", height=420)
    return fig


def curves_figure(curves: pd.DataFrame, titles: tuple[str, str] = ("deletion: top tokens removed",
                                                                   "insertion: top tokens inserted"),
                  x_title: str = "fraction of prompt tokens", y_title: str = "p(target)") -> go.Figure:
    """Deletion and insertion curves, one line per method (columns method, fraction, deletion_p, insertion_p)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles), shared_yaxes=True)
    for i, (m, df) in enumerate(curves.groupby("method", sort=False)):
        colour = f"hsl({(i * 47) % 360},60%,45%)"
        fig.add_trace(go.Scatter(x=df.fraction, y=df.deletion_p, name=m, line_color=colour, legendgroup=m),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=df.fraction, y=df.insertion_p, name=m, line_color=colour, legendgroup=m,
                                 showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(title="Deletion and insertion curves", height=420)
    return fig


def agreement_heatmap(agreement: pd.DataFrame, metric: str = "kendall_tau") -> go.Figure:
    m = agreement.pivot(index="method_a", columns="method_b", values=metric)
    order = list(dict.fromkeys(agreement.method_a))
    m = m.loc[order, order]
    fig = go.Figure(go.Heatmap(z=m.values, x=order, y=order, zmin=-1, zmax=1, colorscale=DIVERGING,
                               text=m.round(2).values, texttemplate="%{text}"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=f"Agreement between methods ({metric.replace('_', ' ')}); low values are usual",
                      height=180 + 40 * len(order))
    return fig


def cost_bars(metrics: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=["seconds", "model passes"])
    fig.add_trace(go.Bar(x=metrics.method, y=metrics.seconds, name="seconds", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=metrics.method, y=metrics.forward_passes, name="forward passes"), row=1, col=2)
    fig.add_trace(go.Bar(x=metrics.method, y=metrics.backward_passes, name="backward passes"), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title="Cost per method", barmode="group", height=380)
    return fig
