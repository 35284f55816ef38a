"""Plotly figures of the SAE browser: feature overview, one feature's dashboard, features on a prompt,
steering, and the SAE-error decomposition."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ACT_COLOURS = [[0.0, "#ffffff"], [1.0, "#e4572e"]]


def feature_overview(features: pd.DataFrame, title: str) -> go.Figure:
    live = features[~features.dead]
    fig = go.Figure(go.Scattergl(
        x=live.log10_density, y=live.mean_activation, mode="markers",
        marker=dict(size=5, color=np.where(live.underused, "#d62728", "#1f77b4"), opacity=0.7),
        customdata=np.stack([live.feature, live.label], axis=1),
        hovertemplate="feature %{customdata[0]}<br>%{customdata[1]}<br>log10 density %{x:.2f}"
                      "<br>mean activation %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="log10 feature density", yaxis_title="mean activation when firing",
                      height=420)
    return fig


def density_overview(features: pd.DataFrame, title: str) -> go.Figure:
    live = features[~features.dead]
    fig = go.Figure(go.Histogram(x=live.log10_density, nbinsx=50))
    n_dead = int(features.dead.sum())
    fig.update_layout(title=f"{title} ({n_dead} dead of {len(features)} not shown)", xaxis_title="log10 density",
                      yaxis_title="features", bargap=0.05)
    return fig


def activation_histogram(hist: pd.DataFrame, feature: int, density: float) -> go.Figure:
    fig = go.Figure(go.Bar(x=(hist.bin_left + hist.bin_right) / 2, y=hist["count"],
                           width=(hist.bin_right - hist.bin_left) * 0.95, marker_color="#e4572e"))
    fig.update_layout(title=f"Feature {feature}: activation histogram (density {density:.3%})",
                      xaxis_title="activation (non-zero)", yaxis_title="tokens", height=320)
    return fig


def logit_effects(direct: pd.DataFrame | None, total: pd.DataFrame | None, feature: int) -> go.Figure:
    panels = [(name, df) for name, df in (("direct (decoder · W_U)", direct),
                                          ("through the model (ablation at top contexts)", total))
              if df is not None and len(df)]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[p[0] for p in panels] or ["no logit path"])
    for c, (_, df) in enumerate(panels, start=1):
        df = pd.concat([df[df.side == "bottom"].iloc[::-1], df[df.side == "top"]])
        fig.add_trace(go.Bar(x=df.logit, y=[f"{t} " for t in df.token], orientation="h", showlegend=False,
                             marker_color=np.where(df.logit >= 0, "#1f77b4", "#d62728")), row=1, col=c)
    fig.update_layout(title=f"Feature {feature}: logit effects (top and bottom tokens)", height=520)
    return fig


def contexts_heatmap(examples: pd.DataFrame, feature: int, title: str) -> go.Figure:
    """Contexts as rows of tokens, shaded by the feature's activation (the exportable form of the highlights)."""
    if not len(examples):
        return go.Figure().update_layout(title=f"{title}: no examples")
    width = max(len(w) for w in examples.window_tokens)
    z = np.full((len(examples), width), np.nan)
    text = np.full((len(examples), width), "", dtype=object)
    for i, (toks, acts) in enumerate(zip(examples.window_tokens, examples.window_acts)):
        z[i, : len(acts)] = acts
        text[i, : len(toks)] = toks
    labels = [f"{g} #{r} ({a:.2f})" for g, r, a in zip(examples.group, examples["rank"], examples.activation)]
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale=ACT_COLOURS, zmin=0,
                               y=labels, hovertemplate="%{text}: %{z:.3f}<extra></extra>", xgap=1, ygap=1))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=f"Feature {feature}: {title}", height=max(300, 26 * len(examples) + 100))
    return fig


def prompt_heatmap(tokens: list[str], features: list[int], acts: np.ndarray, labels: dict[int, str]) -> go.Figure:
    """acts: [len(features), len(tokens)]."""
    y = [f"{f} {labels.get(f, '')}"[:48] for f in features]
    x = [f"{i}:{t}" for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=acts, x=x, y=y, colorscale=ACT_COLOURS, zmin=0,
                               hovertemplate="token %{x}<br>feature %{y}<br>activation %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Features on the prompt (top features per token)", xaxis_title="token",
                      height=max(320, 18 * len(features) + 160))
    return fig


def prompt_error(tokens: list[str], error_norm: np.ndarray, rel: np.ndarray) -> go.Figure:
    x = [f"{i}:{t}" for i, t in enumerate(tokens)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=x, y=error_norm, name="‖x − x̂‖", marker_color="#7f7f7f"))
    fig.add_trace(go.Scatter(x=x, y=rel, name="‖x − x̂‖ / ‖x‖", mode="lines+markers"), secondary_y=True)
    fig.update_layout(title="SAE reconstruction error per token", height=320)
    fig.update_yaxes(title_text="error norm", secondary_y=False)
    fig.update_yaxes(title_text="relative error", secondary_y=True)
    return fig


def steering_bars(next_tokens: pd.DataFrame) -> go.Figure:
    df = next_tokens.head(15)
    fig = go.Figure([go.Bar(x=df.token, y=df.p_clean, name="unmodified"),
                     go.Bar(x=df.token, y=df.p_steered, name="steered / ablated")])
    fig.update_layout(title="Next-token probabilities (largest changes)", barmode="group", yaxis_title="probability",
                      height=360)
    return fig


def error_norms(per_token: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for col, name in (("error_norm", "‖SAE error‖"), ("linear_norm", "‖linear part‖"),
                      ("nonlinear_norm", "‖nonlinear part‖")):
        fig.add_trace(go.Histogram(x=per_token[col], name=name, opacity=0.6, nbinsx=60))
    fig.update_layout(title="Per-token error norms on held-out tokens", barmode="overlay", xaxis_title="norm",
                      yaxis_title="tokens")
    return fig


def error_variance_bars(summary: dict) -> go.Figure:
    names = ["error variance (vector R²)", "error variance (per-dim R²)", "error norm² (norm R²)"]
    vals = [summary["r2_vector"], summary["r2_vector_per_dim"], summary["r2_norm"]]
    fig = go.Figure(go.Bar(x=names, y=vals, text=[f"{v:.1%}" for v in vals], textposition="outside"))
    fig.update_layout(title="How much of the SAE error is linearly predictable from the input",
                      yaxis=dict(range=[min(0, min(vals)) - 0.05, 1.1], tickformat=".0%"))
    return fig


def ce_bars(ce: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(x=ce.variant, y=ce.ce_loss, text=[f"{v:.4f}" for v in ce.ce_loss],
                           textposition="outside"))
    lo = float(ce.ce_loss.min())
    fig.update_layout(title="CE loss with the SAE spliced in, adding back parts of its error",
                      yaxis=dict(title="CE loss (nats / token)", range=[lo - 0.1 * (ce.ce_loss.max() - lo + 1e-3),
                                                                         ce.ce_loss.max() * 1.01]))
    return fig
