"""Faithfulness of token attributions, by masking the prompt's embeddings.

Soft sufficiency / comprehensiveness (Zhao & Aletras 2023, as adapted to next-token prediction in
the ReAGent paper and its evaluation code): importance = |score| / Σ |score|, a distribution over the
prompt's tokens like ReAGent's own output and like the random baseline; every embedding element of
token i is kept with probability importance_i (sufficiency) or 1 − importance_i (comprehensiveness),
else zeroed; the masked next-token distribution p is compared with the original q by the Hellinger
distance H(p, q) = ‖√p − √q‖₂ / √2 ∈ [0, 1].
  Soft-S = 1 − H(p_suff, q),  Soft-C = H(p_comp, q),  S₀ = 1 − H(p_all-zeroed, q);
  Soft-NS = max(0, Soft-S − S₀) / (1 − S₀),  Soft-NC = Soft-C / (1 − S₀).   Higher is more faithful.
Each is averaged over `samples` Bernoulli draws, and reported beside the same metric for random
attributions (softmax of uniform noise), as the paper does: ratio = method / random.

Deletion / insertion curves (RISE-style, on tokens): remove (zero) the top-ranked tokens one by one
from the full prompt, or insert them one by one into the all-zeroed prompt, and follow the target's
probability; AUC by the trapezoid rule over the fraction of tokens (deletion: lower is better,
insertion: higher is better).
"""
from __future__ import annotations

import numpy as np
import torch

from .text_task import TextTask


def hellinger(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p.sqrt() - q.sqrt()).norm(dim=-1) / np.sqrt(2.0)


def importance(scores: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(scores, dtype=np.float64))
    total = a.sum()
    return a / total if total > 0 else np.full_like(a, 1.0 / max(len(a), 1))


def _masked_embeds(task: TextTask, keep_prob: np.ndarray, samples: int, gen: torch.Generator) -> torch.Tensor:
    x = task.embed(task.prompt_ids).detach().float()
    n, d = x.shape
    p = torch.ones(n, dtype=torch.float32)
    p[task.first :] = torch.as_tensor(keep_prob, dtype=torch.float32)
    keep = torch.rand(samples, n, d, generator=gen) < p.view(1, n, 1)
    return x[None] * keep.to(x.device, x.dtype)


@torch.no_grad()
def soft_scores(task: TextTask, scores: np.ndarray, samples: int = 10, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = task.embed(task.prompt_ids).detach().float()[None]
    q = task.next_distribution_embeds(x)
    empty = x.clone()
    empty[:, task.first :] = 0
    s0 = float(1 - hellinger(task.next_distribution_embeds(empty), q)[0])
    imp = importance(scores)
    suff = float((1 - hellinger(task.next_distribution_embeds(_masked_embeds(task, imp, samples, gen)), q)).mean())
    comp = float(hellinger(task.next_distribution_embeds(_masked_embeds(task, 1 - imp, samples, gen)), q).mean())
    denom = max(1 - s0, 1e-9)
    return {"soft_sufficiency": suff, "soft_comprehensiveness": comp, "s0": s0,
            "soft_ns": max(0.0, suff - s0) / denom, "soft_nc": comp / denom}


def random_baseline(task: TextTask, n_random: int = 5, samples: int = 10, seed: int = 0) -> dict:
    """The soft metrics of random attributions (softmax of uniform noise), averaged."""
    rng = np.random.default_rng(seed + 1000)
    runs = []
    for i in range(n_random):
        noise = rng.random(task.n_features)
        runs.append(soft_scores(task, np.exp(noise) / np.exp(noise).sum(), samples, seed + 1 + i))
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def auc(curve: np.ndarray) -> float:
    if len(curve) < 2:
        return float(curve[0]) if len(curve) else 0.0
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


@torch.no_grad()
def deletion_insertion(task: TextTask, scores: np.ndarray) -> dict:
    """Target probability as the top-ranked tokens are removed (deletion) or inserted (insertion)."""
    n = task.n_features
    order = np.argsort(-np.asarray(scores), kind="stable")
    x = task.embed(task.prompt_ids).detach().float()
    steps = torch.zeros(n + 1, n, dtype=torch.bool)  # row k: the top-k tokens
    for k in range(1, n + 1):
        steps[k, order[:k]] = True
    curves = {}
    for name, keep in (("deletion", ~steps), ("insertion", steps)):
        mask = torch.ones(n + 1, task.n_prompt, dtype=torch.bool)
        mask[:, task.first :] = keep
        emb = x[None] * mask[..., None].to(x.device, x.dtype)
        probs = []
        for i in range(0, len(emb), task.batch_size):
            probs.append(task.logprob_embeds(emb[i : i + task.batch_size]).exp())
        curves[name] = torch.cat(probs).cpu().numpy()
    return {"deletion_curve": curves["deletion"], "insertion_curve": curves["insertion"],
            "deletion_auc": auc(curves["deletion"]), "insertion_auc": auc(curves["insertion"])}
