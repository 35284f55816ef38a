"""Evaluate an SAE (ours or any SAELens SAE) on held-out activations and spliced into its model.

- Normalised MSE = Σ‖x̂ - x‖² / Σ‖x - x̄‖² (x̄: the mean activation), explained variance = 1 - NMSE.
- L0 per token (mean and distribution): with Feature/Mutual Choice it varies from token to token.
- Feature density over the evaluation tokens; dead = never fired there; underused = firing at
  under half the density its rank predicts under the Zipf law fitted to the head (see aux_losses).
- Spliced into the model at its hook (hook_z heads concatenated): CE loss clean, with the SAE's
  reconstruction, and with the activation zero-ablated; CE loss recovered =
  (CE_zero - CE_sae) / (CE_zero - CE_clean); delta LM loss = CE_sae - CE_clean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from compute.tasks.next_token import mean_next_token_loss

from .aux_losses import UNDERUSED_SHORTFALL, underuse_shortfall


@dataclass
class SAEEval:
    nmse: float
    explained_variance: float
    l0_mean: float
    l0_per_token: np.ndarray
    density: np.ndarray
    dead_fraction: float
    underused_fraction: float
    ce_clean: float | None = None
    ce_sae: float | None = None
    ce_zero: float | None = None

    @property
    def ce_loss_recovered(self) -> float | None:
        if self.ce_clean is None or self.ce_zero is None or self.ce_sae is None:
            return None
        denom = self.ce_zero - self.ce_clean
        return float((self.ce_zero - self.ce_sae) / denom) if abs(denom) > 1e-9 else None

    @property
    def delta_lm_loss(self) -> float | None:
        return None if self.ce_sae is None else float(self.ce_sae - self.ce_clean)

    def summary(self) -> dict:
        return {"nmse": self.nmse, "explained_variance": self.explained_variance, "l0_mean": self.l0_mean,
                "l0_std": float(self.l0_per_token.std()), "dead_fraction": self.dead_fraction,
                "underused_fraction": self.underused_fraction, "ce_clean": self.ce_clean, "ce_sae": self.ce_sae,
                "ce_zero_ablation": self.ce_zero, "ce_loss_recovered": self.ce_loss_recovered,
                "delta_lm_loss": self.delta_lm_loss}


@torch.no_grad()
def reconstruction_stats(sae, acts: torch.Tensor, batch: int = 4096) -> dict:
    sae.eval()
    mean = acts.mean(0)
    err = var = 0.0
    l0, fired = [], torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    for i in range(0, len(acts), batch):
        x = acts[i : i + batch].to(sae.W_dec.device)
        z = sae.encode(x)
        x_hat = sae.decode(z)
        err += float((x_hat - x).pow(2).sum())
        var += float((x - mean.to(x.device)).pow(2).sum())
        nz = (z != 0)
        l0.append(nz.sum(-1).cpu())
        fired += nz.sum(0).cpu()
    l0_t = torch.cat(l0)
    nmse = err / max(var, 1e-12)
    return {"nmse": nmse, "l0": l0_t.numpy(), "density": (fired.float() / len(acts)).numpy()}


def splice_hook(sae):
    """A forward hook that replaces the activation with the SAE's reconstruction (any leading shape)."""
    def hook(act, hook=None):
        shape = act.shape
        flat = act.reshape(-1, sae.cfg.d_in)
        return sae.decode(sae.encode(flat.to(sae.W_dec.dtype))).reshape(shape).to(act.dtype)
    return hook


def spliced_ce(bridge, sae, hook_name: str, tokens: torch.Tensor, batch: int = 8) -> tuple[float, float, float]:
    """(CE clean, CE with the SAE spliced in, CE with the activation zero-ablated), mean per token."""
    zero = lambda act, hook=None: torch.zeros_like(act)  # noqa: E731
    return (mean_next_token_loss(bridge, tokens, batch=batch),
            mean_next_token_loss(bridge, tokens, [(hook_name, splice_hook(sae))], batch=batch),
            mean_next_token_loss(bridge, tokens, [(hook_name, zero)], batch=batch))


def evaluate(sae, acts: torch.Tensor, bridge=None, hook_name: str | None = None,
             tokens: torch.Tensor | None = None) -> SAEEval:
    stats = reconstruction_stats(sae, acts)
    density = torch.from_numpy(stats["density"])
    dead = density == 0
    short = underuse_shortfall(density.double(), dead)
    underused = (short > UNDERUSED_SHORTFALL) & ~dead
    ev = SAEEval(nmse=stats["nmse"], explained_variance=1 - stats["nmse"], l0_mean=float(stats["l0"].mean()),
                 l0_per_token=stats["l0"], density=stats["density"], dead_fraction=float(dead.float().mean()),
                 underused_fraction=float(underused.float().mean()))
    if bridge is not None and hook_name is not None and tokens is not None:
        ev.ce_clean, ev.ce_sae, ev.ce_zero = spliced_ce(bridge, sae, hook_name, tokens)
    return ev
