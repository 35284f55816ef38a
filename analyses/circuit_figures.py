"""Plotly figures of the Circuits page: layer × head heatmaps, a method against patching, the head graph."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def _grid(table: pd.DataFrame, column: str) -> tuple[np.ndarray, list[int], list[int]]:
    layers = sorted(table.layer.unique())
    idx = [int(h.split("H")[1]) for h in table["head"]]
    heads = sorted(set(idx))
    z = np.full((len(layers), len(heads)), np.nan)
    for layer, h, v in zip(table.layer, idx, table[column]):
        z[layers.index(layer), heads.index(h)] = v
    return z, layers, heads


def head_heatmap(table: pd.DataFrame, column: str, title: str) -> go.Figure:
    z, layers, heads = _grid(table, column)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=[f"H{h}" for h in heads], y=[f"L{layer}" for layer in layers],
                               colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, texttemplate="%{z:.2f}",
                               colorbar=dict(title="score")))
    fig.update_layout(title=title, xaxis_title="head", yaxis=dict(title="layer", autorange="reversed"),
                      height=180 + 40 * len(layers))
    return fig


def method_scatter(table: pd.DataFrame, column: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=table.patching, y=table[column], mode="markers+text", text=table["head"],
                               textposition="top center",
                               marker=dict(color=np.where(table.in_circuit, "#e4572e", "#1f77b4"), size=9)))
    fig.update_layout(title=f"{column.replace('_', ' ').capitalize()} against exact patching (red: in the circuit)",
                      xaxis_title="patching score", yaxis_title=f"{column} score", height=380)
    return fig


def head_graph(table: pd.DataFrame, edges: pd.DataFrame, column: str, title: str, top: int = 12) -> go.Figure:
    """Heads placed by (head, layer), sized by the node score; the strongest edges drawn."""
    idx = {h: (int(h.split("H")[1]), layer) for h, layer in zip(table["head"], table.layer)}
    fig = go.Figure()
    strongest = edges[edges.score > 0].head(top)
    lim = float(strongest.score.max()) if len(strongest) else 1.0
    for e in strongest.itertuples():
        (x0, y0), (x1, y1) = idx[e[1]], idx[e[2]]
        fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="text",
                                 text=f"{e[1]} → {e[2]}: {e.score:.2f}",
                                 line=dict(width=1 + 5 * e.score / lim,
                                           color="#e4572e" if e.in_circuit else "#999999"), showlegend=False))
    s = table[column].to_numpy(float)
    fig.add_trace(go.Scatter(x=[idx[h][0] for h in table["head"]], y=[idx[h][1] for h in table["head"]],
                             mode="markers+text", text=table["head"], textposition="top center",
                             marker=dict(size=10 + 30 * np.nan_to_num(s) / max(np.nanmax(s), 1e-12),
                                         color=np.where(table.in_circuit, "#e4572e", "#1f77b4")),
                             showlegend=False))
    fig.update_layout(title=f"{title} (red: the patching ground truth)", xaxis_title="head",
                      yaxis=dict(title="layer", dtick=1), height=420)
    return fig
