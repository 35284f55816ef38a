"""SAE error decomposition ("dark matter", Engels, Riggs & Tegmark 2024, arXiv 2410.14670).

With x the activation and e = x - SAE(x) the SAE's error (the paper regresses SAE(x) - x, the same
up to sign), fit by ordinary least squares on one set of tokens and report on another:

- vector regression e ≈ x A (no intercept, as in the paper's `run_lstsq`): the linear error x A and
  the nonlinear error e - x A; R² pooled over dimensions (fraction of error variance that is linearly
  predictable) and averaged per dimension (the paper's figure);
- norm regression ‖e‖² ≈ [x, 1] w: R² (how much of the error norm is linearly predictable);
- per token: ‖e‖, ‖linear‖, ‖nonlinear‖ and the nonlinear share ‖nonlinear‖² / ‖e‖².
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ErrorRegression:
    A: torch.Tensor  # [d, d]: linear error = x @ A
    r2_vector: float
    r2_vector_per_dim: float
    r2_norm: float
    linear_share_of_error_sq: float  # Σ‖xA‖² / Σ‖e‖² on the evaluation tokens
    error_norm: np.ndarray
    linear_norm: np.ndarray
    nonlinear_norm: np.ndarray

    def summary(self) -> dict:
        return {"r2_vector": self.r2_vector, "r2_vector_per_dim": self.r2_vector_per_dim, "r2_norm": self.r2_norm,
                "linear_share_of_error_sq": self.linear_share_of_error_sq,
                "mean_error_norm": float(self.error_norm.mean()),
                "mean_nonlinear_share": float(np.mean(self.nonlinear_norm ** 2 / np.maximum(self.error_norm ** 2,
                                                                                            1e-12)))}


def _r2(y: torch.Tensor, pred: torch.Tensor) -> tuple[float, float]:
    res = (y - pred).pow(2)
    tot = (y - y.mean(0)).pow(2)
    pooled = 1 - float(res.sum() / tot.sum().clamp_min(1e-30))
    per_dim = 1 - res.sum(0) / tot.sum(0).clamp_min(1e-30)
    return pooled, float(per_dim.mean())


@torch.no_grad()
def fit_error_regression(x_fit: torch.Tensor, e_fit: torch.Tensor, x_eval: torch.Tensor,
                         e_eval: torch.Tensor) -> ErrorRegression:
    xf, ef, xe, ee = (t.double().cpu() for t in (x_fit, e_fit, x_eval, e_eval))
    if len(xf) <= xf.shape[1]:
        raise ValueError(f"the fit needs more tokens ({len(xf)}) than dimensions ({xf.shape[1]})")
    A = torch.linalg.lstsq(xf, ef).solution
    lin = xe @ A
    r2_vec, r2_dim = _r2(ee, lin)
    ones_f = torch.ones(len(xf), 1, dtype=xf.dtype)
    ones_e = torch.ones(len(xe), 1, dtype=xe.dtype)
    w = torch.linalg.lstsq(torch.cat([xf, ones_f], 1), ef.pow(2).sum(1, keepdim=True)).solution
    norm_sq = ee.pow(2).sum(1, keepdim=True)
    r2_norm, _ = _r2(norm_sq, torch.cat([xe, ones_e], 1) @ w)
    nonlin = ee - lin
    return ErrorRegression(
        A=A.float(), r2_vector=r2_vec, r2_vector_per_dim=r2_dim, r2_norm=r2_norm,
        linear_share_of_error_sq=float(lin.pow(2).sum() / ee.pow(2).sum().clamp_min(1e-30)),
        error_norm=ee.norm(dim=1).numpy(), linear_norm=lin.norm(dim=1).numpy(),
        nonlinear_norm=nonlin.norm(dim=1).numpy())


SPLICES = ("none", "linear", "nonlinear", "both")


def split_hook(sae, A: torch.Tensor, keep: str, first_position: int = 0):
    """Splice the SAE in at a hook, adding back part of its error e = x - x̂: keep = "linear" -> x̂ + xA,
    "nonlinear" -> x̂ + (e - xA), "both" -> x̂ + xA + (e - xA) = x (a check), "none" -> x̂.

    Only positions from `first_position` on are spliced: the map A was fitted there, and earlier positions
    (BOS above all, an attention sink every later position reads) keep their clean activations."""
    if keep not in SPLICES:
        raise ValueError(f"keep must be one of {SPLICES}")

    def hook(act, hook=None):
        shape = act.shape
        x = act.reshape(shape[0], shape[1], -1).to(sae.W_dec.dtype)  # [batch, pos, d_in], heads merged
        xs = x[:, first_position:]
        x_hat = sae.decode(sae.encode(xs))
        lin = xs @ A.to(xs.device, xs.dtype)
        parts = {"none": x_hat, "linear": x_hat + lin, "nonlinear": x_hat + (xs - x_hat - lin),
                 "both": x_hat + lin + (xs - x_hat - lin)}
        out = x.clone()
        out[:, first_position:] = parts[keep]
        return out.reshape(shape).to(act.dtype)
    return hook
