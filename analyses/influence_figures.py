"""Plotly figures of influence results."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

HELPFUL, HARMFUL = "#2166ac", "#b2182b"


def score_bars(rows: pd.DataFrame, title: str) -> go.Figure:
    labels = [f"#{r} (row {row})" for r, row in zip(rows.get("rank", []), rows.get("row", rows.get("index", [])))]
    colours = [HELPFUL if s > 0 else HARMFUL for s in rows.get("score", [])]
    hover = [str(t)[:200].replace("\n", "⏎") for t in rows.get("text", rows.get("label", [""] * len(rows)))]
    fig = go.Figure(go.Bar(x=list(rows.get("score", [])), y=labels, orientation="h", marker_color=colours,
                           hovertext=hover))
    fig.update_layout(title=title, xaxis_title="influence score (positive = helpful)",
                      yaxis=dict(autorange="reversed"), height=max(250, 28 * len(rows) + 120))
    return fig


def distribution_figure(scores: np.ndarray) -> go.Figure:
    """Sorted |score| on log axes: a straight line is a power law (Grosse et al.: heavy-tailed and sparse)."""
    mags = np.sort(np.abs(np.asarray(scores, dtype=float)))[::-1]
    fig = go.Figure(go.Scatter(x=np.arange(1, len(mags) + 1), y=mags, mode="lines", name="|score|"))
    fig.update_layout(title="distribution of influence: |score| by rank", xaxis_title="rank", yaxis_title="|score|",
                      xaxis_type="log", yaxis_type="log")
    return fig


def module_bars(table: pd.DataFrame, column: str, title: str) -> go.Figure:
    colours = {"mlp": "#1b9e77", "attention": "#7570b3"}
    fig = go.Figure(go.Bar(x=list(table["module"]), y=list(table[column]),
                           marker_color=[colours.get(b, "#666666") for b in table.get("block", [])]))
    fig.update_layout(title=title, xaxis_title="module (green: MLP, purple: attention)", yaxis_title=column)
    return fig


def token_heatmap(tokens, scores, title: str, width: int = 16) -> go.Figure:
    """A training sequence laid out in rows of `width` tokens, each coloured by its influence."""
    tokens, scores = list(tokens), np.asarray(list(scores), dtype=float)
    n_rows = (len(tokens) + width - 1) // width
    z = np.full((n_rows, width), np.nan)
    text = [["" for _ in range(width)] for _ in range(n_rows)]
    for i, (t, s) in enumerate(zip(tokens, scores)):
        z[i // width, i % width] = s
        text[i // width][i % width] = t.replace("\n", "⏎")
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-lim,
                               zmax=lim, hovertemplate="%{text}: %{z:.4g}<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed", showticklabels=False),
                      xaxis=dict(showticklabels=False), height=60 + 30 * n_rows)
    return fig


def image_grid(images: np.ndarray, captions: list[str], title: str, cols: int = 5) -> go.Figure:
    from plotly.subplots import make_subplots

    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=captions + [""] * (rows * cols - n))
    for i, img in enumerate(images):
        fig.add_trace(go.Heatmap(z=np.asarray(img)[::-1], colorscale="Greys", showscale=False),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=title, height=170 * rows + 80)
    return fig
