"""Node ablations (rib/ablations.py): at one node layer keep the basis's first k directions and zero the
rest, x -> x · C_k C⁺_k (C_k: C with its later columns zeroed; k ≥ the kept columns: no change, k = 0:
everything zeroed), run the rest of the model, and measure. LIB ablates in C (rib's "rib"), PCA in the
unwhitened W = Y U (rib's "orthogonal"). The schedule is rib's exponential one: every k up to `cutoff`,
then steps growing by `base`^x down from the full dimension."""
from __future__ import annotations

from typing import Callable

import torch

from .sections import Section


def exponential_schedule(n: int, base: float = 1.05, cutoff: int = 10) -> list[int]:
    """The numbers of directions kept, descending from n to 0 (rib's ExponentialSchedule, read as kept)."""
    ablated = list(range(n, n - cutoff - 1, -1))
    prev = ablated[-1]
    for x in range(n):
        step = int(prev - base ** x)
        if step > 0:
            ablated.append(step)
            prev = step
        else:
            ablated.append(0)
            break
    return sorted({n - a for a in ablated}, reverse=True)


def rotation(C: torch.Tensor, C_pinv: torch.Tensor, kept: int) -> torch.Tensor:
    """x · rotation keeps the first `kept` of C's columns (rib's calc_rotation_matrix)."""
    n_ablated = max(0, C.shape[1] - kept)
    if n_ablated == 0:
        return torch.eye(C.shape[0], dtype=C.dtype)
    if n_ablated >= C.shape[1]:
        return torch.zeros(C.shape[0], C.shape[0], dtype=C.dtype)
    C_k = C.clone()
    C_k[:, -n_ablated:] = 0
    return C_k @ C_pinv


@torch.no_grad()
def node_ablation_curve(sections: list[Section], acts_at: torch.Tensor, start: int, C: torch.Tensor,
                        C_pinv: torch.Tensor, measure: Callable[[torch.Tensor], float],
                        schedule: list[int]) -> dict[int, float]:
    """{k: measure(output)} with node layer sections[start].start rotated to its first k directions;
    `acts_at` are that node layer's activations on the evaluation data."""
    out = {}
    for k in schedule:
        f = acts_at @ rotation(C, C_pinv, k)
        for s in sections[start:]:
            f = s.run(f)
        out[k] = measure(f)
    return out
