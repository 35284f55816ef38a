"""Data-parallel SAE training: each of W processes takes an equal share of every batch (torch.distributed: gloo
on CPUs, NCCL on GPUs), and the run is the one-process run on the combined batch.

What must be global for that to hold, and how it is made so:
- Gradients: every loss term is a mean over the batch's tokens, so the mean of the W shards' gradients is the
  combined batch's gradient (one all-reduce of the flattened gradients per step; clipping, the decoder's
  parallel-gradient removal and Adam then run on identical numbers in every process).
- TopK selects per token: nothing to share.
- **Feature Choice and Mutual Choice select over the whole batch, and the selection is global here**: feature f
  keeps its m_f largest pre-activations among all B tokens of all processes (Mutual Choice: the k·B largest
  entries of the whole B × F matrix), not m_f / W per process. Each process sends only its candidates (per
  feature its m_max largest values; for Mutual Choice its k·B largest), the W candidate sets are gathered, the
  cut-off (the m_f-th / k·B-th largest of their union) is found, and each process keeps its own entries above it.
  Ties at the cut-off (identical tokens, e.g. BOS rows) are shared out in process order, then token order, so
  exactly m_f (k·B) are kept in all. Capacities are those of the global batch size B; Zipf capacities rank the
  features by the global activity; the per-feature fire counts, cut-offs (for the thresholds) and the dead-latent
  mask are reduced over the processes.
A per-device selection would be a different method: an SAE whose budget is spread evenly over the devices
(each device's top m_f / W), which depends on how the batch was split.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .selection import keep_earliest


class Collective:
    """The processes one batch is split over (torch.distributed's default group)."""

    def __init__(self):
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised")
        self.world = dist.get_world_size()
        self.rank = dist.get_rank()

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every process's tensor (all of the same shape), in rank order."""
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t.contiguous())
        return out

    def reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
        return t

    def average_gradients(self, params) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _take_ties(tied: torch.Tensor, wanted: torch.Tensor, coll: Collective) -> torch.Tensor:
    """Of the entries equal to the cut-off (`tied`, a bool mask), keep `wanted` in all (per column of a matrix):
    earlier processes first, then earlier tokens, as selection.keep_earliest does in one process."""
    mine = tied.sum(0).reshape(-1)
    before = torch.stack(coll.gather(mine)).cumsum(0)[coll.rank] - mine  # ties in earlier processes
    quota = (wanted.reshape(-1) - before).clamp(min=0)
    return keep_earliest(tied, quota if tied.ndim > 1 else quota[0])


def sharded_feature_choice(z: torch.Tensor, capacities: torch.Tensor, coll: Collective):
    """Feature Choice over the union of every process's rows: this process's share of the selection, and the global
    (positive selections per feature, smallest positive selected value per feature or +inf)."""
    b_local, n_features = z.shape
    caps = capacities.clamp(0, b_local * coll.world).to(z.device)
    m_max = int(caps.max()) if caps.numel() else 0
    if m_max == 0:
        return torch.zeros_like(z), torch.zeros(n_features, dtype=torch.long), torch.full((n_features,), torch.inf)
    mine = z.topk(min(m_max, b_local), dim=0).values
    if mine.shape[0] < m_max:  # fewer rows here than the largest capacity: pad with values never chosen
        mine = torch.cat([mine, mine.new_full((m_max - mine.shape[0], n_features), -torch.inf)])
    union = torch.cat(coll.gather(mine))  # [W·m_max, F]
    top = union.topk(m_max, dim=0).values  # the global m_max largest per feature, largest first
    cut = top.gather(0, (caps - 1).clamp(min=0)[None])[0]  # the m_f-th largest
    above = (z > cut) & (caps > 0)
    wanted_ties = caps - coll.reduce(above.sum(0))
    keep = above | _take_ties((z == cut) & (caps > 0), wanted_ties, coll)
    keep &= z > 0  # ReLU: a non-positive entry among the selection contributes nothing
    acts = torch.where(keep, z, torch.zeros_like(z))
    counts = coll.reduce(keep.sum(0))
    smallest = coll.reduce(torch.where(keep, z, torch.full_like(z, torch.inf)).min(0).values, "min")
    return acts, counts, smallest


def sharded_mutual_choice(z: torch.Tensor, budget: int, coll: Collective):
    """Mutual Choice over the union of every process's rows: the `budget` largest entries of the whole matrix;
    this process's share, and the global (positive selections per feature, smallest positive selected value)."""
    flat = z.reshape(-1)
    budget = min(int(budget), flat.numel() * coll.world)
    mine = flat.topk(min(budget, flat.numel())).values
    if mine.numel() < budget:
        mine = torch.cat([mine, mine.new_full((budget - mine.numel(),), -torch.inf)])
    cut = torch.cat(coll.gather(mine)).topk(budget).values[-1]
    above = flat > cut
    wanted_ties = budget - coll.reduce(above.sum())
    keep = above | _take_ties(flat == cut, wanted_ties, coll)
    keep &= flat > 0
    acts = torch.where(keep, flat, torch.zeros_like(flat)).reshape(z.shape)
    counts = coll.reduce(keep.reshape(z.shape).sum(0))
    positive = flat[keep]
    smallest = coll.reduce(positive.min() if positive.numel() else flat.new_tensor(torch.inf), "min")
    return acts, counts, smallest
