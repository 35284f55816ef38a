"""Plotly figures for image attribution: the image with each method's map over it, RISE curves and AUCs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .attribution_figures import curves_figure


def overlays(image: np.ndarray, maps: dict[str, np.ndarray], title: str) -> go.Figure:
    """The image (grey) and, per method, its map (red: for the class, blue: against) over the image."""
    grey = image.mean(0) if image.ndim == 3 else image
    names = ["image", *maps]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)
    fig.add_trace(go.Heatmap(z=grey, colorscale="gray", showscale=False, hoverinfo="skip"), row=1, col=1)
    for c, (m, s) in enumerate(maps.items(), start=2):
        peak = float(np.abs(s).max()) or 1.0
        fig.add_trace(go.Heatmap(z=grey, colorscale="gray", showscale=False, hoverinfo="skip"), row=1, col=c)
        fig.add_trace(go.Heatmap(z=s / peak, zmin=-1, zmax=1, opacity=0.6, showscale=c == len(names),
                                 colorscale=[[0, "#2166ac"], [0.5, "rgba(255,255,255,0)"], [1, "#b2182b"]],
                                 hovertemplate=f"{m}<br>row %{{y}}, col %{{x}}<br>%{{z:.3f}}<extra></extra>"),
                      row=1, col=c)
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=f"Attributions for {title} (each map scaled to max |score| = 1)",
                      height=300, width=max(600, 220 * len(names)))
    return fig


def image_faithfulness(metrics: pd.DataFrame) -> go.Figure:
    fig = go.Figure([go.Bar(x=metrics.method, y=metrics.deletion_auc, name="deletion AUC (lower better)"),
                     go.Bar(x=metrics.method, y=metrics.insertion_auc, name="insertion AUC (higher better)")])
    fig.add_hline(y=float(metrics.deletion_auc_random.iloc[0]), line_dash="dot",
                  annotation_text="deletion, random order")
    fig.add_hline(y=float(metrics.insertion_auc_random.iloc[0]), line_dash="dash",
                  annotation_text="insertion, random order")
    fig.update_layout(title="RISE deletion and insertion AUC per method (read the two together: both follow the "
                            "model's confidence)", barmode="group", height=400)
    return fig


def image_curves(curves: pd.DataFrame) -> go.Figure:
    return curves_figure(curves, ("deletion (pixels set to 0)", "insertion (into the blurred image)"),
                         x_title="fraction of pixels", y_title="p(class)")
