"""Recursive direct feature attribution, one step back: which residual-stream SAE features feed an
attention-output (hook_z) feature through the value path.

With the layer's attention pattern and its LN1 scale frozen at the values the prompt gives them, the
feature's per-head pre-activation at `dest` is an affine function of the residual stream entering the layer:

    pre_{f,h}(dest) = sum_src G_h[src] . resid[src] + c_h

G_h[src] = d pre_{f,h}(dest) / d resid[src] is read by autograd with the pattern and the scale detached
(LN1's centring, weight and bias, W_V, b_V and the SAE encoder are kept as they are, so this works on any
TransformerLens-hooked model without naming its weights); c_h is the same pre-activation with resid = 0.
Writing the residual stream through an upstream SAE, resid[src] = sum_j a_j[src] W_dec[j] + b_dec + err[src]:

    pre_f(dest) = sum_{h,src,j} a_j[src] (W_dec[j] . G_h[src])   upstream features
                + sum_{h,src} b_dec . G_h[src]                     the upstream SAE's decoder bias
                + sum_{h,src} err[src] . G_h[src]                  what the upstream SAE does not explain
                + sum_h c_h + b_f                                  value/LN biases, the encoder's constant

Exact: these parts add up to the pre-activation (checked against a separate forward pass, not by
construction: G comes from autograd and c_h from a run at resid = 0). Approximate: the pattern (the QK
path) and the LN1 scale also depend on resid, so a term is what the feature loses if upstream feature j is
removed at src *with the pattern and the scale held*; `recomputed_change` measures the loss when they are
recomputed, which is what an ablation would see.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from compute.errors import BadInput


def residual_hooks(layer: int) -> tuple[str, ...]:
    """The hook names that carry the residual stream entering `layer` (the same tensor)."""
    return (f"blocks.{layer}.hook_resid_pre",) + ((f"blocks.{layer - 1}.hook_resid_post",) if layer else ())


def check_upstream_hook(hook: str, layer: int) -> None:
    if hook not in residual_hooks(layer):
        raise BadInput(f"recursive DFA needs a residual-stream SAE on the stream entering layer {layer} "
                       f"({' or '.join(residual_hooks(layer))}); this SAE reads {hook}")


@dataclass
class ValuePath:
    """One prompt's residual stream entering `layer` and, per head, its gradient G_h and constant c_h."""
    resid: torch.Tensor  # [pos, d_model]
    grads: torch.Tensor  # [heads, pos, d_model]
    constant: torch.Tensor  # [heads]
    head_pre: torch.Tensor  # [heads]: sum_src G_h . resid + c_h, each head's part without the encoder's bias


class _Frozen:
    """Runs `layer` of `model` on one row with the residual stream entering it replaced, and the pattern and
    the LN1 scale held at their recorded values (or recomputed)."""

    def __init__(self, model, layer: int, tokens: torch.Tensor):
        self.model, self.layer, self.tokens = model, layer, tokens
        self.resid_hook = f"blocks.{layer}.hook_resid_pre"
        self.held = [h for h in (f"blocks.{layer}.ln1.hook_scale", f"blocks.{layer}.attn.hook_pattern")
                     if h in model.hook_dict]
        self.record = {}

        def keep(name):  # by the name asked for: the bridge's hook.name may be an alias
            def hook_fn(act, hook):
                self.record[name] = act.detach().clone()
                return act
            return hook_fn

        with torch.no_grad():
            self.z_of(None, hold=False, extra=[(h, keep(h)) for h in (self.resid_hook, *self.held)])

    def z_of(self, resid: torch.Tensor | None, hold: bool = True, extra=()) -> torch.Tensor:
        """[pos, heads, d_head] of the layer for resid [pos, d_model] (None: the model's own)."""
        out = {}

        def grab(act, hook):
            out["z"] = act
            return act

        hooks = list(extra) + [(f"blocks.{self.layer}.attn.hook_z", grab)]
        if resid is not None:
            hooks.append((self.resid_hook, lambda act, hook: resid[None].to(act.dtype)))
        if hold:
            hooks += [(h, (lambda name: lambda act, hook: self.record[name])(h)) for h in self.held]
        with warnings.catch_warnings():
            # the bridge notes that an edited LN scale is rebuilt from the hooked values: that is the point
            warnings.simplefilter("ignore", UserWarning)
            self.model.run_with_hooks(self.tokens, fwd_hooks=hooks, stop_at_layer=self.layer + 1)
        return out["z"][0]

    @property
    def resid(self) -> torch.Tensor:
        return self.record[self.resid_hook][0]


def value_path(model, layer: int, tokens: torch.Tensor, weight: torch.Tensor, dest: int) -> tuple[ValuePath, _Frozen]:
    """G_h and c_h for the feature whose encoder rows per head are `weight` [heads, d_head], at `dest`."""
    if f"blocks.{layer}.hook_resid_pre" not in model.hook_dict:
        raise BadInput(f"the model has no blocks.{layer}.hook_resid_pre")
    frozen = _Frozen(model, layer, tokens)
    weight = weight.to(frozen.resid.device, torch.float32)
    x = frozen.resid.float().clone().requires_grad_(True)
    with torch.enable_grad():
        per_head = (frozen.z_of(x)[dest].float() * weight).sum(-1)  # [heads]
        grads = torch.stack([torch.autograd.grad(per_head[h], x, retain_graph=h + 1 < len(per_head))[0]
                             for h in range(len(per_head))])
    with torch.no_grad():
        constant = (frozen.z_of(torch.zeros_like(x))[dest].float() * weight).sum(-1)
    return ValuePath(x.detach().cpu(), grads.cpu(), constant.cpu(), per_head.detach().cpu()), frozen


@dataclass
class UpstreamTerms:
    """The decomposition of the docstring for one (feature, dest)."""
    features: torch.Tensor  # [heads, pos, d_up]: a_j[src] (W_dec[j] . G_h[src]), zero where j is off
    acts: torch.Tensor  # [pos, d_up]: the upstream SAE's activations
    decoder_bias: torch.Tensor  # [heads, pos]
    error: torch.Tensor  # [heads, pos]
    constant: torch.Tensor  # [heads]
    linearity_error: float  # |sum_src G.resid + c - the frozen forward|, per head, max

    def parts(self) -> dict[str, float]:
        return {"upstream features": float(self.features.sum()), "upstream SAE decoder bias": float(self.decoder_bias.sum()),
                "upstream SAE error": float(self.error.sum()), "value and LN biases (resid = 0)": float(self.constant.sum())}


@torch.no_grad()
def upstream_terms(path: ValuePath, sae) -> UpstreamTerms:
    dev, dt = sae.W_dec.device, sae.W_dec.dtype
    resid = path.resid
    acts = sae.encode(resid.to(dev, dt))
    W_dec, b_dec = sae.W_dec.float().cpu(), sae.b_dec.float().cpu()
    recon = acts.float().cpu() @ W_dec + b_dec
    decoded = sae.decode(acts).float().cpu()
    if not torch.allclose(recon, decoded, atol=1e-4 * (1 + float(decoded.abs().max()))):
        raise BadInput("the upstream SAE's decoder is not W_dec a + b_dec (it rescales its output at run time): "
                       "recursive DFA needs a linear decoder")
    acts = acts.float().cpu()
    G = path.grads  # [heads, pos, d_model]
    feats = torch.einsum("hpd,jd->hpj", G, W_dec) * acts[None]
    err = resid - recon
    linear = (G * resid[None]).sum((1, 2)) + path.constant
    return UpstreamTerms(feats, acts, G @ b_dec, (G * err[None]).sum(-1), path.constant,
                         float((linear - path.head_pre).abs().max()))


@torch.no_grad()
def removal_change(frozen: _Frozen, weight: torch.Tensor, dest: int, src: int, direction: torch.Tensor,
                   hold: bool) -> float:
    """How much the feature's pre-activation at dest falls when `direction` is taken out of the residual stream
    at src, with the pattern and LN scale held (equals the term) or recomputed (what an ablation sees)."""
    resid = frozen.resid.float().clone()
    full = (frozen.z_of(resid, hold=hold)[dest].float() * weight.to(resid.device)).sum()
    resid[src] -= direction.to(resid.device)
    less = (frozen.z_of(resid, hold=hold)[dest].float() * weight.to(resid.device)).sum()
    return float(full - less)
