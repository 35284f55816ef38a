"""Quality figures of a model: what `workbench zoo-check` reports and the Models page can run as a job.

A thin analysis over the model's task (compute/tasks/): the task evaluates the model (language models:
the induction test with per-head induction and previous-token scores, and the loss on held-out text;
modular addition: accuracy on the held-out pairs; digits: held-out accuracy and confusion matrix) and
this draws its tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from compute.tasks import task_for

from .base import Result, Spec, bounded
from .registry import register


@dataclass(frozen=True)
class ModelCheckSpec(Spec, kind="model_check",
                     title="Model check: induction, held-out loss, task accuracy", page="models"):
    RESULT_VERSION = 2  # 2: previous-token scores per head
    n_sequences: int = bounded(32, 1, 1024)
    repeat_len: int = bounded(64, 4, 4096)
    eval_tokens: int = bounded(16384, 0, 10_000_000)
    seed: int = 0


def head_heatmap(scores, colorscale: str, title: str) -> go.Figure:
    """A [layer, head] score in [0, 1] as a labelled heatmap."""
    L, H = scores.shape
    fig = go.Figure(go.Heatmap(z=scores, x=[f"H{h}" for h in range(H)], y=[f"L{l}" for l in range(L)],
                               colorscale=colorscale, zmin=0, zmax=1, texttemplate="%{z:.2f}",
                               hovertemplate="%{y}%{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=160 + 50 * L)
    return fig


def _head_figures(heads, pos, n_sequences: int) -> dict[str, go.Figure]:
    score = lambda col: heads.pivot(index="layer", columns="head", values=col).to_numpy()  # noqa: E731
    loss = go.Figure(go.Scatter(x=pos.position, y=pos.loss, mode="lines", name="loss"))
    second = pos.position[pos["copy"] == "second"]
    if len(second):
        loss.add_vline(x=float(second.iloc[0]) - 0.5, line_dash="dash", annotation_text="second copy starts")
    loss.update_layout(title=f"Loss per position on random tokens repeated twice (n={n_sequences})",
                       xaxis_title="position", yaxis_title="cross-entropy (nats)")
    return {"induction_scores": head_heatmap(score("induction_score"), "Reds",
                                             "Induction score per head (attention to the token after the previous "
                                             "occurrence)"),
            "previous_token_scores": head_heatmap(score("previous_token_score"), "Blues",
                                                  "Previous-token score per head (attention to the token just before)"),
            "repeat_loss": loss}


def _accuracy_figure(df, p: int) -> go.Figure:
    fig = go.Figure(go.Bar(x=df.split, y=df.accuracy, text=[f"{a:.2%}" for a in df.accuracy], textposition="auto"))
    fig.update_layout(title=f"(a + b) mod {p}: accuracy", yaxis_range=[0, 1.05])
    return fig


def _confusion_figure(table, accuracy: float) -> go.Figure:
    cm = table.pivot(index="true", columns="predicted", values="count")
    fig = go.Figure(go.Heatmap(z=cm.values, x=[str(c) for c in cm.columns], y=[str(i) for i in cm.index],
                               colorscale="Blues", texttemplate="%{z}"))
    fig.update_layout(title=f"Held-out confusion matrix (accuracy {accuracy:.2%})", xaxis_title="predicted",
                      yaxis_title="true")
    fig.update_yaxes(autorange="reversed")
    return fig


@register(ModelCheckSpec, long=True)
def run_model_check(spec: ModelCheckSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    report = task_for(lm).evaluate(lm, ctx.progress, n_sequences=spec.n_sequences, repeat_len=spec.repeat_len,
                                   eval_tokens=spec.eval_tokens, seed=spec.seed)
    t, s = report.tables, report.summary
    figures = {}
    if "induction_heads" in t:
        figures.update(_head_figures(t["induction_heads"], t["repeat_loss_by_position"], spec.n_sequences))
    if "accuracy" in t:
        figures["accuracy"] = _accuracy_figure(t["accuracy"], s["p"])
    if "confusion" in t:
        figures["confusion"] = _confusion_figure(t["confusion"], s["test_accuracy"])
    ctx.progress(1.0, "done")
    return Result(ModelCheckSpec.KIND, {"model": spec.model, **s}, t, figures)
