"""Projected gradient descent (Madry et al. 2018) in the L∞ ball, for adversarial training and for measuring
robust accuracy: x' = clip_[lo,hi](Π_ε(x' + α · sign ∇ CE(f(x'), y))), from a random start in the ball."""
from __future__ import annotations

import torch


def pgd(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, alpha: float | None = None,
        lo: float = 0.0, hi: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    was_training = net.training
    net.eval()
    start = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1).to(x.device) * eps
    adv = (x + start).clamp(lo, hi).detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(net(adv), y)
        grad, = torch.autograd.grad(loss, adv)
        adv = torch.min(torch.max(adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(lo, hi).detach()
    net.train(was_training)
    return adv


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.0, steps: int = 20,
             seed: int = 0, batch: int = 512) -> float:
    """Clean accuracy (eps = 0) or accuracy under a PGD attack of `steps` steps."""
    g = torch.Generator().manual_seed(seed)
    right = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        if eps > 0:
            xb = pgd(net, xb, yb, eps, steps, generator=g)
        with torch.no_grad():
            right += int((net(xb).argmax(-1) == yb).sum())
    return right / max(len(x), 1)
