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
from .chain import Section

BASIS_KINDS = ("lib", "ib", "pca")


@dataclass
class Activations:
    """Node-layer activations with the constant slot: {layer: [N, P, d + 1]} (logits: [N, P, vocab])."""
    by_layer: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, ...]]  # every layer's, the output's too when it is not kept

    def dim(self, layer: str) -> int:
        return self.shapes[layer][-1]

    def gram_and_mean(self, layer: str, n_fixed: int = 0) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(G, μ with the bias slot's 1, G's eigendecomposition). The eigenpairs come from the SVD of the
        centred activations: the Gram's null directions (the data of a small model lies in a subspace) then
        come out near 1e-30 rather than at the Gram summation's rounding (~1e-15, rib's very threshold), so
        the first truncation keeps the numerical rank. The first `n_fixed` slots (a LayerNorm variance)
        stay basis directions of their own (rib's masked_eigendecompose(G, 1)), with their Gram diagonal."""
        f = self.by_layer[layer]
        n, p, d = f.shape
        mean = f.reshape(-1, d).mean(0)
        mean[-1] = 0.0  # centred except the bias slot
        centred = (f - mean).reshape(-1, d) / (n * p) ** 0.5
        gram = centred.T @ centred
        _, s, vh = torch.linalg.svd(centred[:, n_fixed:], full_matrices=True)
        values = torch.zeros(d - n_fixed, dtype=torch.float64)
        values[: len(s)] = s ** 2
        values = torch.cat([gram.diag()[:n_fixed], values])
        vectors = torch.block_diag(torch.eye(n_fixed, dtype=torch.float64), vh.T)
        mean = mean.clone()
        mean[-1] = 1.0  # the centring matrix's convention: the bias slot's value
        return gram, mean, (values, vectors)


def collect_activations(first: torch.Tensor, sections: list[Section], keep_output: bool = True) -> Activations:
    """Run the sections from the first node layer's activations [N, P, d + 1]. keep_output False: the last
    layer's (a language model's logits, N·P·vocab) are not kept, only their width."""
    out = {sections[0].start: first}
    f = first
    with torch.no_grad():
        for s in sections:
            f = s.run(f)
            out[s.end] = f
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    if not keep_output:
        del out[sections[-1].end]
    return Activations(out, shapes)


@dataclass
class Sources:
    """rib's stochastic sources: instead of one backward pass per output (position t, direction i), ±1
    combinations over positions (`positions` of them per direction) and/or over directions (`hidden` per
    position), drawn per example; both: ±1 everywhere, positions × hidden passes. E[φφᵀ] = I, so the
    estimates of M′ and of the squared edges are unbiased; None: exact."""
    positions: int | None = None
    hidden: int | None = None
    seed: int = 0

    def phis(self, b: int, p: int, k: int, generator: torch.Generator):
        """Yield φ [b, p, k] (one backward pass each) and the weight of its outer product."""
        P, H = self.positions, self.hidden
        weight = 1.0 / ((P or 1) * (H or 1))
        for t in range(P or p):
            for i in range(H or k):
                phi = torch.zeros(b, p, k, dtype=torch.float64)
                pos = slice(None) if P else t
                hid = slice(None) if H else i
                shape = phi[:, pos, hid].shape
                phi[:, pos, hid] = random_signs(shape, generator) if (P or H) else 1.0
                yield phi, weight

    def n_passes(self, p: int, k: int) -> int:
        return (self.positions or p) * (self.hidden or k)


EXACT = Sources()


def random_signs(shape, generator: torch.Generator) -> torch.Tensor:
    """±1 with equal probability (rib's stochastic sources), float64."""
    return (torch.randint(0, 2, shape, generator=generator) * 2 - 1).double()


def basis_jacobian_M(section: Section, f_in: torch.Tensor, C_out: torch.Tensor | None,
                     sources: Sources = EXACT, chunk: int = 4096) -> torch.Tensor:
    """M′ [d_in + 1, d_in + 1] = Σ_x Σ_{t,i} Σ_s J J′ / (N · P_in): one backward pass per output (position,
    direction) over a chunk of the data, as rib's calc_basis_jacobian (with stochastic sources: per φ)."""
    n, p_in, d_in = f_in.shape
    M = torch.zeros(d_in, d_in, dtype=torch.float64)
    gen = torch.Generator().manual_seed(sources.seed)
    for start in range(0, n, chunk):
        f = f_in[start : start + chunk].detach().clone().requires_grad_(True)
        out = section.run(f)
        out = out @ C_out if C_out is not None else out  # [b, P', k]
        for phi, weight in sources.phis(*out.shape, gen):
            (g,) = torch.autograd.grad(out, f, grad_outputs=phi, retain_graph=True)
            M += weight * torch.einsum("bsj,bsk->jk", g, g)
    return M / (n * p_in)


@dataclass
class BuildResult:
    kind: str
    node_layers: list[str]
    bases: dict[str, Basis]
    grams: dict[str, torch.Tensor] = field(default_factory=dict)


def build_bases(kind: str, sections: list[Section], acts: Activations, threshold: float = 1e-15,
                progress=None, variance_layers: frozenset[str] = frozenset(), sources: Sources = EXACT,
                pca_whiten: bool = False) -> BuildResult:
    """LIB ("lib": M from the next layer's LIB functions), the Interaction Basis ("ib": from the final
    layer's functions, rib's naive gradient flow) or PCA ("pca": the centred Gram eigenbasis, rib's "svd"
    baseline; `pca_whiten`: each direction scaled to unit variance, C = R)."""
    if kind not in BASIS_KINDS:
        raise ValueError(f"unknown basis '{kind}'; use one of {', '.join(BASIS_KINDS)}")
    layers = [sections[0].start] + [s.end for s in sections]
    bases: dict[str, Basis] = {}
    grams = {}
    last = layers[-1]
    bases[last] = Basis(None, None, orig_dim=acts.dim(last))  # the output stays in its neuron basis
    for i in range(len(sections) - 1, -1, -1):
        layer = sections[i].start
        if progress:
            progress((len(sections) - i) / len(sections), f"{kind}: {layer}")
        n_var = 1 if layer in variance_layers else 0  # rib's isolate_ln_var at ln-out node layers
        gram, mean, eig = acts.gram_and_mean(layer, n_var)
        grams[layer] = gram
        w = whitening(gram, mean, threshold, eig, n_fixed=n_var)
        if kind == "pca":
            C, C_pinv = (w.R, w.R_pinv) if pca_whiten else (w.W, w.W_pinv)
            bases[layer] = Basis(C, C_pinv, orig_dim=len(gram), W=w.W, gram_eigenvalues=w.gram_eigenvalues)
            continue
        if kind == "lib":
            section, C_out = sections[i], bases[sections[i].end].C
        else:  # the Interaction Basis: Jacobians of the final layer's functions
            section, C_out = _composed(sections[i:]), None
        M_dash = basis_jacobian_M(section, acts.by_layer[layer], C_out, sources)
        M = w.R_pinv @ M_dash @ w.R_pinv.T
        n_masked = 1 + n_var  # the constant direction (centred bases), then the LayerNorm variance
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


def integration_points(n_intervals: int) -> list[tuple[float, float]]:
    """(α, weight): α = 1 alone for 0 intervals (rib's "gradient"), else the trapezoidal rule on [0, 1]."""
    if n_intervals <= 0:
        return [(1.0, 1.0)]
    return [(k / n_intervals, (0.5 if k in (0, n_intervals) else 1.0) / n_intervals) for k in range(n_intervals + 1)]


def squared_edges(section: Section, f_in: torch.Tensor, C_in: torch.Tensor, C_in_pinv: torch.Tensor,
                  C_out: torch.Tensor | None, n_intervals: int = 0, sources: int | None = None, seed: int = 0,
                  chunk: int = 4096) -> torch.Tensor:
    """E [k_out, k_in] = Σ_x Σ_t (Σ_s f̂^l_{s,j} ∫₀¹ ∂f̂^{l+1}_{t,i}/∂f̂^l_{s,j}(α f̂^l) dα)² / (N · P_in): the
    squared integrated-gradient attribution (zero baseline; the folded constant makes it meaningful) of each
    next-layer basis function to each basis function here, in the bases' own coordinates (f̂ = f C, the
    section read on f̂ C⁺). 0 intervals: α = 1 only, gradient × activation (rib's edge_formula "squared",
    the paper's mod-add setting). `sources`: ±1 combinations over output positions instead of the sum over
    t (rib's calc_edge_stochastic), for language models."""
    n, p_in, _ = f_in.shape
    E = None
    gen = torch.Generator().manual_seed(seed)
    points = integration_points(n_intervals)
    for start in range(0, n, chunk):
        f_hat = (f_in[start : start + chunk] @ C_in).detach()
        graphs = []  # one forward per α, kept for the backward passes of every output
        for alpha, w in points:
            x = (alpha * f_hat).requires_grad_(True)
            out = section.run(x @ C_in_pinv)
            graphs.append((x, out @ C_out if C_out is not None else out, w))  # out: [b, P', k_out]
        b, T, k_out = graphs[0][1].shape
        phi = random_signs((b, sources, T), gen) if sources else None
        if E is None:
            E = torch.zeros(k_out, f_hat.shape[-1], dtype=torch.float64)
        for r in range(sources or T):
            for i in range(k_out):
                attribution = torch.zeros(b, f_hat.shape[-1], dtype=torch.float64)
                for x, out, w in graphs:
                    target = (out[:, :, i] * phi[:, r]).sum() if sources else out[:, r, i].sum()
                    (g,) = torch.autograd.grad(target, x, retain_graph=True)
                    attribution += w * (g * f_hat).sum(1)
                E[i] += (attribution ** 2).sum(0)
    return E / (n * p_in * (sources or 1))
