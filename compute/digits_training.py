"""The training recipe of the zoo's digits classifiers (assets/scripts/train_digits.py), shared with the
analyses that retrain a copy (influence: flipped labels, the linear datamodeling score's half-subsets)."""
from __future__ import annotations

import torch


def train_digits(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 60,
                 epsilon: float | None = None, pgd_steps: int = 7, progress=None) -> torch.nn.Module:
    """AdamW (lr 2e-3, weight decay 1e-4), batches of 64, light Gaussian input noise; with `epsilon`, PGD
    examples in the L∞ ball instead (Madry et al. 2018). Draws from torch's global generator, as the script
    always did (so the committed weights stay reproducible): seed it before building the net."""
    from attribution.adversarial import pgd

    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            if epsilon is not None:
                xb = pgd(net, x[idx], y[idx], epsilon, pgd_steps)
            else:
                xb = x[idx] + 0.05 * torch.randn_like(x[idx])  # light noise: a smoother classifier
            loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if progress is not None:
            progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}")
    return net.eval()
