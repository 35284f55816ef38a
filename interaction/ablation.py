"""Node ablations (rib/ablations.py): at one node layer keep the basis's first k directions and zero the
rest, x -> x · C_k C⁺_k (C_k: C with its later columns zeroed; k ≥ the kept columns: no change, k = 0:
everything zeroed), run the rest of the model, and measure. LIB ablates in C (rib's "rib"), PCA in the
unwhitened W = Y U (rib's "orthogonal"). The schedule is rib's exponential one: every k up to `cutoff`,
then steps growing by `base`^x down from the full dimension."""
from __future__ import annotations

from typing import Callable

import torch

from .chain import Section


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


def edge_masked_output(section: Section, f_in: torch.Tensor, C_in: torch.Tensor, C_in_pinv: torch.Tensor,
                       C_out: torch.Tensor | None, C_out_pinv: torch.Tensor | None, keep: torch.Tensor,
                       out_chunk: int = 16, data_chunk: int = 2048) -> torch.Tensor:
    """The section's output (in the next node layer's own coordinates) when each next-layer basis function
    i reads only the basis functions j here with keep[i, j] (rib's edge ablation): f̂^{l+1}_i =
    [section((f̂^l ⊙ keep_i) C⁺) C]_i, mapped back by C⁺ of the next layer (the output: as it is)."""
    k_out = keep.shape[0]
    # outputs whose kept sets are the same share one forward pass (at small N most keep nothing)
    masks, which = torch.unique(keep, dim=0, return_inverse=True)
    parts = []
    for d0 in range(0, len(f_in), data_chunk):
        f_hat = f_in[d0 : d0 + data_chunk] @ C_in
        by_mask = []
        for m0 in range(0, len(masks), out_chunk):
            mask = masks[m0 : m0 + out_chunk].to(f_hat.dtype)  # [c, k_in]
            y = section.run((f_hat[None] * mask[:, None, None, :]) @ C_in_pinv)  # [c, b, P', d_out]
            by_mask.append(y @ C_out if C_out is not None else y)
        y = torch.cat(by_mask)  # [n_masks, b, P', k_out]
        out_hat = y[which, ..., torch.arange(k_out)]  # output i from its own mask: [k_out, b, P']
        out_hat = out_hat.permute(1, 2, 0)
        parts.append(out_hat @ C_out_pinv if C_out is not None else out_hat)
    return torch.cat(parts)


@torch.no_grad()
def edge_ablation_bisect(sections: list[Section], acts_at: torch.Tensor, i: int, E: torch.Tensor,
                         C_in, C_in_pinv, C_out, C_out_pinv, measure: Callable[[torch.Tensor], float],
                         baseline: float, higher_is_better: bool, tolerance: float = 0.001) -> dict:
    """The smallest number N of the section's strongest edges (by E) that keeps the measurement within
    `tolerance` of the unablated model's (rib's bisect schedule with score_target_difference 0.001),
    assuming more edges never measure worse; with each probe's (N, measurement)."""
    order = torch.argsort(E.flatten(), descending=True)
    total = int(E.numel())
    probes: dict[int, float] = {}

    def score(n: int) -> float:
        if n not in probes:
            keep = torch.zeros(total, dtype=torch.bool)
            keep[order[:n]] = True
            f = edge_masked_output(sections[i], acts_at, C_in, C_in_pinv, C_out, C_out_pinv, keep.view_as(E))
            for s in sections[i + 1 :]:
                f = s.run(f)
            probes[n] = measure(f)
        return probes[n]

    def good(n: int) -> bool:
        v = score(n)
        return v >= baseline - tolerance if higher_is_better else v <= baseline + tolerance

    if not good(total):
        return {"n_edges": None, "total_edges": total, "probes": probes}
    lo, hi = 0, total  # good(hi); find the smallest good n
    while lo < hi:
        mid = (lo + hi) // 2
        if good(mid):
            hi = mid
        else:
            lo = mid + 1
    return {"n_edges": hi, "total_edges": total, "probes": probes}
