"""Auxiliary losses that revive dead latents (aux_k, Gao et al. 2024) and underused ones (aux_zipf).

aux_k (as in SAELens/EleutherAI, no variance normalisation):
    e = x - x̂ (detached);  z_aux = the k_aux largest pre-activations among *dead* latents (per token);
    L_aux = coef · min(n_dead / k_aux, 1) · mean_t ‖e_t - W_decᵀ z_aux,t‖²,   k_aux = d_in / 2.

aux_zipf (Ayonrinde 2024 names it as aux_k generalised to dead *and underutilised* latents; the paper's
exact formula was not available to us, so this is our definition, written down here):
    1. d_f = the feature's firing density (EMA over training). Rank the features by d (r = 1 is the densest).
    2. Fit a Zipf law log d = log C - α log r by least squares on the head of the ranking (ranks up to F/2,
       positive densities only): trained SAEs' densities follow such a law except in the low-density tail.
    3. Expected density at the feature's rank: ê_f = C r_f^-α;  shortfall s_f = clip(1 - d_f / ê_f, 0, 1);
       dead latents have s_f = 1.
    4. Candidates: dead latents and those with s_f > 1/2 (firing at under half the rate their rank predicts).
    5. z_aux = the k_aux largest values of s_f · z'_tf among candidates (per token), taken at z'_tf;
       L_aux = coef · min(n_candidates / k_aux, 1) · mean_t ‖e_t - W_decᵀ z_aux,t‖².
    With no underused latents (s_f = 0 for all live ones) this is exactly aux_k; the shortfall weighting
    only changes *which* candidates a token recruits, favouring the most starved ones.
"""
from __future__ import annotations

import torch

UNDERUSED_SHORTFALL = 0.5


def _aux_reconstruction(hidden_pre: torch.Tensor, weights: torch.Tensor, candidates: torch.Tensor,
                        residual: torch.Tensor, W_dec: torch.Tensor, k_aux: int) -> torch.Tensor:
    n_cand = int(candidates.sum())
    if n_cand == 0:
        return hidden_pre.new_tensor(0.0)
    scale = min(n_cand / k_aux, 1.0)
    k = min(k_aux, n_cand)
    scores = torch.where(candidates[None], hidden_pre * weights[None], -torch.inf)
    idx = scores.topk(k, dim=-1, sorted=False).indices
    z_aux = torch.zeros_like(hidden_pre).scatter(-1, idx, hidden_pre.gather(-1, idx))
    recons = z_aux @ W_dec
    return scale * (recons - residual).pow(2).sum(-1).mean()


def aux_k_loss(sae_in, sae_out, hidden_pre, W_dec, dead_mask, coef: float) -> torch.Tensor:
    if dead_mask is None:
        return hidden_pre.new_tensor(0.0)
    residual = (sae_in - sae_out).detach()
    ones = torch.ones(hidden_pre.shape[-1], device=hidden_pre.device, dtype=hidden_pre.dtype)
    return coef * _aux_reconstruction(hidden_pre, ones, dead_mask, residual, W_dec, sae_in.shape[-1] // 2)


def zipf_fit(density: torch.Tensor) -> tuple[float, float] | None:
    """(log C, alpha) of log d = log C - alpha log r over the head of the ranking, or None if too few points."""
    d = density.detach().double().sort(descending=True).values
    head = d[: max(2, d.numel() // 2)]
    ranks = torch.arange(1, head.numel() + 1, dtype=torch.float64, device=d.device)
    pos = head > 0
    if int(pos.sum()) < 8:
        return None
    x, y = ranks[pos].log(), head[pos].log()
    xm, ym = x.mean(), y.mean()
    slope = ((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum().clamp_min(1e-12)
    return float(ym - slope * xm), float(-slope)


def underuse_shortfall(density: torch.Tensor, dead_mask: torch.Tensor | None) -> torch.Tensor:
    """s_f in [0, 1]: how far below its Zipf-expected density each feature fires (1 for dead ones)."""
    fit = zipf_fit(density)
    if fit is None:
        expected = torch.full_like(density, float(density.mean().clamp_min(1e-12)))
    else:
        log_c, alpha = fit
        ranks = torch.empty_like(density, dtype=torch.float64)
        ranks[density.argsort(descending=True, stable=True)] = torch.arange(
            1, density.numel() + 1, dtype=torch.float64, device=density.device)
        expected = (log_c - alpha * ranks.log()).exp().to(density.dtype)
    s = (1 - density / expected.clamp_min(1e-12)).clamp(0, 1)
    if dead_mask is not None:
        s = torch.where(dead_mask, torch.ones_like(s), s)
    return s


def aux_zipf_loss(sae_in, sae_out, hidden_pre, W_dec, density, dead_mask, coef: float) -> torch.Tensor:
    s = underuse_shortfall(density.to(hidden_pre.dtype), dead_mask).to(hidden_pre.dtype)
    candidates = s > UNDERUSED_SHORTFALL
    if dead_mask is not None:
        candidates = candidates | dead_mask
    residual = (sae_in - sae_out).detach()
    return coef * _aux_reconstruction(hidden_pre, s, candidates, residual, W_dec, sae_in.shape[-1] // 2)
