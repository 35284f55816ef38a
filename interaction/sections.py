"""A TransformerLens model cut into sections at node layers, with the biases folded in (rib's
SequentialTransformer with fold_bias): every node-layer activation is [.., d + 1] with a constant in the
last slot, every bias b is applied as c·b with c that constant, and the constant passes through each
section unchanged (so it is 1 on data and the Jacobian sees each bias as a direction of the input).

Node layers are hook names: `blocks.L.hook_resid_pre` (rib's ln1.L), `blocks.L.hook_resid_mid` (ln2.L),
`blocks.L.hook_resid_post` / `unembed` (the input of the unembedding), and `logits` (rib's output, no
constant slot). From `last_pos_from` on only the last position is kept (rib's last_pos_module_type).
Supported here: models without LayerNorm (normalization_type None), standard attention and MLP blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from compute.errors import BadInput

LOGITS = "logits"


def _with_constant(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, c], dim=-1)


def attention_block(model, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """resid_pre [.., P, d+1] -> resid_mid [.., P, d+1]: x + Σ_h softmax(q kᵀ/√d_head, causal) v W_O + b_O,
    with b_Q, b_K, b_V times each position's constant and b_O carried by the attention (see below)."""
    a = model.blocks[layer].attn
    W_Q, W_K, W_V, W_O = a.W_Q.double(), a.W_K.double(), a.W_V.double(), a.W_O.double()
    b_Q, b_K, b_V, b_O = a.b_Q.double(), a.b_K.double(), a.b_V.double(), a.b_O.double()
    scale = model.cfg.d_head ** 0.5 if model.cfg.use_attn_scale else 1.0

    def run(f: torch.Tensor) -> torch.Tensor:
        x, c = f[..., :-1], f[..., -1:]
        q = torch.einsum("...pd,hde->...phe", x, W_Q) + c[..., None] * b_Q
        k = torch.einsum("...pd,hde->...phe", x, W_K) + c[..., None] * b_K
        v = torch.einsum("...pd,hde->...phe", x, W_V) + c[..., None] * b_V
        scores = torch.einsum("...qhe,...khe->...hqk", q, k) / scale
        n = f.shape[-2]
        causal = torch.ones(n, n, dtype=torch.bool, device=f.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        pattern = torch.softmax(scores, dim=-1)
        z = torch.einsum("...hqk,...khe->...qhe", pattern, v)
        # b_O rides on V's extra slot, the source positions' constant, split evenly over the heads
        # (rib's fold_attn_V / fold_attn_O): b_O · Σ_h Σ_src A_h[dest, src] c_src / n_heads, b_O at c = 1
        carried = torch.einsum("...hqk,...k->...q", pattern, c[..., 0]) / W_O.shape[0]
        out = torch.einsum("...qhe,hed->...qd", z, W_O) + carried[..., None] * b_O
        return _with_constant(x + out, c)

    return run


def _root_of_one(act) -> float:
    """r with act(r) = 1 (1 for ReLU), by bisection: rib's folded MLP feeds c·r to an extra hidden unit."""
    lo, hi = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(4.0, dtype=torch.float64)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(act(mid)) < 1.0 else (lo, mid)
    return float((lo + hi) / 2)


def mlp_block(model, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """resid_mid -> resid_post: x + act(x W_in + c·b_in) W_out + act(c·r) b_out with act(r) = 1 (rib's
    fold_mlp_in / fold_mlp_out: b_out hangs on an extra hidden unit)."""
    m = model.blocks[layer].mlp
    W_in, b_in, W_out, b_out = m.W_in.double(), m.b_in.double(), m.W_out.double(), m.b_out.double()
    act = {"relu": torch.relu, "gelu": torch.nn.functional.gelu}.get(model.cfg.act_fn)
    if act is None:
        raise BadInput(f"interaction bases support relu and gelu MLPs, not {model.cfg.act_fn}")
    root = 1.0 if model.cfg.act_fn == "relu" else _root_of_one(act)

    def run(f: torch.Tensor) -> torch.Tensor:
        x, c = f[..., :-1], f[..., -1:]
        return _with_constant(x + act(x @ W_in + c * b_in) @ W_out + act(c * root) * b_out, c)

    return run


def unembed_block(model) -> Callable[[torch.Tensor], torch.Tensor]:
    W_U, b_U = model.W_U.double(), model.b_U.double()

    def run(f: torch.Tensor) -> torch.Tensor:
        return f[..., :-1] @ W_U + f[..., -1:] * b_U

    return run


def node_layer_order(model) -> list[str]:
    """Every node layer this model offers, in forward order."""
    names = []
    for L in range(model.cfg.n_layers):
        names += [f"blocks.{L}.hook_resid_pre", f"blocks.{L}.hook_resid_mid"]
    return names + [f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", LOGITS]


def canonical(name: str, model) -> str:
    """rib's names and ours: ln1.L, ln2.L, unembed, output -> hook names."""
    if name.startswith("ln1."):
        return f"blocks.{int(name[4:])}.hook_resid_pre"
    if name.startswith("ln2."):
        return f"blocks.{int(name[4:])}.hook_resid_mid"
    if name in ("unembed", "hook_unembed"):
        return f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    if name in ("output", LOGITS):
        return LOGITS
    if name.startswith("blocks.") and name.endswith(".hook_resid_post"):
        L = int(name.split(".")[1])
        return name if L == model.cfg.n_layers - 1 else f"blocks.{L + 1}.hook_resid_pre"
    return name


@dataclass
class Section:
    """The computation from one node layer to the next."""
    start: str
    end: str
    run: Callable[[torch.Tensor], torch.Tensor]  # [b, P, d+1] -> [b, P', d'+1] (or logits)


def build_sections(model, node_layers: list[str], last_pos_from: str | None = None) -> list[Section]:
    """Sections between consecutive node layers (in forward order); from `last_pos_from` on, each
    section's output keeps only the last position."""
    if getattr(model.cfg, "normalization_type", None) is not None:
        raise BadInput(f"interaction bases here need a model without LayerNorm (this one has "
                       f"{model.cfg.normalization_type}); rib's LayerNorm-variance direction is not built yet")
    order = node_layer_order(model)
    layers = [canonical(n, model) for n in node_layers]
    unknown = [n for n, c in zip(node_layers, layers) if c not in order]
    if unknown:
        raise BadInput(f"unknown node layer(s) {', '.join(unknown)}; this model has {', '.join(order)}")
    idx = [order.index(c) for c in layers]
    if idx != sorted(idx) or len(set(idx)) != len(idx):
        raise BadInput("node layers must be distinct and in forward order")
    steps = []  # the primitive blocks between consecutive entries of `order`
    for L in range(model.cfg.n_layers):
        steps += [attention_block(model, L), mlp_block(model, L)]
    steps.append(unembed_block(model))
    cut = order.index(canonical(last_pos_from, model)) if last_pos_from else None
    sections = []
    for a, b in zip(idx, idx[1:]):
        blocks = steps[a:b]
        last = cut is not None and b >= cut

        def run(f, blocks=blocks, last=last, first_index=a):
            for i, block in enumerate(blocks):
                f = block(f)
                if last and first_index + i + 1 >= cut and f.shape[-2] > 1:
                    f = f[..., -1:, :]  # from the cut on, only the last position
            return f
        sections.append(Section(order[a], order[b], run))
    return sections
