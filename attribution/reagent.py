"""ReAGent (Zhao & Shan 2024, arXiv 2402.00794), as published, on any model that gives probabilities.

Per probe (B probes in parallel):
1. p_o = p(target | context); logit-scale scores s_l ~ U(0, 1) per context token.
2. Each step: replace every context token independently with probability r (the replacement model
   chooses the new token), p_r = p(target | replaced context), Δ = (p_o − p_r) / p_o, clipped to [−1, 1].
   Δs_i = +Δ for replaced tokens, −Δ for the others; s_l ← s_l + logit((Δs + 1) / 2);
   importance = softmax(s_l).
   The paper uses Δp = p_o − p_r itself, which is at most ±2·p_o per step: for a target of p = 0.01 (or
   a continuation of several tokens, whose joint p is tiny) the update barely moves the random initial
   scores and probes stop late or never. The relative change is scale-free, equals the paper's update
   as p_o → 1, and keeps its sign and its bound; we chose it over log-probabilities, which are
   unbounded and would need a squashing of their own. Targets below p = 0.05 are flagged.
3. Stop the probe when keeping only its top-N tokens (all others replaced) still puts the target in
   the model's top-k predictions; or after max_steps.
The importance is averaged over the probes that stopped (over all of them, with a note, if none did).
For a continuation of several tokens, p is the probability of the whole continuation and the stop
test asks every target token to be in the top-k at its position.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .text_methods import TokenAttribution
from .text_task import TextTask

EPS = 1e-6
LOW_PROBABILITY = 0.05


def reagent(task: TextTask, sampler, replacing_ratio: float = 0.3, keep_top_n: int = 5, stop_top_k: int = 3,
            max_steps: int = 300, num_probes: int = 16, seed: int = 0) -> TokenAttribution:
    t0 = time.perf_counter()
    f0, r0 = task.cost.forwards, task.cost.rows
    gen = torch.Generator().manual_seed(seed)
    n, first = task.n_features, task.first
    prompt = task.prompt_ids[None].cpu()
    p_o = float(task.logprob_ids(prompt.to(task.device)).exp())
    logit_s = torch.rand(num_probes, n, generator=gen, dtype=torch.float64)
    steps_taken = np.full(num_probes, max_steps)
    done = torch.zeros(num_probes, dtype=torch.bool)
    keep = min(keep_top_n, n)
    for step in range(max_steps):
        active = (~done).nonzero().squeeze(-1)
        if len(active) == 0:
            break
        P = len(active)
        ids = prompt.expand(P, -1).clone()
        feat_mask = torch.rand(P, n, generator=gen) < replacing_ratio
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[:, first:] = feat_mask
        replaced = sampler.replace(ids, mask, gen)
        p_r = task.logprob_ids(replaced.to(task.device)).exp().double().cpu()
        dp = ((p_o - p_r) / max(p_o, 1e-300)).clamp(-1, 1)[:, None]
        ds = torch.where(feat_mask, dp, -dp)
        q = ((ds + 1) / 2).clamp(EPS, 1 - EPS)
        logit_s[active] += torch.log(q / (1 - q))
        s = torch.softmax(logit_s[active], dim=-1)
        top = s.topk(keep, dim=-1).indices
        kept = torch.zeros(P, n, dtype=torch.bool).scatter_(1, top, True)
        stop_mask = torch.zeros_like(ids, dtype=torch.bool)
        stop_mask[:, first:] = ~kept
        ok = task.targets_in_topk(sampler.replace(ids, stop_mask, gen).to(task.device), stop_top_k).cpu()
        for probe in active[ok].tolist():
            steps_taken[probe] = step + 1
        done[active[ok]] = True
    importance = torch.softmax(logit_s, dim=-1)
    converged = int(done.sum())
    scores = (importance[done] if converged else importance).mean(0).numpy()
    notes = {"replacement": sampler.name, "replacement_label": getattr(sampler, "label", sampler.name),
             "probes": num_probes, "converged_probes": converged, "replacing_ratio": replacing_ratio,
             "keep_top_n": keep_top_n, "stop_top_k": stop_top_k, "max_steps": max_steps,
             "median_steps": float(np.median(steps_taken)), "p_target": p_o}
    warnings = []
    if p_o < LOW_PROBABILITY:
        warnings.append(f"the target is unlikely (p = {p_o:.2g} < {LOW_PROBABILITY}): its attributions explain a "
                        f"prediction the model hardly makes")
    if not converged:
        warnings.append("no probe met the stopping condition: averaged over all probes")
    if warnings:
        notes["warning"] = "; ".join(warnings)
    cost = {"forward_passes": task.cost.forwards - f0, "backward_passes": 0, "sequences": task.cost.rows - r0}
    return TokenAttribution("reagent", scores, cost, time.perf_counter() - t0, notes)
