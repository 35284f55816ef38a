"""Building the bases of a sequence of node layers, from the output back (rib's calculate_interaction_rotations
with basis_formula "jacobian", integration "gradient"; the PCA baseline is its "svd" basis with centring).

Normalisations as rib's: G = Σ_{x,p} f̄ᵀ f̄ / (N·P) with f̄ = f − μ (μ's bias slot 0); M′ = Σ_x Σ_r Σ_s
J_{r,s,j} J_{r,s,j′} / (N·P_in), r over every (output position, output basis direction), J the Jacobian
of the next layer's basis functions f̂^{l+1} = section(f^l) C^{l+1} with respect to f^l (the constant
slot included). The last node layer (`logits`) stays in its neuron basis (rib: rotate_final_node_layer
false).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .linalg import Basis, masked_eigendecompose, sorted_lambda_matrices, whitening
from .sections import LOGITS, Section

BASIS_KINDS = ("lib", "ib", "pca")


@dataclass
class Activations:
    """Node-layer activations with the constant slot: {layer: [N, P, d + 1]} (logits: [N, P, vocab])."""
    by_layer: dict[str, torch.Tensor]

    def gram_and_mean(self, layer: str) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(G, μ with the bias slot's 1, G's eigendecomposition). The eigenpairs come from the SVD of the
        centred activations: the Gram's null directions (the data of a small model lies in a subspace) then
        come out near 1e-30 rather than at the Gram summation's rounding (~1e-15, rib's very threshold), so
        the first truncation keeps the numerical rank."""
        f = self.by_layer[layer]
        n, p, d = f.shape
        mean = f.reshape(-1, d).mean(0)
        mean[-1] = 0.0  # centred except the bias slot
        centred = (f - mean).reshape(-1, d) / (n * p) ** 0.5
        gram = centred.T @ centred
        _, s, vh = torch.linalg.svd(centred, full_matrices=True)
        values = torch.zeros(d, dtype=torch.float64)
        values[: len(s)] = s ** 2
        mean = mean.clone()
        mean[-1] = 1.0  # the centring matrix's convention: the bias slot's value
        return gram, mean, (values, vh.T)


def collect_activations(first: torch.Tensor, sections: list[Section]) -> Activations:
    """Run the sections from the first node layer's activations [N, P, d + 1]."""
    out = {sections[0].start: first}
    f = first
    with torch.no_grad():
        for s in sections:
            f = s.run(f)
            out[s.end] = f
    return Activations(out)


def basis_jacobian_M(section: Section, f_in: torch.Tensor, C_out: torch.Tensor | None,
                     chunk: int = 4096) -> torch.Tensor:
    """M′ [d_in + 1, d_in + 1] = Σ_x Σ_{t,i} Σ_s J J′ / (N · P_in): one backward pass per output (position,
    direction) over a chunk of the data, as rib's calc_basis_jacobian with one-hot sources."""
    n, p_in, d_in = f_in.shape
    M = torch.zeros(d_in, d_in, dtype=torch.float64)
    for start in range(0, n, chunk):
        f = f_in[start : start + chunk].detach().clone().requires_grad_(True)
        out = section.run(f)
        out = out @ C_out if C_out is not None else out  # [b, P', k]
        flat = out.reshape(len(f), -1)
        for r in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[:, r].sum(), f, retain_graph=r + 1 < flat.shape[1])
            M += torch.einsum("bsj,bsk->jk", g, g)
    return M / (n * p_in)


@dataclass
class BuildResult:
    kind: str
    node_layers: list[str]
    bases: dict[str, Basis]
    grams: dict[str, torch.Tensor] = field(default_factory=dict)


def build_bases(kind: str, sections: list[Section], acts: Activations, threshold: float = 1e-15,
                progress=None) -> BuildResult:
    """LIB ("lib": M from the next layer's LIB functions), the Interaction Basis ("ib": from the final
    layer's functions, rib's naive gradient flow) or PCA ("pca": the centred Gram eigenbasis)."""
    if kind not in BASIS_KINDS:
        raise ValueError(f"unknown basis '{kind}'; use one of {', '.join(BASIS_KINDS)}")
    layers = [sections[0].start] + [s.end for s in sections]
    bases: dict[str, Basis] = {}
    grams = {}
    last = layers[-1]
    bases[last] = Basis(None, None, orig_dim=int(acts.by_layer[last].shape[-1]))
    if last != LOGITS:
        raise ValueError("the last node layer must be the logits (rib's unrotated output)")
    for i in range(len(sections) - 1, -1, -1):
        layer = sections[i].start
        if progress:
            progress((len(sections) - i) / len(sections), f"{kind}: {layer}")
        gram, mean, eig = acts.gram_and_mean(layer)
        grams[layer] = gram
        w = whitening(gram, mean, threshold, eig)
        if kind == "pca":
            bases[layer] = Basis(w.W, w.W_pinv, orig_dim=len(gram), W=w.W, gram_eigenvalues=w.gram_eigenvalues)
            continue
        if kind == "lib":
            section, C_out = sections[i], bases[sections[i].end].C
        else:  # the Interaction Basis: Jacobians of the final layer's functions
            section, C_out = _composed(sections[i:]), None
        M_dash = basis_jacobian_M(section, acts.by_layer[layer], C_out)
        M = w.R_pinv @ M_dash @ w.R_pinv.T
        n_masked = 1  # the constant direction (centred bases)
        Lambda, V = masked_eigendecompose(M, n_masked)
        L, L_inv = sorted_lambda_matrices(Lambda, threshold, ignore_first_n=n_masked)
        bases[layer] = Basis(w.R @ V @ L, L_inv @ V.T @ w.R_pinv, orig_dim=len(gram), W=w.W, Lambda=Lambda,
                             gram_eigenvalues=w.gram_eigenvalues)
    return BuildResult(kind, layers, {k: bases[k] for k in layers}, grams)


def _composed(sections: list[Section]) -> Section:
    def run(f):
        for s in sections:
            f = s.run(f)
        return f
    return Section(sections[0].start, sections[-1].end, run)


def squared_edges(section: Section, f_in: torch.Tensor, C_in: torch.Tensor, C_in_pinv: torch.Tensor,
                  C_out: torch.Tensor | None, chunk: int = 4096) -> torch.Tensor:
    """E [k_out, k_in] = Σ_x Σ_t (Σ_s ∂f̂^{l+1}_{t,i}/∂f̂^l_{s,j} · f̂^l_{s,j})² / (N · P_in): the squared
    attribution (gradient × activation, rib's edge_formula "squared" with α = 1) of each next-layer basis
    function to each basis function here, in the bases' own coordinates (f̂ = f C, section read on f̂ C⁺)."""
    n, p_in, _ = f_in.shape
    E = None
    for start in range(0, n, chunk):
        f_hat = (f_in[start : start + chunk] @ C_in).detach().clone().requires_grad_(True)
        out = section.run(f_hat @ C_in_pinv)
        out = out @ C_out if C_out is not None else out  # [b, P', k_out]
        if E is None:
            E = torch.zeros(out.shape[-1], f_hat.shape[-1], dtype=torch.float64)
        for t in range(out.shape[1]):
            for i in range(out.shape[2]):
                (g,) = torch.autograd.grad(out[:, t, i].sum(), f_hat, retain_graph=True)
                E[i] += ((g * f_hat).sum(1) ** 2).sum(0).detach()
    return E / (n * p_in)
