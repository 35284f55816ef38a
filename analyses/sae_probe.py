"""An SAE on a researcher's prompt: which features fire on each token (with the SAE's reconstruction
error beside them), and steering / ablating features at the SAE's hook against the unmodified model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import Result, register
from .lm_inputs import check_prompt_text, prompt_tokens, token_strings
from .sae_browser_figures import prompt_error, prompt_heatmap, steering_bars
from .sae_source import SAESpec, check_width, load_for_model

MAX_HEATMAP_FEATURES = 40
MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class SAEPromptSpec(SAESpec):
    KIND = "sae_prompt"
    TITLE = "SAE features on a prompt"
    prompt: str = ""
    top_k: int = 5

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)
        if not 1 <= self.top_k <= 50:
            raise BadInput("top_k must be between 1 and 50")


@dataclass(frozen=True)
class SAESteerSpec(SAESpec):
    KIND = "sae_steer"
    TITLE = "SAE steering and ablation"
    prompt: str = ""
    steer_features: tuple[int, ...] = ()
    coefficients: tuple[float, ...] = ()
    ablate_features: tuple[int, ...] = ()
    max_new_tokens: int = 20

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)
        if len(self.steer_features) != len(self.coefficients):
            raise BadInput("give one coefficient per steered feature")
        if not 0 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise BadInput(f"max_new_tokens must be between 0 and {MAX_NEW_TOKENS}")
        for f in (*self.steer_features, *self.ablate_features):
            if f < 0:
                raise BadInput(f"feature {f} is out of range: feature indices start at 0")


def _check_features(features, d_sae: int) -> None:
    bad = [f for f in features if not 0 <= f < d_sae]
    if bad:
        raise BadInput(f"feature {bad[0]} is out of range: this SAE has {d_sae} features (0–{d_sae - 1})")


@torch.no_grad()
def hook_activations(lm, hook: str, tokens: torch.Tensor) -> torch.Tensor:
    """[n_tokens, d] at the hook for one prompt (hook_z heads concatenated)."""
    stop = int(hook.split(".")[1]) + 1 if hook.startswith("blocks.") else None
    _, cache = lm.model.run_with_cache(tokens, names_filter=lambda n: n == hook, stop_at_layer=stop)
    a = cache[hook][0].float()
    return a.reshape(a.shape[0], -1)


@register(SAEPromptSpec)
def run_sae_prompt(spec: SAEPromptSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    tokens = prompt_tokens(lm, spec.prompt)
    x = hook_activations(lm, hook, tokens)
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


@register(SAESteerSpec)
def run_sae_steer(spec: SAESteerSpec, ctx) -> Result:
    from sae.interventions import greedy_generate, steering_hook

    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    _check_features((*spec.steer_features, *spec.ablate_features), int(sae.cfg.d_sae))
    tokens = prompt_tokens(lm, spec.prompt)
    check_width(sae, hook_activations(lm, hook, tokens[:, :1]).shape[1], hook, lm)
    hooked = [(hook, steering_hook(sae, dict(zip(spec.steer_features, spec.coefficients)), spec.ablate_features))]
    eos = lm.tokenizer.eos_token_id
    n_new = max(spec.max_new_tokens, 1)
    clean_ids, clean_logits = greedy_generate(lm.model, tokens, n_new, stop_id=eos, n_ctx=lm.n_ctx)
    steer_ids, steer_logits = greedy_generate(lm.model, tokens, n_new, fwd_hooks=hooked, stop_id=eos, n_ctx=lm.n_ctx)
    if spec.max_new_tokens == 0:
        clean_ids, steer_ids = [], []
    p_clean = torch.softmax(clean_logits, -1).cpu()
    p_steer = torch.softmax(steer_logits, -1).cpu()
    kl = float((p_clean * (torch.log(p_clean.clamp_min(1e-30)) - torch.log(p_steer.clamp_min(1e-30)))).sum())
    change = (p_steer - p_clean).abs()
    idx = torch.unique(torch.cat([change.topk(15).indices, p_clean.topk(5).indices, p_steer.topk(5).indices]))
    strs = token_strings(lm, idx.tolist())
    next_tokens = pd.DataFrame({"token_id": idx.numpy(), "token": strs, "p_clean": p_clean[idx].numpy(),
                                "p_steered": p_steer[idx].numpy()})
    next_tokens["delta"] = next_tokens.p_steered - next_tokens.p_clean
    next_tokens = next_tokens.reindex(next_tokens.delta.abs().sort_values(ascending=False).index).reset_index(drop=True)
    decode = lm.tokenizer.decode
    generations = pd.DataFrame({"model": ["unmodified", "steered / ablated"],
                                "continuation": [decode(clean_ids), decode(steer_ids)],
                                "tokens": [len(clean_ids), len(steer_ids)]})
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "kl_next_token": kl,
               "max_prob_change": float(change.max()),
               "top1_clean": token_strings(lm, [int(p_clean.argmax())])[0],
               "top1_steered": token_strings(lm, [int(p_steer.argmax())])[0],
               "continuation_clean": decode(clean_ids), "continuation_steered": decode(steer_ids),
               "identical_continuations": clean_ids == steer_ids}
    return Result(SAESteerSpec.KIND, summary, {"next_token": next_tokens, "generations": generations},
                  {"next_token_change": steering_bars(next_tokens)})
