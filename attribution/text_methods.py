"""Token attributions for a TextTask: Captum's gradient and perturbation methods, attention scores,
SHAP (the shap library's Text masker), each returning one score per prompt token after BOS.

Signs: positive = the token raises the target's log-probability (attention scores are non-negative).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .text_task import TextTask

IG_STEPS = 64


@dataclass
class TokenAttribution:
    method: str
    scores: np.ndarray  # [n_features]
    cost: dict
    seconds: float
    notes: dict = field(default_factory=dict)


def _inputs(task: TextTask) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's embeddings [1, n, d] and the baseline: the same with every feature token zeroed
    (BOS keeps its embedding, so it is neither on the path nor attributed)."""
    x = task.embed(task.prompt_ids).detach()[None].float()
    base = x.clone()
    base[:, task.first :] = 0
    return x, base


def _timed(fn):
    def run(task: TextTask, **kw) -> TokenAttribution:
        start_forwards, start_backwards, start_rows = task.cost.forwards, task.cost.backwards, task.cost.rows
        t0 = time.perf_counter()
        method, scores, grads, notes = fn(task, **kw)
        seconds = time.perf_counter() - t0
        forwards = task.cost.forwards - start_forwards
        cost = {"forward_passes": forwards, "backward_passes": forwards if grads else 0,
                "sequences": task.cost.rows - start_rows}
        task.cost.backwards = start_backwards + cost["backward_passes"]
        return TokenAttribution(method, np.asarray(scores, dtype=np.float64), cost, seconds, notes)
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_timed
def integrated_gradients(task: TextTask, n_steps: int = IG_STEPS):
    """Captum IntegratedGradients on the prompt embeddings, zero baseline, summed over the hidden dim."""
    from captum.attr import IntegratedGradients

    x, base = _inputs(task)
    attr, delta = IntegratedGradients(task.logprob_embeds).attribute(
        x, baselines=base, n_steps=n_steps, internal_batch_size=task.batch_size, return_convergence_delta=True)
    scores = attr.sum(-1)[0, task.first :].detach().cpu().numpy()
    return "integrated_gradients", scores, True, {"n_steps": n_steps, "completeness_delta": float(delta.abs().max())}


@_timed
def input_x_gradient(task: TextTask):
    """Captum InputXGradient on the prompt embeddings, summed over the hidden dim."""
    from captum.attr import InputXGradient

    x, _ = _inputs(task)
    attr = InputXGradient(task.logprob_embeds).attribute(x.requires_grad_(True))
    return "input_x_gradient", attr.sum(-1)[0, task.first :].detach().cpu().numpy(), True, {}


@_timed
def saliency(task: TextTask):
    """Gradient norm per token (Captum Saliency, then the L2 norm over the hidden dim)."""
    from captum.attr import Saliency

    x, _ = _inputs(task)
    grad = Saliency(task.logprob_embeds).attribute(x.requires_grad_(True), abs=True)
    return "saliency", grad.norm(dim=-1)[0, task.first :].detach().cpu().numpy(), True, {}


@_timed
def occlusion(task: TextTask):
    """Captum FeatureAblation: each token's embedding zeroed in turn; score = drop in log p(target)."""
    from captum.attr import FeatureAblation

    x, _ = _inputs(task)
    mask = torch.arange(task.n_prompt, device=x.device).view(1, -1, 1).expand_as(x)
    with torch.no_grad():
        attr = FeatureAblation(task.logprob_embeds).attribute(
            x, baselines=0.0, feature_mask=mask, perturbations_per_eval=task.batch_size)
    return "occlusion", attr[0, task.first :, 0].detach().cpu().numpy(), False, {"baseline": "zero embedding"}


def _patterns(task: TextTask) -> list[torch.Tensor]:
    """Attention patterns [heads, q, k] of every layer for the prompt alone."""
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(task.model.cfg.n_layers)]
    task.cost.forwards += 1
    task.cost.rows += 1
    with torch.no_grad():
        _, cache = task.model.run_with_cache(task.prompt_ids[None], names_filter=lambda n: n in names)
    return [cache[n][0].float() for n in names]


@_timed
def last_layer_attention(task: TextTask):
    """Attention of the last layer from the position that predicts the target, mean over heads."""
    pattern = _patterns(task)[-1]
    return "attention_last", pattern.mean(0)[-1, task.first :].cpu().numpy(), False, {}


@_timed
def attention_rollout(task: TextTask):
    """Abnar & Zuidema (2020): per layer Â = ½(mean-head attention) + ½I, rows renormalised, multiplied
    through the layers; the row of the predicting position."""
    roll = None
    for pattern in _patterns(task):
        a = 0.5 * pattern.mean(0) + 0.5 * torch.eye(pattern.shape[-1], device=pattern.device)
        a = a / a.sum(-1, keepdim=True)
        roll = a if roll is None else a @ roll
    return "attention_rollout", roll[-1, task.first :].cpu().numpy(), False, {}


def mask_token_id(tokenizer) -> int:
    """What a masked token becomes: the tokenizer's mask token, else '...' (shap's Text masker's choice)."""
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    return int(tokenizer("...", add_special_tokens=False)["input_ids"][0])


def adjacent_tree(n: int) -> np.ndarray:
    """A hierarchical clustering that only ever merges neighbouring tokens (as shap's Text masker's
    partition tree does), for Owen values over spans of the prompt."""
    from scipy.cluster.hierarchy import linkage

    pos = np.arange(n, dtype=np.float64)[:, None]
    return linkage(pos + 1e-6 * pos ** 2, method="single")  # distinct gaps: a deterministic merge order


@_timed
def shap_values(task: TextTask, tokenizer=None, max_evals: int = 500):
    """shap's Partition explainer (Owen values over a tree of adjacent token spans) explaining
    log p(target | prompt); a masked token is replaced by the mask token in place, so every
    coalition keeps the prompt's length and the model calls batch."""
    import shap

    ids = task.prompt_ids[task.first :].cpu().numpy()
    prefix = task.prompt_ids[: task.first].cpu()
    replace = mask_token_id(tokenizer)
    calls = {"evals": 0}

    def f(x: np.ndarray) -> np.ndarray:
        rows = torch.as_tensor(np.asarray(x, dtype=np.int64))
        calls["evals"] += len(rows)
        full = torch.cat([prefix.expand(len(rows), -1), rows], dim=1).to(task.device)
        return task.logprob_ids(full).cpu().numpy()

    masker = shap.maskers.Partition(np.full((1, len(ids)), replace), clustering=adjacent_tree(len(ids)))
    sv = shap.explainers.Partition(f, masker)(ids[None], max_evals=max_evals, silent=True)
    notes = {"model_calls": calls["evals"], "max_evals": max_evals,
             "mask_token": tokenizer.convert_ids_to_tokens(replace)}
    return "shap", np.asarray(sv.values[0], dtype=np.float64), False, notes

