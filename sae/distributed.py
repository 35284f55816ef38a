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

from .selection import earliest_tie_slots, keep_earliest


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


def _quota_after_earlier(mine: torch.Tensor, wanted: torch.Tensor, coll: Collective) -> torch.Tensor:
    """Of `wanted` tied entries in all (per column), how many of its `mine` this process keeps: earlier processes'
    first."""
    mine = mine.reshape(-1)
    before = torch.stack(coll.gather(mine)).cumsum(0)[coll.rank] - mine
    return torch.minimum((wanted.reshape(-1) - before).clamp(min=0), mine)


def sharded_feature_choice(z: torch.Tensor, capacities: torch.Tensor, coll: Collective):
    """Feature Choice over the union of every process's rows: this process's share of the selection, and the global
    (positive selections per feature, smallest positive selected value per feature or +inf).

    Every entry of the global selection is among its process's m_max largest of the column, so the processes swap
    only those (one all-gather of [m_max + 1, F]); the one extra row tells a tie at the cut-off. The global counts
    and smallest values are read off the gathered top values."""
    b_local, n_features = z.shape
    b = b_local * coll.world
    caps = capacities.clamp(0, b).to(z.device)
    m_max = int(caps.max()) if caps.numel() else 0
    if m_max == 0:
        return torch.zeros_like(z), torch.zeros(n_features, dtype=torch.long), torch.full((n_features,), torch.inf)
    m1 = m_max + 1
    vals, idx = z.topk(min(m1, b_local), dim=0, sorted=True)
    mine = vals.detach()
    if mine.shape[0] < m1:  # fewer rows here than that: pad with values never chosen
        mine = torch.cat([mine, mine.new_full((m1 - mine.shape[0], n_features), -torch.inf)])
    top = torch.cat(coll.gather(mine)).topk(m1, dim=0).values  # the global m_max + 1 largest, largest first
    cut = top.gather(0, (caps - 1).clamp(min=0)[None])[0]  # the m_f-th largest
    below = top.gather(0, caps.clamp(max=m1 - 1)[None])[0]
    live = caps > 0
    tied_cols = (live & (caps < b) & (cut > 0) & (below == cut)).nonzero().squeeze(1)
    keep = (vals >= cut) & live  # untied columns: exactly the entries at or above the cut-off
    if tied_cols.numel():
        c = cut[tied_cols]
        n_above = (z[:, tied_cols].detach() > c).sum(0)
        wanted = caps[tied_cols] - (top[:, tied_cols] > c).sum(0)  # every entry above the cut is in `top`
        quota = _quota_after_earlier((z[:, tied_cols].detach() == c).sum(0), wanted, coll)
        idx = earliest_tie_slots(z.detach(), idx, tied_cols, c, n_above, quota)
        vals = z.gather(0, idx)
        slot = torch.arange(vals.shape[0], device=z.device)[:, None]
        keep[:, tied_cols] = slot < (n_above + quota)[None, :]
    keep &= vals > 0  # ReLU: a non-positive entry among the selection contributes nothing
    acts = torch.zeros_like(z).scatter_add(0, idx, vals * keep)
    kept_global = (torch.arange(m1, device=z.device)[:, None] < caps[None, :]) & (top > 0)
    return acts, kept_global.sum(0), torch.where(kept_global, top, torch.inf).min(0).values


def sharded_mutual_choice(z: torch.Tensor, budget: int, coll: Collective, guess: float | None = None):
    """Mutual Choice over the union of every process's rows: the `budget` largest entries of the whole matrix;
    this process's share, and the global (positive selections per feature, smallest positive selected value).

    As in one process (selection.mutual_choice_guided), a guess of the cut-off (the running threshold, lowered)
    narrows each process's candidates when, together, they hold at least the budget."""
    flat = z.reshape(-1)
    budget = min(int(budget), flat.numel() * coll.world)
    pool = None
    if guess is not None and guess > 0:
        candidates = (flat.detach() > guess).nonzero().squeeze(1)
        if int(coll.reduce(torch.tensor([candidates.numel()], device=z.device))) >= budget:
            pool = candidates
    values = flat.detach() if pool is None else flat.detach()[pool]
    n = min(budget + 1, values.numel())
    mine, pos = values.topk(n, sorted=True)
    sel = pos if pool is None else pool[pos]
    if n < budget + 1:
        mine = torch.cat([mine, mine.new_full((budget + 1 - n,), -torch.inf)])
    top = torch.cat(coll.gather(mine)).topk(budget + 1).values
    cut, below = top[budget - 1], top[budget]
    keep = mine[:n] >= cut
    if bool(cut > 0) and bool(below == cut):  # tied at the cut-off: the earliest tied entries, in process order
        wanted = budget - (top > cut).sum()
        tied = flat.detach() == cut
        chosen = (flat.detach() > cut) | keep_earliest(tied, _quota_after_earlier(tied.sum(), wanted, coll)[0])
        sel = chosen.nonzero().squeeze(1)
        keep = torch.ones(len(sel), dtype=torch.bool, device=z.device)
    sel = sel[keep & (flat.detach()[sel] > 0)]
    acts = torch.zeros_like(flat).scatter(0, sel, flat.gather(0, sel)).reshape(z.shape)
    counts = coll.reduce(torch.bincount(sel % z.shape[-1], minlength=z.shape[-1]))
    chosen_top = top[:budget]
    positive = chosen_top[chosen_top > 0]
    smallest = positive.min() if positive.numel() else flat.new_tensor(torch.inf)
    return acts, counts, smallest
