"""Run a prompt through a language model: tokens, next-token predictions, logit lens, attention.

The Models page's analysis. Logit lens applies the model's final norm and unembedding to the
residual stream after each layer (nostalgebraist 2020), as TransformerLens's `accumulated_resid`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots


from .base import Result, Spec, bounded
from .registry import register
from .lm_inputs import check_prompt_text, prompt_tokens, token_strings


@dataclass(frozen=True)
class PromptSpec(Spec, kind="prompt", title="Prompt: predictions, logit lens, attention", page="models"):
    prompt: str = ""
    top_k: int = bounded(5, 1, 50)
    prepend_bos: bool = True

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)


def _pos_labels(tokens: list[str]) -> list[str]:
    return [f"{i}:{t}" for i, t in enumerate(tokens)]


@register(PromptSpec)
def run_prompt(spec: PromptSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    ids = prompt_tokens(lm, spec.prompt, spec.prepend_bos)
    bridge = lm.model
    n_layers = bridge.cfg.n_layers
    names = {f"blocks.{l}.hook_resid_post" for l in range(n_layers)} | {f"blocks.{l}.attn.hook_pattern" for l in range(n_layers)}
    ctx.progress(0.1, "forward pass")
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in names)
        logits = logits[0].float()
        probs = logits.softmax(-1)
        lens_probs = []
        for l in range(n_layers):
            lens_probs.append(bridge.unembed(bridge.ln_final(cache[f"blocks.{l}.hook_resid_post"]))[0].float().softmax(-1))
    ctx.progress(0.6, "tables")
    tok_ids = ids[0].tolist()
    toks = token_strings(lm, tok_ids)
    n = len(tok_ids)
    labels = _pos_labels(toks)

    tokens_df = pd.DataFrame({"position": range(n), "token": toks, "token_id": tok_ids})
    top_p, top_i = probs.topk(spec.top_k, dim=-1)
    pred_rows = []
    for pos in range(n):
        for rank in range(spec.top_k):
            tid = int(top_i[pos, rank])
            pred_rows.append({"position": pos, "token": toks[pos], "rank": rank + 1, "next_token": token_strings(lm, [tid])[0],
                              "next_token_id": tid, "prob": float(top_p[pos, rank]), "logit": float(logits[pos, tid])})
    preds_df = pd.DataFrame(pred_rows)

    # per-position loss on the prompt itself (how surprised the model is by each actual next token)
    logp = logits.log_softmax(-1)
    actual_next = torch.tensor(tok_ids[1:])
    token_loss = (-logp[:-1].gather(1, actual_next[:, None].to(logp.device))[:, 0]).cpu().numpy() if n > 1 else np.zeros(0)
    tokens_df["loss_of_next"] = list(token_loss) + [np.nan]

    lens_rows = []
    lens_top = np.zeros((n_layers, n))
    lens_text = np.empty((n_layers, n), dtype=object)
    for l, p in enumerate(lens_probs):
        tp, ti = p.max(-1)
        for pos in range(n):
            tt = token_strings(lm, [int(ti[pos])])[0]
            actual = float(p[pos, tok_ids[pos + 1]]) if pos + 1 < n else np.nan
            lens_rows.append({"layer": l, "position": pos, "token": toks[pos], "top_token": tt,
                              "top_prob": float(tp[pos]), "prob_of_actual_next": actual})
            lens_top[l, pos] = float(tp[pos])
            lens_text[l, pos] = tt
    lens_df = pd.DataFrame(lens_rows)

    att_rows = []
    figures: dict[str, go.Figure] = {}
    n_heads = bridge.cfg.n_heads
    for l in range(n_layers):
        pat = cache[f"blocks.{l}.attn.hook_pattern"][0].float().cpu().numpy()  # [head, q, k]
        q, k = np.tril_indices(n)
        for h in range(n_heads):
            att_rows.append(pd.DataFrame({"layer": l, "head": h, "query_pos": q, "key_pos": k, "weight": pat[h, q, k]}))
        cols = min(n_heads, 4)
        rows = -(-n_heads // cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"L{l}H{h}" for h in range(n_heads)],
                            horizontal_spacing=0.04, vertical_spacing=0.08)
        for h in range(n_heads):
            fig.add_trace(go.Heatmap(z=pat[h], x=labels, y=labels, coloraxis="coloraxis",
                                     hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"),
                          row=h // cols + 1, col=h % cols + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=n <= 24)
        fig.update_xaxes(showticklabels=n <= 24)
        fig.update_layout(title=f"Attention patterns, layer {l} (rows: query, columns: key)",
                          coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1}, height=320 * rows + 80)
        figures[f"attention_layer{l}"] = fig
    att_df = pd.concat(att_rows, ignore_index=True)

    pred_text = np.array([[f"{r.next_token}<br>{r.prob:.2f}" for r in preds_df[preds_df.position == p].itertuples()]
                          for p in range(n)])
    pred_prob = np.array([[r.prob for r in preds_df[preds_df.position == p].itertuples()] for p in range(n)])
    fig = go.Figure(go.Heatmap(z=pred_prob, x=[f"#{r}" for r in range(1, spec.top_k + 1)], y=labels,
                               text=pred_text, texttemplate="%{text}", colorscale="Greens", zmin=0, zmax=1,
                               hovertemplate="after %{y}<br>%{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Top next-token predictions per position", height=max(300, 28 * n + 120))
    figures["predictions"] = fig

    fig = go.Figure(go.Heatmap(z=lens_top, x=labels, y=[f"layer {l}" for l in range(n_layers)], text=lens_text,
                               texttemplate="%{text}", colorscale="Purples", zmin=0, zmax=1,
                               hovertemplate="%{y}, position %{x}<br>top: %{text} (%{z:.2f})<extra></extra>"))
    fig.update_layout(title="Logit lens: top prediction of the residual stream after each layer",
                      height=140 + 60 * n_layers)
    figures["logit_lens"] = fig

    last = preds_df[preds_df.position == n - 1].sort_values("rank")
    summary = {"model": spec.model, "n_tokens": n, "tokens": toks,
               "mean_loss": float(np.mean(token_loss)) if len(token_loss) else None,
               "top_next_token": last.iloc[0]["next_token"], "top_next_prob": float(last.iloc[0]["prob"]),
               "n_layers": n_layers, "n_heads": n_heads}
    ctx.progress(1.0, "done")
    return Result(PromptSpec.KIND, summary, {"tokens": tokens_df, "predictions": preds_df, "logit_lens": lens_df,
                                             "attention": att_df}, figures)
