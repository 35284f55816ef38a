"""Faithfulness of token attributions, by masking the prompt's embeddings.

Soft sufficiency / comprehensiveness (Zhao & Aletras 2023, as adapted to next-token prediction in the
ReAGent paper). Every embedding element of token i is kept with probability importance_i (sufficiency)
or 1 − importance_i (comprehensiveness), else zeroed; the masked next-token distribution p (full
vocabulary) is compared with the original q by a distance D;
  Soft-S = 1 − D(p_suff, q),  Soft-C = D(p_comp, q),  S₀ = 1 − D(p_all-zeroed, q);
  Soft-NS = max(0, Soft-S − S₀) / (1 − S₀),  Soft-NC = Soft-C / (1 − S₀).   Higher is more faithful;
each is reported beside the same metric for random attributions (softmax of uniform noise).

Two definitions, the spec's `faithfulness` field chooses (DEFINITIONS says each in one line):
- "reagent_code", the default: as the paper's evaluation code computes them (casszhao/ReAGent,
  src/evaluation/evaluator/: soft_sufficiency.py, soft_norm_sufficiency.py, base_masking.py).
  D(p, q) = Σ_v (√p_v − √q_v)² / √2 (their formula: not the Hellinger distance, which takes the square
  root of the sum and divides by √2 outside it; D lies in [0, √2]); S₀ with the same D (the issue that
  asked for this read KL there: the KL line is commented out in their code). Importance is the method's
  own distribution over tokens, as they fed it (`paper_importance`): inseq's aggregation for gradient
  methods (L2 norm over the hidden dim, normalised to sum 1), the softmax of attention weights, ReAGent's
  importance as it comes; a method they did not evaluate gets |score| normalised (inseq's aggregation of
  one number per token). Soft-NS and Soft-NC are computed per mask draw and averaged over draws (one
  draw, `samples=1`, is their computation exactly); each random draw is a fresh softmax(U(0, 1)) with one
  mask. Deletion / insertion and agreement rank tokens by the same importance.
  One departure: BOS, which no method here scores, is never masked (their GPT-2 and GPT-J have no BOS;
  OPT's would be masked by an importance it was given).
- "workbench", this tool's earlier definition: D = Hellinger distance ‖√p − √q‖₂ / √2 ∈ [0, 1];
  importance = |score| / Σ |score| for every method; Soft-S and Soft-C averaged over the draws before
  normalising; the random baseline is five softmax(U) draws. Deletion / insertion and agreement rank by
  the signed score (a token that lowers p(target) is deleted last), Soft-NS/NC by its magnitude.

Deletion / insertion curves (RISE-style, on tokens): remove (zero) the top-ranked tokens one by one
from the full prompt, or insert them one by one into the all-zeroed prompt, and follow the target's
probability; AUC by the trapezoid rule over the fraction of tokens (deletion: lower is better,
insertion: higher is better).
"""
from __future__ import annotations

import numpy as np
import torch

from .text_task import TextTask

DEFINITIONS = {
    "reagent_code": "as in ReAGent's evaluation code: Σ(√p−√q)²/√2, each method's own importance "
                    "distribution, Soft-NS/NC per mask draw; curves and agreement rank by that importance",
    "workbench": "Hellinger distance, importance |score|/Σ|score| for every method; curves and agreement "
                 "rank by the signed score",
}


def reagent_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Σ (√p − √q)² / √2, the distance of ReAGent's soft_sufficiency.py (not Hellinger: no square root)."""
    return ((p.sqrt() - q.sqrt()) ** 2).sum(-1) / np.sqrt(2.0)


def hellinger(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p.sqrt() - q.sqrt()).norm(dim=-1) / np.sqrt(2.0)


def importance(scores: np.ndarray) -> np.ndarray:
    """|score| / Σ |score| (uniform when every score is 0)."""
    a = np.abs(np.asarray(scores, dtype=np.float64))
    total = a.sum()
    return a / total if total > 0 else np.full_like(a, 1.0 / max(len(a), 1))


def ranking(attribution, definition: str) -> np.ndarray:
    """What orders the tokens for deletion / insertion and agreement under a definition."""
    return paper_importance(attribution) if definition == "reagent_code" else np.asarray(attribution.scores, float)


def paper_importance(attribution) -> np.ndarray:
    """The distribution over tokens ReAGent's evaluation was fed for this method (see the module doc)."""
    own = getattr(attribution, "importance", None)
    return importance(own if own is not None else attribution.scores)


def _masked_embeds(task: TextTask, keep_prob: np.ndarray, samples: int, gen: torch.Generator) -> torch.Tensor:
    x = task.embed(task.prompt_ids).detach().float()
    n, d = x.shape
    p = torch.ones(n, dtype=torch.float32)
    p[task.first :] = torch.as_tensor(keep_prob, dtype=torch.float32)
    keep = torch.rand(samples, n, d, generator=gen) < p.view(1, n, 1)
    return x[None] * keep.to(x.device, x.dtype)


def _distributions(task: TextTask, embeds: torch.Tensor) -> torch.Tensor:
    return torch.cat([task.next_distribution_embeds(embeds[i : i + task.batch_size])
                      for i in range(0, len(embeds), task.batch_size)])


def _original_and_empty(task: TextTask) -> tuple[torch.Tensor, torch.Tensor]:
    x = task.embed(task.prompt_ids).detach().float()[None]
    empty = x.clone()
    empty[:, task.first :] = 0
    return task.next_distribution_embeds(x), task.next_distribution_embeds(empty)


@torch.no_grad()
def soft_scores(task: TextTask, scores: np.ndarray, samples: int = 10, seed: int = 0) -> dict:
    """The workbench definition: Hellinger, Soft-S / Soft-C averaged over the draws, then normalised."""
    gen = torch.Generator().manual_seed(seed)
    q, p_empty = _original_and_empty(task)
    s0 = float(1 - hellinger(p_empty, q)[0])
    imp = importance(scores)
    suff = float((1 - hellinger(_distributions(task, _masked_embeds(task, imp, samples, gen)), q)).mean())
    comp = float(hellinger(_distributions(task, _masked_embeds(task, 1 - imp, samples, gen)), q).mean())
    denom = max(1 - s0, 1e-9)
    return {"soft_sufficiency": suff, "soft_comprehensiveness": comp, "s0": s0,
            "soft_ns": max(0.0, suff - s0) / denom, "soft_nc": comp / denom}


@torch.no_grad()
def soft_scores_reagent(task: TextTask, importances: np.ndarray, seed: int = 0) -> dict:
    """ReAGent's code: one mask draw per row of `importances` [draws, n_features] (each a distribution),
    Soft-NS and Soft-NC per draw with their distance, then the mean over draws."""
    gen = torch.Generator().manual_seed(seed)
    importances = np.atleast_2d(np.asarray(importances, dtype=np.float64))
    q, p_empty = _original_and_empty(task)
    s0 = float(1 - reagent_distance(p_empty, q)[0])
    denom = max(1 - s0, 1e-9)
    suff_masks = torch.cat([_masked_embeds(task, imp, 1, gen) for imp in importances])
    comp_masks = torch.cat([_masked_embeds(task, 1 - imp, 1, gen) for imp in importances])
    suff = (1 - reagent_distance(_distributions(task, suff_masks), q)).double()
    comp = reagent_distance(_distributions(task, comp_masks), q).double()
    return {"soft_sufficiency": float(suff.mean()), "soft_comprehensiveness": float(comp.mean()), "s0": s0,
            "soft_ns": float(((suff - s0).clamp(min=0) / denom).mean()), "soft_nc": float((comp / denom).mean())}


def _softmax_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    noise = np.exp(rng.random(n))
    return noise / noise.sum()


def random_baseline(task: TextTask, n_random: int = 5, samples: int = 10, seed: int = 0) -> dict:
    """The workbench definition's soft metrics of random attributions (softmax of uniform noise), averaged."""
    rng = np.random.default_rng(seed + 1000)
    runs = [soft_scores(task, _softmax_noise(rng, task.n_features), samples, seed + 1 + i) for i in range(n_random)]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def soft_metrics(task: TextTask, attribution, definition: str, samples: int, seed: int) -> dict:
    """Soft-NS / Soft-NC of one attribution under a definition."""
    if definition == "reagent_code":
        imp = paper_importance(attribution)
        return soft_scores_reagent(task, np.repeat(imp[None], samples, axis=0), seed)
    return soft_scores(task, attribution.scores, samples=samples, seed=seed)


def random_metrics(task: TextTask, definition: str, samples: int, seed: int) -> dict:
    """The same metrics of random attributions: ReAGent's code draws softmax(U(0, 1)) afresh per draw."""
    if definition == "reagent_code":
        rng = np.random.default_rng(seed + 1000)
        draws = np.stack([_softmax_noise(rng, task.n_features) for _ in range(samples)])
        return soft_scores_reagent(task, draws, seed + 1)
    return random_baseline(task, samples=samples, seed=seed)


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
