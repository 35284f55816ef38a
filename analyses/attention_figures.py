"""Plotly figures of the Attention features page: feature × head matrices, families per head, one feature's
heads, and direct feature attribution by (destination, source) per head."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FAMILY_COLOURS = {"induction": "#e4572e", "short-range context": "#17bebb", "long-range context": "#76b041"}
MAX_ROWS = 400  # features drawn in a feature × head matrix (the strongest by density)


def feature_head_heatmap(features: pd.DataFrame, heads: list[str], prefix: str, title: str) -> go.Figure:
    """Features (rows, grouped by their top head) × heads, coloured by the share."""
    df = features.sort_values("density", ascending=False).head(MAX_ROWS)
    df = df.assign(_lead=df[[f"{prefix}_{h}" for h in heads]].fillna(-1).to_numpy().argmax(1))
    df = df.sort_values(["_lead", f"{prefix}_{heads[0]}"], ascending=[True, False])
    z = df[[f"{prefix}_{h}" for h in heads]].to_numpy(float)
    fig = go.Figure(go.Heatmap(z=z, x=heads, y=[f"f{f}" for f in df.feature], colorscale="Viridis",
                               zmin=0, zmax=1, colorbar=dict(title="share"),
                               customdata=np.stack([df.family, df.label], axis=-1)[:, None, :].repeat(len(heads), 1),
                               hovertemplate="%{y} · %{x}: %{z:.2f}<br>%{customdata[0]}<br>%{customdata[1]}"
                                             "<extra></extra>"))
    fig.update_layout(title=f"{title} — {len(df)} features{' (the densest)' if len(features) > MAX_ROWS else ''}",
                      xaxis_title="head", yaxis=dict(title="feature", showticklabels=len(df) <= 60),
                      height=min(900, 260 + 6 * len(df)))
    return fig


def family_bars(families: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure()
    for fam, colour in FAMILY_COLOURS.items():
        part = families[families.family == fam]
        fig.add_bar(x=part["head"], y=part.features, name=fam, marker_color=colour)
    fig.update_layout(title=title, barmode="stack", xaxis_title="top head (by activation share)",
                      yaxis_title="live features", height=380)
    return fig


def feature_heads_bar(heads: pd.DataFrame, layer: int, feature: int) -> go.Figure:
    """The layer × head heatmap of one feature: its decoder-norm share and its activation share per head."""
    z = np.stack([heads.weight_share.to_numpy(float), heads.activation_share.to_numpy(float)])
    fig = go.Figure(go.Heatmap(z=z, x=list(heads["head"]), y=[f"layer {layer} · decoder norm",
                                                              f"layer {layer} · activation"],
                               colorscale="RdBu", zmid=0, texttemplate="%{z:.2f}", colorbar=dict(title="share")))
    fig.update_layout(title=f"Feature {feature}: share per head", height=260, xaxis_title="head")
    return fig


def source_bars(examples: pd.DataFrame, feature: int) -> go.Figure:
    """Where each top context's DFA mass sits: induction sources, the short window, further back."""
    x = [f"#{r} {t!r}" for r, t in zip(examples["rank"], examples.token)]
    long = 1 - examples.induction_share - examples.short_share
    fig = go.Figure()
    for name, y in (("induction", examples.induction_share), ("short-range context", examples.short_share),
                    ("long-range context", long)):
        fig.add_bar(x=x, y=y, name=name, marker_color=FAMILY_COLOURS[name])
    fig.update_layout(title=f"Feature {feature}: where its DFA sits on its top contexts", barmode="stack",
                      yaxis=dict(title="share of |DFA|", range=[0, 1]), height=360)
    return fig


def dfa_heatmaps(M: np.ndarray, tokens: list[str], heads: list[str], feature: int, dest: int) -> go.Figure:
    """One destination × source heatmap per head (lower triangle: causal attention)."""
    n_heads, n = M.shape[0], M.shape[1]
    cols = min(3, n_heads)
    rows = -(-n_heads // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=heads, horizontal_spacing=0.06, vertical_spacing=0.1)
    lim = float(np.abs(M).max()) or 1.0
    labels = [f"{i} {t!r}" for i, t in enumerate(tokens)]
    for h in range(n_heads):
        r, c = divmod(h, cols)
        fig.add_trace(go.Heatmap(z=np.where(np.tril(np.ones((n, n), bool)), M[h], np.nan), x=labels, y=labels,
                                 colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, showscale=h == 0,
                                 hovertemplate="dest %{y}<br>src %{x}<br>DFA %{z:.3f}<extra>" + heads[h] + "</extra>"),
                      r + 1, c + 1)
        fig.add_hline(y=labels[dest], line=dict(color="black", width=1, dash="dot"), row=r + 1, col=c + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=n <= 40)
    fig.update_xaxes(showticklabels=n <= 40)
    fig.update_layout(title=f"Feature {feature}: DFA by destination (rows) and source (columns); "
                            f"dotted: destination {dest}", height=320 * rows + 80)
    return fig


def upstream_waterfall(parts: pd.DataFrame, feature: int, dest: int) -> go.Figure:
    """The recursive DFA's parts adding up to the pre-activation (the last bar, a total)."""
    n = len(parts)
    fig = go.Figure(go.Waterfall(x=list(parts.part), y=list(parts.value), measure=["relative"] * (n - 1) + ["total"],
                                 texttemplate="%{y:.3f}", connector=dict(line=dict(color="#999", width=1))))
    fig.update_layout(title=f"Feature {feature} at destination {dest}: where its pre-activation comes from",
                      yaxis_title="pre-activation", height=380)
    return fig


def upstream_bars(terms: pd.DataFrame, heads: list[str], feature: int, dest: int) -> go.Figure:
    """The largest (upstream feature, source) terms, split by the head whose value path carries them."""
    x = [f"u{u} @ {s} {t!r}" for u, s, t in zip(terms.upstream_feature, terms.source, terms.source_token)]
    fig = go.Figure()
    for h in heads:
        fig.add_bar(x=x, y=terms[h], name=h)
    fig.update_layout(title=f"Feature {feature} at destination {dest}: upstream features by source (through W_V)",
                      barmode="relative", yaxis_title="contribution to the pre-activation", height=420,
                      xaxis_tickangle=-40)
    return fig
