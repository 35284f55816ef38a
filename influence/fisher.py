"""The true Fisher's sampled labels, drawn per example: each training example carries its own uniforms (from the
spec's seed and the example's index), and a label is the inverse CDF of the model's predictive distribution at
them. The draws then do not depend on the batch order or on how examples are split over processes, so a
factor fit across processes equals the one-process fit (torch.multinomial on the global generator would give
each process, and each batch order, other labels).
"""
from __future__ import annotations

import torch

FISHER_U = "fisher_u"
_MIX = 0x9E3779B97F4A7C15  # splits the seed's stream into per-example streams


class FisherDraws(torch.utils.data.Dataset):
    """`data` with each example's uniforms: a dict example gains FISHER_U [T] (one per position; `positions`
    from its input_ids), a tuple example (x, y) becomes (x, y, u)."""

    def __init__(self, data, seed: int):
        self.data = data
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.data)

    def _uniforms(self, i: int, n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * _MIX + i) % (2**63 - 1))
        return torch.rand(n, generator=g, dtype=torch.float64)

    def __getitem__(self, i: int):
        item = self.data[i]
        if isinstance(item, dict):
            return {**item, FISHER_U: self._uniforms(i, item["input_ids"].shape[-1])}
        x, y = item
        return x, y, self._uniforms(i, 1)[0]


def sample_labels(logits: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """Labels drawn from softmax(logits) [..., V]: at the uniforms `u` [...] by the inverse CDF, or (no `u`) from
    torch's global generator."""
    with torch.no_grad():
        probs = torch.softmax(logits.detach().double().reshape(-1, logits.shape[-1]), dim=-1)
        if u is None:
            return torch.multinomial(probs.float(), 1).reshape(logits.shape[:-1])
        cdf = probs.cumsum(-1)
        drawn = torch.searchsorted(cdf, u.reshape(-1, 1).to(cdf.dtype).to(cdf.device)).squeeze(-1)
        return drawn.clamp_(max=logits.shape[-1] - 1).reshape(logits.shape[:-1])
