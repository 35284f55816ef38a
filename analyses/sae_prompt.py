"""An SAE on a researcher's prompt: which features fire on each token, with the SAE's reconstruction
error beside them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.hooks import activations_at

from .base import Result, bounded
from .lm_inputs import check_prompt_text, prompt_tokens, token_strings
from .registry import register
from .sae_browser_figures import prompt_error, prompt_heatmap
from .sae_source import SAESpec, check_width, load_for_model

MAX_HEATMAP_FEATURES = 40


@dataclass(frozen=True)
class SAEPromptSpec(SAESpec, kind="sae_prompt", title="SAE features on a prompt", page="sae_browser"):
    prompt: str = ""
    top_k: int = bounded(5, 1, 50)

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)


@register(SAEPromptSpec)
def run_sae_prompt(spec: SAEPromptSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    tokens = prompt_tokens(lm, spec.prompt)
    x = activations_at(lm.model, hook, tokens)[0].float()  # [tokens, d], hook_z heads concatenated
    check_width(sae, x.shape[1], hook, lm)
    with torch.no_grad():
        z = sae.encode(x.to(sae.W_dec.dtype)).float()
        x_hat = sae.decode(z.to(sae.W_dec.dtype)).float()
    err = (x - x_hat).norm(dim=-1).cpu().numpy()
    rel = err / np.maximum(x.norm(dim=-1).cpu().numpy(), 1e-12)
    strs = token_strings(lm, tokens[0].tolist())
    k = min(spec.top_k, z.shape[1])
    v, j = z.topk(k, dim=-1)
    v, j = v.cpu().numpy(), j.cpu().numpy()
    rows = [{"position": p, "token": strs[p], "rank": r, "feature": int(j[p, r]), "activation": float(v[p, r])}
            for p in range(len(strs)) for r in range(k) if v[p, r] > 0]
    per_token = pd.DataFrame(rows, columns=["position", "token", "rank", "feature", "activation"])
    l0 = (z != 0).sum(-1).cpu().numpy()
    tokens_table = pd.DataFrame({"position": np.arange(len(strs)), "token": strs, "l0": l0, "error_norm": err,
                                 "relative_error": rel})
    # the heatmap: features in the per-token top-k, strongest first
    order = (per_token.groupby("feature").activation.max().sort_values(ascending=False).index.tolist()
             if len(per_token) else [])[:MAX_HEATMAP_FEATURES]
    fired = pd.DataFrame({"feature": order,
                          "max_activation": [float(z[:, f].max()) for f in order],
                          "tokens_fired": [int((z[:, f] > 0).sum()) for f in order]})
    heat = z[:, order].T.cpu().numpy() if order else np.zeros((0, len(strs)))
    figures = {"prompt_features": prompt_heatmap(strs, order, heat, {}),
               "reconstruction_error": prompt_error(strs, err, rel)}
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "n_tokens": len(strs),
               "l0_mean": float(l0.mean()), "relative_error_mean": float(rel.mean()),
               "distinct_features": int((z > 0).any(0).sum())}
    return Result(SAEPromptSpec.KIND, summary, {"tokens": tokens_table, "token_features": per_token,
                                                "features": fired}, figures)
