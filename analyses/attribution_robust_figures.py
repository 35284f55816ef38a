"""Figures of the vanilla-vs-robust comparison: AUCs per method for both models, the confidence
distributions, and how each image's AUC follows the model's confidence."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

ROLE_COLOURS = {"vanilla": "#2e86ab", "robust": "#e4572e"}


def auc_bars(per_method: pd.DataFrame, column: str, title: str) -> go.Figure:
    fig = go.Figure()
    sem = column.replace("_auc", "_sem")
    for role, colour in ROLE_COLOURS.items():
        part = per_method[per_method.role == role]
        fig.add_bar(x=[f"{m} ({f})" for m, f in zip(part.method, part.family)], y=part[column], name=role,
                    marker_color=colour, error_y=dict(type="data", array=part[sem].fillna(0)))
    random = per_method.groupby("role")[column.replace("_auc", "_auc_random")].mean()
    for role, colour in ROLE_COLOURS.items():
        if role in random:
            fig.add_hline(y=float(random[role]), line=dict(color=colour, dash="dot"),
                          annotation_text=f"random order ({role})")
    fig.update_layout(title=f"{title}: vanilla vs robust, ± s.e.m. over images", barmode="group", yaxis_title="AUC",
                      height=420)
    return fig


def confidence_histogram(conf: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for role, colour in ROLE_COLOURS.items():
        part = conf[conf.role == role]
        fig.add_histogram(x=part.p_target, name=f"{role} (mean {part.p_target.mean():.2f})", marker_color=colour,
                          opacity=0.6, xbins=dict(start=0, end=1.0001, size=0.05))
    fig.update_layout(title="Confidence in the true class on the explained digits", barmode="overlay",
                      xaxis_title="p(true class)", yaxis_title="images", height=360)
    return fig


def confidence_scatter(per_image: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for role, colour in ROLE_COLOURS.items():
        part = per_image[per_image.role == role]
        for metric, symbol in (("insertion_auc", "circle"), ("deletion_auc", "x")):
            fig.add_scatter(x=part.p_target, y=part[metric], mode="markers", name=f"{role} · {metric.split('_')[0]}",
                            marker=dict(color=colour, symbol=symbol, size=6), text=part.method,
                            hovertemplate="%{text}<br>p %{x:.3f}<br>AUC %{y:.3f}<extra></extra>")
    fig.update_layout(title="Each image's AUCs against the model's confidence: both metrics track it",
                      xaxis_title="p(true class)", yaxis_title="AUC", height=420)
    return fig
