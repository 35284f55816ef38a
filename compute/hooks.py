"""Hook names, read in one place (TransformerLens's names: `blocks.L.attn.hook_z`, `blocks.L.hook_resid_post`,
...; the zoo's image nets name theirs the same way, see compute/zoo_nets.py).

- which layer a hook belongs to, and where a forward pass can stop once it has been reached;
- hook_z's heads: activations [batch, pos, heads, d_head] are read with the heads concatenated
  ([batch, pos, heads * d_head], as the activation cache and SAEs see them) and split back per head;
- what a hook's vectors do to the residual stream: residual-stream hooks are in it already, hook_z
  reaches it through W_O, mlp.hook_post through W_out; other hooks (hook_q, patterns) do not write to it.
"""
from __future__ import annotations

import torch

from .errors import BadInput

# Hooks whose vectors are (or are added to) the residual stream as they are.
RESIDUAL_SUFFIXES = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "attn.hook_out", "mlp.hook_out", ".hook_out")


def layer_of(hook: str) -> int | None:
    """L for `blocks.L.…`; None for hooks outside the blocks (hook_embed, ln_final.hook_normalized, …)."""
    parts = hook.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def stop_layer(hook: str) -> int | None:
    """The `stop_at_layer` that still computes the hook: nothing after its block is needed."""
    layer = layer_of(hook)
    return None if layer is None else layer + 1


def is_head_hook(hook: str) -> bool:
    """A hook with one vector per head ([batch, pos, heads, d_head])."""
    return hook.endswith(("attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_result"))


def merge_heads(act: torch.Tensor) -> torch.Tensor:
    """[batch, pos, heads, d_head] -> [batch, pos, heads * d_head]; other shapes unchanged."""
    return act.reshape(*act.shape[:2], -1) if act.dim() > 3 else act


def split_heads(flat: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[..., heads * d_head] -> [..., heads, d_head]."""
    if flat.shape[-1] % n_heads:
        raise BadInput(f"{flat.shape[-1]} dimensions do not split into {n_heads} heads")
    return flat.reshape(*flat.shape[:-1], n_heads, flat.shape[-1] // n_heads)


def check_hook(model, hook: str, model_id: str = "the model") -> None:
    """BadInput naming similar hooks when `hook` is not one of the model's hook points."""
    if hook in model.hook_dict:
        return
    suffix = hook.split(".")[-1]
    near = [h for h in model.hook_dict if h.endswith(suffix)][:4]
    raise BadInput(f"unknown hook '{hook}' for {model_id}" + (f"; e.g. {', '.join(near)}" if near else
                                                             "; e.g. blocks.0.hook_resid_post, blocks.0.attn.hook_z"))


@torch.no_grad()
def activations_at(model, hook: str, tokens: torch.Tensor) -> torch.Tensor:
    """[batch, pos, d] at the hook (heads concatenated), running the model only as far as the hook's block."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == hook, stop_at_layer=stop_layer(hook))
    return merge_heads(cache[hook])


def to_residual(vectors: torch.Tensor, model, hook: str) -> tuple[torch.Tensor | None, str]:
    """Vectors in the hook's (flattened) space [n, d_hook] as residual-stream vectors [n, d_model], and how
    they got there; None when the hook does not write to the residual stream."""
    vectors = vectors.detach().float()
    layer = layer_of(hook)
    if hook.endswith("attn.hook_z") and layer is not None:
        W_O = model.W_O[layer].detach().float().to(vectors.device)  # [heads, d_head, d_model]
        per_head = vectors.reshape(len(vectors), W_O.shape[0], W_O.shape[1])
        return torch.einsum("fhd,hdm->fm", per_head, W_O), "decoder · W_O (all heads)"
    if hook.endswith("mlp.hook_post") and layer is not None:
        return vectors @ model.W_out[layer].detach().float().to(vectors.device), "decoder · W_out"
    if hook.endswith(RESIDUAL_SUFFIXES) or hook == "hook_embed":
        return vectors, "decoder direction"
    return None, f"{hook} does not write to the residual stream"
