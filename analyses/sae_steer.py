"""Steering and ablating an SAE's features at its hook, against the unmodified model: the next-token
distribution and greedy continuations side by side."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from compute.errors import BadInput
from compute.hooks import activations_at

from .base import Result, bounded
from .lm_inputs import check_prompt_text, prompt_tokens, token_strings
from .registry import register
from .sae_browser_figures import steering_bars
from .sae_source import SAESpec, check_width, load_for_model

MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class SAESteerSpec(SAESpec, kind="sae_steer", title="SAE steering and ablation", page="sae_browser"):
    prompt: str = ""
    steer_features: tuple[int, ...] = ()
    coefficients: tuple[float, ...] = ()
    ablate_features: tuple[int, ...] = ()
    max_new_tokens: int = bounded(20, 0, MAX_NEW_TOKENS)

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)
        if len(self.steer_features) != len(self.coefficients):
            raise BadInput("give one coefficient per steered feature")
        for f in (*self.steer_features, *self.ablate_features):
            if f < 0:
                raise BadInput(f"feature {f} is out of range: feature indices start at 0")


def _check_features(features, d_sae: int) -> None:
    bad = [f for f in features if not 0 <= f < d_sae]
    if bad:
        raise BadInput(f"feature {bad[0]} is out of range: this SAE has {d_sae} features (0–{d_sae - 1})")


@register(SAESteerSpec)
def run_sae_steer(spec: SAESteerSpec, ctx) -> Result:
    from sae.interventions import greedy_generate, steering_hook

    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    _check_features((*spec.steer_features, *spec.ablate_features), int(sae.cfg.d_sae))
    tokens = prompt_tokens(lm, spec.prompt)
    check_width(sae, activations_at(lm.model, hook, tokens[:, :1]).shape[-1], hook, lm)
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
