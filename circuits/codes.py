"""Circuits from discrete SAE codes (O'Neill & Bui 2024, charlieoneill11/sae-circuits).

Each head's residual-stream write (z_head · W_O[head]), averaged over positions, is one vector per (prompt,
head). One small SAE shared by all heads (ReLU, L1 penalty, full-batch Adam; the paper: 200 latents, λ = 0.02,
500 epochs, trained on 5–10 prompts) encodes them; a vector's code is its most active latent. A head's node
score is the share of its codes seen only on positive prompts, |P \\ N| / |P ∪ N|; an edge's score between
heads of different layers is the same share over the code pairs the two heads take on one prompt.

Inputs are divided by their mean norm before training (so λ means the same for any model's scale); the codes
do not depend on that scale otherwise. A vector on which no latent fires gets its own code (-1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .patching import Counter, head_list, head_name, run_z
from .tasks import TaskTokens


@torch.no_grad()
def head_writes(model, z: dict[int, torch.Tensor]) -> torch.Tensor:
    """[n, heads_total, d_model]: each head's write to the residual stream, mean over positions."""
    out = []
    for layer, h in head_list(model):
        W_O = model.W_O[layer, h].detach().float()  # [d_head, d_model]
        out.append((z[layer][:, :, h].float() @ W_O).mean(1))
    return torch.stack(out, 1).cpu()


@dataclass
class CodeSAE:
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    scale: float
    final_mse: float

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x / self.scale - self.b_dec) @ self.W_enc + self.b_enc)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        f = self.latents(x)
        return torch.where(f.max(-1).values > 0, f.argmax(-1), torch.full(f.shape[:-1], -1))


def train_code_sae(x: torch.Tensor, n_latents: int, l1: float, epochs: int, lr: float, seed: int) -> CodeSAE:
    x = x.reshape(-1, x.shape[-1]).float()
    scale = float(x.norm(dim=-1).mean().clamp_min(1e-12))
    x = x / scale
    g = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    W_dec = torch.randn(n_latents, d, generator=g)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    params = [W_dec.T.clone().requires_grad_(), torch.zeros(n_latents, requires_grad=True),
              W_dec.clone().requires_grad_(), x.mean(0).clone().requires_grad_()]
    opt = torch.optim.Adam(params, lr=lr)
    W_enc, b_enc, W_d, b_dec = params
    mse = torch.tensor(0.0)
    for _ in range(epochs):
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        x_hat = f @ W_d + b_dec
        mse = ((x_hat - x) ** 2).sum(-1).mean()
        loss = mse + l1 * f.abs().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return CodeSAE(*(p.detach() for p in params), scale=scale, final_mse=float(mse.detach()))


def _share_only_positive(pos: set, neg: set) -> float:
    union = pos | neg
    return len(pos - neg) / len(union) if union else 0.0


def code_scores(model, writes_pos: torch.Tensor, writes_neg: torch.Tensor, sae: CodeSAE) -> tuple[dict, dict, dict]:
    """({head: node score}, {(head_a, head_b): edge score}, {head: evidence})."""
    names = [head_name(*h) for h in head_list(model)]
    layers = [h[0] for h in head_list(model)]
    cp, cn = sae.codes(writes_pos), sae.codes(writes_neg)  # [n, heads]
    nodes, evidence = {}, {}
    for j, name in enumerate(names):
        p, n = set(cp[:, j].tolist()), set(cn[:, j].tolist())
        nodes[name] = _share_only_positive(p, n)
        mp, mn = writes_pos[:, j].mean(0), writes_neg[:, j].mean(0)
        evidence[name] = {"codes_positive": len(p), "codes_negative": len(n), "codes_only_positive": len(p - n),
                          "codes_shared": len(p & n),
                          # how differently the head writes on positives and negatives, relative to its write
                          "write_change": float((mp - mn).norm() / mp.norm().clamp_min(1e-12))}
    edges = {}
    for a, na in enumerate(names):
        for b, nb in enumerate(names):
            if layers[a] < layers[b]:
                pp = set(zip(cp[:, a].tolist(), cp[:, b].tolist()))
                pn = set(zip(cn[:, a].tolist(), cn[:, b].tolist()))
                edges[(na, nb)] = _share_only_positive(pp, pn)
    return nodes, edges, evidence


def codes_method(model, task: TaskTokens, sae_examples: int, n_latents: int, l1: float, epochs: int, lr: float,
                 seed: int, counter: Counter) -> dict:
    """Node and edge scores: one forward pass over the positives and one over the negatives, then the SAE."""
    dev = next(model.parameters()).device
    wp, wn = [], []
    for pos, neg, _, _ in task.groups:
        wp.append(head_writes(model, run_z(model, pos.to(dev), counter)[1]))
        wn.append(head_writes(model, run_z(model, neg.to(dev), counter)[1]))
    wp, wn = torch.cat(wp), torch.cat(wn)
    m = min(sae_examples, len(wp))
    sae = train_code_sae(torch.cat([wp[:m], wn[:m]]), n_latents, l1, epochs, lr, seed)
    nodes, edges, evidence = code_scores(model, wp, wn, sae)
    return {"nodes": nodes, "edges": edges, "evidence": evidence, "sae_mse": sae.final_mse,
            "sae_examples": 2 * m}
