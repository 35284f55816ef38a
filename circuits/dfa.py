"""Direct feature attribution (DFA) by source position for an SAE on `blocks.L.attn.hook_z`.

With the attention pattern frozen, z[dest, head] = sum_src A_head[dest, src] v_head[src], so a feature's
pre-activation at dest is exactly

    pre_f(dest) = sum_head sum_src A_head[dest, src] (v_head[src] . W_enc[head, f])  +  bias_f

(Kissane et al.'s get_per_src_pos_dfa_all_heads; bias_f is the encoder's constant: b_enc minus what b_dec
removes). `AttentionRun` holds one layer's pattern and values for a batch of token rows; the families of
`classify` read where along the source axis a feature's DFA mass sits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from compute.errors import BadInput
from compute.hooks import layer_of

from .encoder import AffineEncoder


@dataclass
class AttentionRun:
    """One layer's attention over token rows: pattern [rows, heads, dest, src], v [rows, src, heads, d_head]."""
    tokens: torch.Tensor  # [rows, pos]
    pattern: torch.Tensor
    v: torch.Tensor

    @property
    def z(self) -> torch.Tensor:
        """[rows, pos, heads * d_head], as the SAE reads it."""
        z = torch.einsum("bhds,bshe->bdhe", self.pattern, self.v)
        return z.reshape(*z.shape[:2], -1)


def hook_layer(hook: str) -> int:
    if not hook.endswith("attn.hook_z") or layer_of(hook) is None:
        raise BadInput(f"this needs an attention-output SAE (one trained on blocks.L.attn.hook_z); this SAE reads "
                       f"{hook}")
    return layer_of(hook)


@torch.no_grad()
def attention_run(model, layer: int, tokens: torch.Tensor, batch: int = 32) -> AttentionRun:
    pat, val = f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_v"
    pats, vals = [], []
    for i in range(0, len(tokens), batch):
        _, cache = model.run_with_cache(tokens[i:i + batch], names_filter=lambda n: n in (pat, val),
                                        stop_at_layer=layer + 1)
        pats.append(cache[pat].float().cpu())
        vals.append(cache[val].float().cpu())
    return AttentionRun(tokens.cpu(), torch.cat(pats), torch.cat(vals))


def dfa_at(run: AttentionRun, enc: AffineEncoder, rows: np.ndarray, dests: np.ndarray, features: np.ndarray,
           chunk: int = 512) -> torch.Tensor:
    """[examples, heads, src]: feature[i]'s DFA at (rows[i], dests[i]) over heads and source positions."""
    n_heads = run.pattern.shape[1]
    W = enc.per_head(n_heads)  # [heads, d_head, d_sae]
    out = []
    for i in range(0, len(rows), chunk):
        r, d, f = (torch.as_tensor(a[i:i + chunk], dtype=torch.long) for a in (rows, dests, features))
        A = run.pattern[r, :, d, :]  # [e, heads, src]
        vw = torch.einsum("eshd,hde->ehs", run.v[r], W[:, :, f])
        out.append(A * vw)
    return torch.cat(out) if out else torch.zeros(0, n_heads, run.pattern.shape[-1])


def dfa_matrix(run: AttentionRun, enc: AffineEncoder, row: int, feature: int) -> torch.Tensor:
    """[heads, dest, src]: the feature's DFA at every destination of one row."""
    W = enc.per_head(run.pattern.shape[1])[:, :, feature]  # [heads, d_head]
    vw = torch.einsum("shd,hd->hs", run.v[row], W)  # [heads, src]
    return run.pattern[row] * vw[:, None, :]


@dataclass(frozen=True)
class FamilyRule:
    """The thresholds of `classify`, stated in the result and editable in the spec."""
    induction_share: float = 0.4  # induction when this share of |DFA| sits on induction sources
    short_window: int = 3  # a source within this many tokens of the destination is short-range
    short_share: float = 0.5  # short-range context when this share sits within the window


def source_shares(dfa: torch.Tensor, tokens: torch.Tensor, dests: np.ndarray, rule: FamilyRule) -> dict:
    """Per example, the shares of |DFA| (summed over heads) on induction sources (src >= 1 whose previous token
    equals the destination token, src - 1 < dest), within the short window, and the mass-weighted distance."""
    mass = dfa.abs().sum(1)  # [e, src]
    e, n_src = mass.shape
    src = torch.arange(n_src)[None, :]
    d = torch.as_tensor(dests, dtype=torch.long)[:, None]
    prev = torch.cat([torch.full((e, 1), -1, dtype=torch.long), tokens[:, :-1]], 1)  # token before each src
    dest_token = tokens.gather(1, d)
    induction = (src >= 1) & (src <= d) & (prev == dest_token) & (src - 1 < d)
    short = (d - src <= rule.short_window) & (src <= d)
    total = mass.sum(1).clamp_min(1e-12)
    return {"induction_share": ((mass * induction).sum(1) / total).numpy(),
            "short_share": ((mass * (short & ~induction)).sum(1) / total).numpy(),
            "mean_distance": ((mass * (d - src).clamp_min(0)).sum(1) / total).numpy()}


def classify(induction_share: float, short_share: float, rule: FamilyRule) -> str:
    if induction_share >= rule.induction_share:
        return "induction"
    if short_share >= rule.short_share:
        return "short-range context"
    return "long-range context"
