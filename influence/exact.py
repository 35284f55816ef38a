"""Exact influence for a small classifier: the damped Gauss–Newton matrix built explicitly in float64.

G = (1/N) Σ_n J_nᵀ H_n J_n over the training set, J_n = ∂ logits_n / ∂θ, H_n = diag(p_n) − p_n p_nᵀ (the Hessian
of cross-entropy in the logits, so G is also the true Fisher that EK-FAC estimates with sampled labels), and
score(q, m) = ∇θ L(q)ᵀ (G + λI)⁻¹ ∇θ L(m) — kronfluence's convention: no minus sign, positive = upweighting m
lowers the query loss (helpful), not divided by N. θ are the parameters of the named modules only (what the
approximations track), so the comparison is like for like. Memory is P² doubles: keep P to a few thousand.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

MAX_EXACT_PARAMETERS = 20_000


def tracked_parameters(model: nn.Module, modules: list[str]) -> dict[str, torch.Tensor]:
    named = dict(model.named_modules())
    params = {}
    for m in modules:
        for p_name, p in named[m].named_parameters(recurse=False):
            params[f"{m}.{p_name}"] = p.detach()
    return params


def _functions(model: nn.Module, params: dict[str, torch.Tensor]):
    frozen = {k: v.detach().double() for k, v in model.state_dict().items() if k not in params}
    model = model.double()

    def logits(theta, x):
        return functional_call(model, {**frozen, **theta}, (x.unsqueeze(0),)).squeeze(0)

    def loss(theta, x, y):
        return nn.functional.cross_entropy(logits(theta, x).unsqueeze(0), y.unsqueeze(0))

    return logits, loss


def gauss_newton(model: nn.Module, modules: list[str], x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The mean GGN over the training inputs x, [P, P] float64."""
    model = _copy(model)
    params = {k: v.double() for k, v in tracked_parameters(model, modules).items()}
    n_params = sum(v.numel() for v in params.values())
    if n_params > MAX_EXACT_PARAMETERS:
        raise ValueError(f"exact influence needs P² memory; {n_params:,} parameters is over {MAX_EXACT_PARAMETERS:,}")
    logits, _ = _functions(model, params)
    G = torch.zeros(n_params, n_params, dtype=torch.float64)
    jac = vmap(jacrev(logits), in_dims=(None, 0))
    for lo in range(0, len(x), batch):
        xb = x[lo : lo + batch].double()
        J = torch.cat([v.reshape(v.shape[0], v.shape[1], -1) for v in jac(params, xb).values()], dim=-1)  # [B, C, P]
        p = torch.softmax(vmap(logits, in_dims=(None, 0))(params, xb), dim=-1)  # [B, C]
        H = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
        G += torch.einsum("bcp,bcd,bdq->pq", J, H, J)
    return G / len(x)


def loss_gradients(model: nn.Module, modules: list[str], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example gradients of the cross-entropy, [N, P] float64."""
    model = _copy(model)
    params = {k: v.double() for k, v in tracked_parameters(model, modules).items()}
    _, loss = _functions(model, params)
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x.double(), y)
    return torch.cat([v.reshape(len(x), -1) for v in g.values()], dim=1)


def influence_scores(G: torch.Tensor, query_grads: torch.Tensor, train_grads: torch.Tensor,
                     damping: float) -> torch.Tensor:
    """[Q, N]: ∇L(q)ᵀ (G + λI)⁻¹ ∇L(m)."""
    A = G + damping * torch.eye(len(G), dtype=G.dtype)
    ihvp = torch.linalg.solve(A, query_grads.T).T  # [Q, P]
    return ihvp @ train_grads.T


def kronecker_influence(model: nn.Module, modules: list[str], x: torch.Tensor, query_grads: torch.Tensor,
                        train_grads: torch.Tensor, damping: float, eigen_correct: bool = True) -> torch.Tensor:
    """[Q, N] influence with K-FAC (`eigen_correct=False`) or EK-FAC, written out from Grosse et al. Eq. 16–20
    in float64 with the expectation over the model's labels taken exactly (Σ_c p_c …) instead of sampled:
    per nn.Linear layer, A = E[ā āᵀ] (ā = [a, 1]), S = E_y[Ds Dsᵀ], their eigenbases Q_A, Q_S, and
    Λ = E_y[(Q_Sᵀ Ds āᵀ Q_A)²] (EK-FAC) or λ_S λ_Aᵀ (K-FAC); the damped inverse divides by Λ + λ in that basis.
    The gradients are laid out as `loss_gradients` lays them (each module's weight, then its bias)."""
    model = _copy(model).double()
    named = dict(model.named_modules())
    inputs, outputs = {}, {}
    def keep(name):
        def hook(mod, inp, out):
            inputs[name], outputs[name] = inp[0].detach(), out
        return hook

    hooks = [named[m].register_forward_hook(keep(m)) for m in modules]
    try:
        logits = model(x.double())
    finally:
        for h in hooks:
            h.remove()
    n, n_classes = logits.shape
    p = torch.softmax(logits.detach(), -1)
    a_bar = {m: torch.cat([inputs[m], torch.ones(n, 1, dtype=torch.float64)], 1) for m in modules}
    ds = {m: [] for m in modules}  # per class c: ∂ CE(logits, c) / ∂ s for every example, [N, out]
    for c in range(n_classes):
        loss = nn.functional.cross_entropy(logits, torch.full((n,), c), reduction="sum")
        for m, g in zip(modules, torch.autograd.grad(loss, [outputs[m] for m in modules], retain_graph=True)):
            ds[m].append(g.detach())
    blocks = []
    for m in modules:
        A = a_bar[m].T @ a_bar[m] / n
        S = sum((p[:, c, None] * ds[m][c]).T @ ds[m][c] for c in range(n_classes)) / n
        ea, QA = torch.linalg.eigh(A)
        es, QS = torch.linalg.eigh(S)
        if eigen_correct:
            ra = (a_bar[m] @ QA) ** 2  # [N, in+1]
            lam = sum((p[:, c, None] * (ds[m][c] @ QS) ** 2).T @ ra for c in range(n_classes)) / n  # [out, in+1]
        else:
            lam = torch.outer(es.clamp(min=0), ea.clamp(min=0))
        blocks.append((m, QA, QS, lam, named[m].weight.shape))
    out = torch.zeros(len(query_grads), len(train_grads), dtype=torch.float64)
    offset = 0
    for m, QA, QS, lam, (n_out, n_in) in blocks:
        size = n_out * n_in + n_out

        def as_matrix(g):  # [K, out*in + out] -> [K, out, in+1]
            w, b = g[:, offset: offset + n_out * n_in], g[:, offset + n_out * n_in: offset + size]
            return torch.cat([w.reshape(-1, n_out, n_in), b.reshape(-1, n_out, 1)], 2)

        q = QS @ ((QS.T @ as_matrix(query_grads) @ QA) / (lam + damping)) @ QA.T
        out += torch.einsum("qij,nij->qn", q, as_matrix(train_grads))
        offset += size
    return out


def mean_eigenvalue(G: torch.Tensor) -> float:
    return float(torch.trace(G) / len(G))


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()
