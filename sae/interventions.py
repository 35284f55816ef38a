"""Hooks that steer or ablate an SAE's features at its hook.

Activations at the hook may have extra trailing dimensions (hook_z: [.., heads, d_head]); the SAE
sees them with the heads concatenated, as in the activation cache, and whatever we write back is
reshaped to match. Where a decoder direction goes in the residual stream: compute.hooks.to_residual.
"""
from __future__ import annotations

import torch

from compute.hooks import merge_heads


def steering_hook(sae, add: dict[int, float] | None = None, ablate: list[int] | tuple[int, ...] = (),
                  positions: slice | None = None):
    """x -> x + Σ c_f · W_dec[f]  (add)  and  x -> x - Σ_{f in ablate} z_f(x) · W_dec[f]  (zero those features,
    keeping the SAE's error term). Zeroing every feature leaves the error term plus the decoder bias."""
    add = {int(f): float(c) for f, c in (add or {}).items() if c != 0}
    ablate = sorted({int(f) for f in ablate})
    W_dec = sae.W_dec.detach()
    steer = None
    if add:
        idx = torch.tensor(list(add), device=W_dec.device)
        coef = torch.tensor(list(add.values()), device=W_dec.device, dtype=W_dec.dtype)
        steer = coef @ W_dec[idx]
    abl = torch.tensor(ablate, device=W_dec.device, dtype=torch.long) if ablate else None

    def hook(act, hook=None):
        shape = act.shape
        x = merge_heads(act)
        out = x.clone()
        sel = (slice(None), positions if positions is not None else slice(None))
        if abl is not None:
            z = sae.encode(x[sel].to(W_dec.dtype))
            out[sel] = out[sel] - (z[..., abl] @ W_dec[abl]).to(out.dtype)
        if steer is not None:
            out[sel] = out[sel] + steer.to(out.dtype)
        return out.reshape(shape)

    return hook


@torch.no_grad()
def greedy_generate(bridge, tokens: torch.Tensor, max_new_tokens: int, fwd_hooks=(), stop_id: int | None = None,
                    n_ctx: int | None = None) -> tuple[list[int], torch.Tensor]:
    """Greedy continuation (hooks applied at every step, over the whole sequence); returns the new ids and
    the next-token logits of the prompt's last position."""
    seq = tokens.clone()
    first_logits = None
    new: list[int] = []
    for _ in range(max_new_tokens):
        window = seq[:, -n_ctx:] if n_ctx else seq
        logits = bridge.run_with_hooks(window, fwd_hooks=list(fwd_hooks)) if fwd_hooks else bridge(window)
        last = logits[0, -1].float()
        if first_logits is None:
            first_logits = last.clone()
        nxt = int(last.argmax())
        new.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]], device=seq.device)], dim=1)
        if stop_id is not None and nxt == stop_id:
            break
    if first_logits is None:
        logits = bridge.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks)) if fwd_hooks else bridge(tokens)
        first_logits = logits[0, -1].float()
    return new, first_logits
