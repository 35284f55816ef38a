"""Which heads a hook_z SAE feature reads and writes (Kissane et al. 2024).

- weight share: the feature's decoder row split per head, h_f = ||W_dec[f, head]|| / sum_heads ||W_dec[f, head]||
  (the paper's weight-based head attribution; shares sum to 1);
- activation share: over the tokens where the feature fires, the part of its pre-activation that each head's
  z contributes through the encoder (z_head . W_enc[head, f]), divided by what all heads contribute (shares sum
  to 1; a head that pushes the feature down has a negative share).
"""
from __future__ import annotations

import torch

from .encoder import AffineEncoder


def weight_shares(W_dec: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[d_sae, heads]: each feature's decoder norm per head over the sum of those norms."""
    norms = W_dec.detach().float().reshape(W_dec.shape[0], n_heads, -1).norm(dim=-1)
    return norms / norms.sum(-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def activation_contributions(sae, enc: AffineEncoder, acts: torch.Tensor, n_heads: int,
                             batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """(contribution [d_sae, heads], fires [d_sae]): each head's summed contribution to each feature's
    pre-activation over the tokens where the feature fires, and on how many tokens it fired."""
    W = enc.per_head(n_heads)  # [heads, d_head, d_sae]
    total = torch.zeros(W.shape[-1], n_heads)
    fires = torch.zeros(W.shape[-1])
    for i in range(0, len(acts), batch):
        x = acts[i:i + batch].float()
        on = (sae.encode(x.to(sae.W_dec.device, sae.W_dec.dtype)) > 0).float().cpu()  # [n, d_sae]
        fires += on.sum(0)
        z = x.reshape(len(x), n_heads, -1)
        for h in range(n_heads):
            total[:, h] += ((z[:, h] @ W[h]) * on).sum(0)
    return total, fires


def shares(contribution: torch.Tensor) -> torch.Tensor:
    """Rows of per-head contributions as shares of their sum (NaN where a feature never fired)."""
    s = contribution.sum(-1, keepdim=True)
    return torch.where(s.abs() > 1e-12, contribution / s, torch.full_like(contribution, float("nan")))
