"""A transformer as a chain of folded-bias steps between node layers (rib's SequentialTransformer with
fold_bias), read from a TransformerLens HookedTransformer or a Hugging Face GPT-NeoX model (the zoo's LMs):
both are first read into the same weights (TransformerWeights), so one attention, one MLP and one LayerNorm
serve every architecture.

Every activation is [.., P, d + 1] with a constant in the last slot; every bias b is applied as c·b and the
constant passes through each step unchanged (1 on data; to the Jacobian each bias is a direction of the input).
Node layers, in forward order, per block L: `blocks.L.hook_resid_pre` (rib's ln1.L), with a LayerNorm
`blocks.L.ln1_out` (rib's ln1_out.L: [variance, stream, 1], the LayerNorm's input with its variance computed,
before the normalisation), `blocks.L.hook_resid_mid` (ln2.L), `blocks.L.ln2_out`; then the last
`blocks.L.hook_resid_post` (rib's unembed when there is no final LayerNorm), `ln_final_out`, and `logits`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from compute.errors import BadInput

from .chain import LOGITS, Chain, Step

ACTIVATIONS = {"relu": torch.relu, "gelu": torch.nn.functional.gelu,
               "gelu_new": lambda x: torch.nn.functional.gelu(x, approximate="tanh")}


@dataclass
class LayerNormWeights:
    w: torch.Tensor | None  # None: no affine weight (TransformerLens's LNPre)
    b: torch.Tensor | None
    eps: float


@dataclass
class Rotary:
    """Rotary position embedding on the first `dim` of each head's dims, halves rotated (GPT-NeoX's)."""
    dim: int
    inv_freq: torch.Tensor  # [dim / 2]

    def apply(self, x: torch.Tensor) -> torch.Tensor:  # [.., P, h, e], positions 0..P-1
        n = x.shape[-3]
        freqs = torch.outer(torch.arange(n, dtype=torch.float64, device=x.device), self.inv_freq.double())
        emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]  # [P, 1, dim]
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        half = self.dim // 2
        rotated_half = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
        return torch.cat([rot * emb.cos() + rotated_half * emb.sin(), rest], dim=-1)


@dataclass
class AttentionWeights:
    W_Q: torch.Tensor  # [h, d, e]
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor  # [h, e, d]
    b_Q: torch.Tensor  # [h, e]
    b_K: torch.Tensor
    b_V: torch.Tensor
    b_O: torch.Tensor  # [d]
    scale: float  # scores are divided by it
    rotary: Rotary | None


@dataclass
class MLPWeights:
    W_in: torch.Tensor  # [d, m]
    b_in: torch.Tensor
    W_out: torch.Tensor  # [m, d]
    b_out: torch.Tensor
    act: str


@dataclass
class BlockWeights:
    ln1: LayerNormWeights | None
    attn: AttentionWeights
    ln2: LayerNormWeights | None
    mlp: MLPWeights


@dataclass
class TransformerWeights:
    embed: Callable[[torch.Tensor], torch.Tensor]  # token ids [N, P] -> resid_pre 0 [N, P, d] (float64)
    blocks: list[BlockWeights]
    ln_final: LayerNormWeights | None
    W_U: torch.Tensor  # [d, vocab]
    b_U: torch.Tensor | None


def _with_constant(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, c], dim=-1)


def variance_step(f: torch.Tensor) -> torch.Tensor:
    """stream [.., d + 1] -> [variance, stream, 1] (rib's LayerNormIn; the constant slot left out)."""
    x = f[..., :-1]
    return torch.cat([x.var(-1, unbiased=False, keepdim=True), f], dim=-1)


def _normalised(ln: LayerNormWeights, v: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """rib's LayerNormOut with the affine part folded: (x − mean x)/√(v + ε)·w + c·b."""
    y = (x - x.mean(-1, keepdim=True)) / torch.sqrt(torch.relu(v) + ln.eps)
    if ln.w is not None:
        y = y * ln.w
    return y + c * ln.b if ln.b is not None else y


def _split_ln(f: torch.Tensor, ln: LayerNormWeights | None):
    """(the block's input after the LayerNorm, the residual stream, the constant) of an ln-out activation
    [v, x, c], or of a plain [x, c] when there is no LayerNorm."""
    if ln is None:
        x, c = f[..., :-1], f[..., -1:]
        return x, x, c
    v, x, c = f[..., :1], f[..., 1:-1], f[..., -1:]
    return _normalised(ln, v, x, c), x, c


def attention_step(a: AttentionWeights, ln: LayerNormWeights | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """(ln1_out or resid_pre) -> resid_mid: x + Σ_h softmax(q kᵀ/scale, causal) v W_O + b_O."""

    def run(f: torch.Tensor) -> torch.Tensor:
        h, x, c = _split_ln(f, ln)
        q = torch.einsum("...pd,hde->...phe", h, a.W_Q) + c[..., None] * a.b_Q
        k = torch.einsum("...pd,hde->...phe", h, a.W_K) + c[..., None] * a.b_K
        v = torch.einsum("...pd,hde->...phe", h, a.W_V) + c[..., None] * a.b_V
        if a.rotary is not None:
            q, k = a.rotary.apply(q), a.rotary.apply(k)
        scores = torch.einsum("...qhe,...khe->...hqk", q, k) / a.scale
        n = f.shape[-2]
        causal = torch.ones(n, n, dtype=torch.bool, device=f.device).tril()
        pattern = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        z = torch.einsum("...hqk,...khe->...qhe", pattern, v)
        # b_O rides on V's extra slot, the source positions' constant, split evenly over the heads
        # (rib's fold_attn_V / fold_attn_O): b_O · Σ_h Σ_src A_h[dest, src] c_src / n_heads, b_O at c = 1
        carried = torch.einsum("...hqk,...k->...q", pattern, c[..., 0]) / a.W_O.shape[0]
        out = torch.einsum("...qhe,hed->...qd", z, a.W_O) + carried[..., None] * a.b_O
        return _with_constant(x + out, c)

    return run


def _root_of_one(act) -> float:
    """r with act(r) = 1 (1 for ReLU), by bisection: rib's folded MLP feeds c·r to an extra hidden unit."""
    lo, hi = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(4.0, dtype=torch.float64)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(act(mid)) < 1.0 else (lo, mid)
    return float((lo + hi) / 2)


def mlp_step(m: MLPWeights, ln: LayerNormWeights | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """(ln2_out or resid_mid) -> resid_post: x + act(h W_in + c·b_in) W_out + act(c·r) b_out with act(r) = 1
    (rib's fold_mlp_in / fold_mlp_out: b_out hangs on an extra hidden unit)."""
    act = ACTIVATIONS.get(m.act)
    if act is None:
        raise BadInput(f"interaction bases support {', '.join(ACTIVATIONS)} MLPs, not {m.act}")
    root = 1.0 if m.act == "relu" else _root_of_one(act)

    def run(f: torch.Tensor) -> torch.Tensor:
        h, x, c = _split_ln(f, ln)
        return _with_constant(x + act(h @ m.W_in + c * m.b_in) @ m.W_out + act(c * root) * m.b_out, c)

    return run


def unembed_step(W_U: torch.Tensor, b_U: torch.Tensor | None, ln: LayerNormWeights | None):
    def run(f: torch.Tensor) -> torch.Tensor:
        h, _, c = _split_ln(f, ln)
        return h @ W_U + (c * b_U if b_U is not None else 0.0)

    return run


def transformer_chain(w: TransformerWeights) -> Chain:
    has_ln = w.blocks[0].ln1 is not None
    steps: list[Step] = []
    last = len(w.blocks) - 1
    for L, b in enumerate(w.blocks):
        if has_ln:
            steps.append(Step(f"blocks.{L}.hook_resid_pre", variance_step))
            steps.append(Step(f"blocks.{L}.ln1_out", attention_step(b.attn, b.ln1), attention=True))
            steps.append(Step(f"blocks.{L}.hook_resid_mid", variance_step))
            steps.append(Step(f"blocks.{L}.ln2_out", mlp_step(b.mlp, b.ln2)))
        else:
            steps.append(Step(f"blocks.{L}.hook_resid_pre", attention_step(b.attn, None), attention=True))
            steps.append(Step(f"blocks.{L}.hook_resid_mid", mlp_step(b.mlp, None)))
    steps.append(Step(f"blocks.{last}.hook_resid_post", variance_step if has_ln else unembed_step(w.W_U, w.b_U, None)))
    if has_ln:
        steps.append(Step("ln_final_out", unembed_step(w.W_U, w.b_U, w.ln_final)))

    def embed(ids: torch.Tensor) -> torch.Tensor:
        x = w.embed(ids)
        return _with_constant(x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device))

    def canonical(name: str) -> str:
        """rib's names and ours: ln1.L, ln1_out.L, ln2.L, ln2_out.L, unembed, output -> ours."""
        head, _, tail = name.partition(".")
        if tail.isdigit() and head in ("ln1", "ln2"):
            return f"blocks.{tail}.hook_resid_{'pre' if head == 'ln1' else 'mid'}"
        if tail.isdigit() and head in ("ln1_out", "ln2_out"):
            return f"blocks.{tail}.{head}"
        if name in ("unembed", "hook_unembed"):
            return "ln_final_out" if has_ln else f"blocks.{last}.hook_resid_post"
        if name in ("output", LOGITS):
            return LOGITS
        if name.startswith("blocks.") and name.endswith(".hook_resid_post") and name.split(".")[1].isdigit():
            L = int(name.split(".")[1])
            return name if L == last else f"blocks.{L + 1}.hook_resid_pre"
        return name

    return Chain(steps, LOGITS, embed, canonical,
                 variance_layers=frozenset(s.start for s in steps if s.start.endswith("_out")))


def _double(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().double()


def weights_of_hooked_transformer(model) -> TransformerWeights:
    """A TransformerLens HookedTransformer: standard positions, LayerNorm, LNPre or none, no rotary."""
    cfg = model.cfg
    norm = getattr(cfg, "normalization_type", None)
    if norm not in (None, "LN", "LNPre"):
        raise BadInput(f"interaction bases support LayerNorm (LN, LNPre) or none, not {norm}")
    if cfg.positional_embedding_type not in ("standard",):
        raise BadInput(f"interaction bases on TransformerLens models support standard positional embeddings, "
                       f"not {cfg.positional_embedding_type}")
    if getattr(cfg, "parallel_attn_mlp", False) or getattr(cfg, "attn_only", False):
        raise BadInput("interaction bases need sequential attention and MLP blocks")

    def ln_of(module) -> LayerNormWeights | None:
        if norm is None:
            return None
        return LayerNormWeights(_double(getattr(module, "w", None)), _double(getattr(module, "b", None)), cfg.eps)

    blocks = []
    for blk in model.blocks:
        a, m = blk.attn, blk.mlp
        attn = AttentionWeights(*(_double(t) for t in (a.W_Q, a.W_K, a.W_V, a.W_O, a.b_Q, a.b_K, a.b_V, a.b_O)),
                                scale=cfg.d_head ** 0.5 if cfg.use_attn_scale else 1.0, rotary=None)
        blocks.append(BlockWeights(ln_of(blk.ln1) if norm else None, attn, ln_of(blk.ln2) if norm else None,
                                   MLPWeights(_double(m.W_in), _double(m.b_in), _double(m.W_out), _double(m.b_out),
                                              cfg.act_fn)))
    W_E, W_pos = _double(model.embed.W_E), _double(model.pos_embed.W_pos)
    return TransformerWeights(lambda ids: W_E[ids] + W_pos[: ids.shape[-1]], blocks,
                              ln_of(model.ln_final) if norm else None, _double(model.W_U), _double(model.b_U))


def _unwrapped(module):
    """The Hugging Face module itself: a TransformerBridge replaces the model's modules by wrappers that
    keep the original as `_original_component`."""
    while hasattr(module, "_original_component"):
        module = module._original_component
    return module


def weights_of_gpt_neox(hf) -> TransformerWeights:
    """A Hugging Face GPTNeoXForCausalLM (the zoo's LMs): LayerNorm, rotary, sequential residual."""
    cfg = hf.config
    if cfg.use_parallel_residual:
        raise BadInput("interaction bases need sequential attention and MLP blocks; this GPT-NeoX model runs "
                       "them in parallel (use_parallel_residual), so it has no resid_mid node layer")
    h = cfg.num_attention_heads
    e = cfg.hidden_size // h
    core = _unwrapped(hf.gpt_neox)
    rotary_dim = int(e * cfg.rope_parameters.get("partial_rotary_factor", 1.0)) if getattr(cfg, "rope_parameters", None) \
        else int(e * getattr(cfg, "rotary_pct", 1.0))
    inv_freq = _unwrapped(core.rotary_emb).inv_freq.detach().double()
    if len(inv_freq) * 2 != rotary_dim:
        raise BadInput(f"unexpected rotary embedding ({len(inv_freq)} frequencies for {rotary_dim} rotary dims)")

    def ln_of(m) -> LayerNormWeights:
        m = _unwrapped(m)
        return LayerNormWeights(_double(m.weight), _double(m.bias), m.eps)

    blocks = []
    for layer in core.layers:
        layer = _unwrapped(layer)
        att = _unwrapped(layer.attention)
        qkv, dense = _unwrapped(att.query_key_value), _unwrapped(att.dense)
        W = qkv.weight.detach().double().view(h, 3, e, -1)  # rows per head: q, k, v
        bias = qkv.bias
        b = (bias.detach().double().view(h, 3, e) if bias is not None
             else torch.zeros(h, 3, e, dtype=torch.float64))
        W_O = dense.weight.detach().double().T.reshape(h, e, -1)
        b_O = _double(dense.bias) if dense.bias is not None else torch.zeros(W_O.shape[-1], dtype=torch.float64)
        attn = AttentionWeights(W[:, 0].transpose(1, 2), W[:, 1].transpose(1, 2), W[:, 2].transpose(1, 2), W_O,
                                b[:, 0], b[:, 1], b[:, 2], b_O, scale=e ** 0.5, rotary=Rotary(rotary_dim, inv_freq))
        mlp = _unwrapped(layer.mlp)
        up, down = _unwrapped(mlp.dense_h_to_4h), _unwrapped(mlp.dense_4h_to_h)
        blocks.append(BlockWeights(ln_of(layer.input_layernorm), attn, ln_of(layer.post_attention_layernorm),
                                   MLPWeights(up.weight.detach().double().T, _double(up.bias),
                                              down.weight.detach().double().T, _double(down.bias), cfg.hidden_act)))
    W_E = _unwrapped(core.embed_in).weight.detach().double()
    out = _unwrapped(getattr(hf, "embed_out", None) or hf.lm_head)
    return TransformerWeights(lambda ids: W_E[ids], blocks, ln_of(core.final_layer_norm), out.weight.detach().double().T,
                              _double(out.bias) if out.bias is not None else None)
