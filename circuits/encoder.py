"""An SAE's pre-activation as an affine function of its input, split per attention head.

Direct feature attribution needs the encoder to be linear in the input (up to a bias): true for SAELens's
standard, TopK and JumpReLU SAEs without run-time activation normalisation. The linear part is read off the
SAE itself (its pre-activations of the unit vectors minus that of zero), so a rescaling by decoder norm or a
constant input scale is included without naming each option; `check_affine` says when an SAE is not affine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compute.errors import BadInput


@torch.no_grad()
def pre_activation(sae, x: torch.Tensor) -> torch.Tensor:
    """The SAE's own pre-activations (before TopK / threshold / ReLU) of x [n, d_in] -> [n, d_sae]."""
    got = {}

    def grab(act, hook):
        got["pre"] = act.detach()
        return act

    with sae.hooks(fwd_hooks=[("hook_sae_acts_pre", grab)]):
        sae.encode(x.to(sae.W_dec.device, sae.W_dec.dtype))
    return got["pre"].float()


@dataclass
class AffineEncoder:
    """pre(x) = x @ weight + bias, weight [d_in, d_sae] (float32)."""
    weight: torch.Tensor
    bias: torch.Tensor

    def per_head(self, n_heads: int) -> torch.Tensor:
        """[heads, d_head, d_sae]: the rows of the weight that read each head's z."""
        d_in = self.weight.shape[0]
        if d_in % n_heads:
            raise BadInput(f"the SAE reads {d_in} dimensions, which do not split into {n_heads} heads")
        return self.weight.reshape(n_heads, d_in // n_heads, -1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.weight + self.bias


@torch.no_grad()
def affine_encoder(sae) -> AffineEncoder:
    d_in = int(sae.cfg.d_in)
    zero = pre_activation(sae, torch.zeros(1, d_in))[0]
    weight = torch.cat([pre_activation(sae, torch.eye(d_in)[i:i + 256]) for i in range(0, d_in, 256)]) - zero
    return AffineEncoder(weight.float().cpu(), zero.float().cpu())


@torch.no_grad()
def check_affine(sae, enc: AffineEncoder, x: torch.Tensor, rtol: float = 1e-3) -> float:
    """The largest |pre(x) - enc(x)| relative to the pre-activations' scale; BadInput when the SAE is not
    affine in its input (for instance one that normalises each activation vector)."""
    x = x[:256].float()
    want = pre_activation(sae, x).cpu()
    err = float((want - enc(x.cpu())).abs().max() / want.abs().max().clamp_min(1e-12))
    if err > rtol:
        raise BadInput(f"this SAE's pre-activation is not linear in its input (error {err:.2g}; it may normalise "
                       f"each activation at run time): direct feature attribution needs a linear encoder")
    return err
