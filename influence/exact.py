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


def mean_eigenvalue(G: torch.Tensor) -> float:
    return float(torch.trace(G) / len(G))


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()
