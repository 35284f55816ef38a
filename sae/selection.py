"""Token-feature selection rules (Ayonrinde 2024), on a pre-activation matrix Z' of B tokens x F features.

Each returns Z = S ⊙ ReLU(Z') for a selection mask S under a total budget of k·B matches:
- TopK (per token): each row keeps its top k.  (SAELens's `TopK` does this during training.)
- Feature Choice: each column f keeps its top m_f rows; rows get a variable number of features.
- Mutual Choice: the top k·B entries of the whole matrix, no row or column cap (= BatchTopK's rule).
Ties at a cut-off (identical tokens: every BOS row of a batch has the same pre-activations) go to the earliest
tokens of the batch: `topk` would pick any of them, and which identical rows get which features changes the
loss, so a run would depend on the kernel, and a data-parallel run (sae.distributed) could not equal it.
"""
from __future__ import annotations

import math

import torch


def topk_per_token(z: torch.Tensor, k: int) -> torch.Tensor:
    vals, idx = z.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(z).scatter(-1, idx, vals.relu())


def feature_choice(z: torch.Tensor, capacities: torch.Tensor, return_stats: bool = False):
    """Column f keeps (at most) its capacities[f] largest entries; z is [B, F], capacities [F] ints.

    With return_stats, also (tokens selected with a positive value per feature, the smallest such value
    per feature or +inf), read off the small [m, F] top-k rather than another pass over the matrix.
    """
    b = z.shape[0]
    caps = capacities.clamp(0, b).to(z.device)
    m_max = int(caps.max()) if caps.numel() else 0
    if m_max == 0:
        out = torch.zeros_like(z)
        return (out, torch.zeros(z.shape[1], dtype=torch.long, device=z.device),
                torch.full((z.shape[1],), torch.inf, device=z.device)) if return_stats else out
    vals, idx = z.topk(min(m_max + 1, b), dim=0, sorted=True)  # [m_max(+1), F], largest first
    # a column whose cut-off value repeats just below it has tied candidates: its slots for the cut-off value go to
    # the earliest of the tied rows (topk filled them with any); the slots are rewritten, not the output
    cut = vals.gather(0, (caps - 1).clamp(min=0)[None])[0]
    below = vals.gather(0, caps.clamp(max=vals.shape[0] - 1)[None])[0]
    tied_cols = ((caps > 0) & (caps < b) & (cut > 0) & (below == cut)).nonzero().squeeze(1)
    if tied_cols.numel():
        c = cut[tied_cols]
        n_above = (z[:, tied_cols] > c).sum(0)  # slots [0, n_above) hold the rows above the cut-off
        idx = earliest_tie_slots(z, idx, tied_cols, c, n_above, caps[tied_cols] - n_above)
        vals = z.gather(0, idx)
    kept = (torch.arange(vals.shape[0], device=z.device)[:, None] < caps[None, :]) & (vals > 0)
    # scatter_add: a rewritten slot may name a row that an unkept slot (written with 0) names too
    out = torch.zeros_like(z).scatter_add(0, idx, vals * kept)
    if not return_stats:
        return out
    # counts and smallest values do not depend on which of the tied rows were kept
    return out, kept.sum(0), torch.where(kept, vals, torch.inf).min(0).values


@torch.no_grad()
def earliest_tie_slots(z: torch.Tensor, idx: torch.Tensor, cols: torch.Tensor, cut: torch.Tensor,
                       n_above: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """`idx` (a column-wise topk's rows, largest first) with, in each column of `cols`, the slots
    [n_above, n_above + quota) naming the earliest rows of z equal to that column's `cut`."""
    chosen = keep_earliest(z[:, cols] == cut, quota).T  # [len(cols), B]
    col, row = chosen.nonzero(as_tuple=True)  # by column, then row: the earliest first
    rank = chosen.long().cumsum(1)[col, row] - 1
    idx = idx.clone()
    idx[n_above[col] + rank, cols[col]] = row
    return idx


def keep_earliest(tied: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """Of the True entries of `tied`, the first `quota` (per column of a matrix; of a vector, `quota` in all)."""
    return tied & (tied.long().cumsum(0) <= quota)


def mutual_choice(z: torch.Tensor, budget: int) -> torch.Tensor:
    """The `budget` largest entries of ReLU(z) over the whole [B, F] matrix."""
    flat = z.relu().flatten()
    vals, idx = _largest_entries(flat, min(int(budget), flat.numel()))
    return torch.zeros_like(flat).scatter(-1, idx, vals).reshape(z.shape)


def _largest_entries(flat: torch.Tensor, budget: int, among: torch.Tensor | None = None):
    """(values, flat indices) of the `budget` largest entries of `flat` (looked for among the indices `among`, a
    superset of them, when given); ties at the cut-off go to the earliest entries (earlier tokens first)."""
    if budget <= 0:
        return flat[:0], torch.zeros(0, dtype=torch.long, device=flat.device)
    pool = flat if among is None else flat[among]
    n = min(budget + 1, pool.numel())
    vals, pos = pool.topk(n, sorted=False)
    if n > budget:  # one more than wanted: the cut-off is ambiguous only if the last two are equal
        two = vals.detach().topk(2, largest=False)
        cut, extra = float(two.values[1]), float(two.values[0])
        if cut == extra and cut > 0:
            above = flat > cut
            keep = above | keep_earliest(flat == cut, budget - int(above.sum()))
            idx = keep.nonzero().squeeze(1)
            return flat[idx], idx
        drop = torch.ones(n, dtype=torch.bool, device=flat.device)
        drop[two.indices[0]] = False
        vals, pos = vals[drop], pos[drop]
    return vals, (pos if among is None else among[pos])


def budget_for(k: float, n_tokens: int) -> int:
    return int(k * n_tokens)


def uniform_capacities(k: float, n_tokens: int, n_features: int, device=None) -> torch.Tensor:
    """m = floor(k·B / F) for every feature (never above the budget), at least 1 so no feature is locked out."""
    m = max(1, int(k * n_tokens // n_features))
    return torch.full((n_features,), min(m, n_tokens), dtype=torch.long, device=device)


def zipf_profile(n_features: int, exponent: float, device=None) -> torch.Tensor:
    """Share of the budget of the feature at each rank: p_r ∝ r^-exponent, r = 1..F, summing to 1."""
    r = torch.arange(1, n_features + 1, dtype=torch.float64, device=device)
    p = r.pow(-exponent)
    return p / p.sum()


def zipf_capacities(k: float, n_tokens: int, activity: torch.Tensor, exponent: float) -> torch.Tensor:
    """Per-feature capacities shaped like a Zipf law over the features' activity ranks, summing to the
    budget k·B exactly.

    The feature with the r-th highest activity gets a share ∝ r^-exponent of the budget: frequent features
    may take many tokens of the batch, rare ones a few, as feature densities in trained SAEs are close to
    Zipf-distributed (the paper's observation). Every feature keeps at least 1 and at most B; what a
    capped feature cannot take goes to the others in proportion to their shares, and integer rounding
    gives the remainder to the largest fractional parts, so that Σ m_f = ⌊k·B⌋. `activity` must not
    depend on the capacities themselves (the SAE ranks by unconstrained pre-activation mass), or the
    first ranking — feature-index order when all are equal — would fix itself forever.
    """
    n_features = activity.numel()
    budget = int(k * n_tokens)
    if not n_features <= budget <= n_features * n_tokens:
        raise ValueError(f"a budget of {budget} cannot give {n_features} features between 1 and {n_tokens} each")
    order = activity.argsort(descending=True, stable=True)
    want = zipf_profile(n_features, exponent, device=activity.device) * (budget - n_features)  # beyond the 1 each
    room = float(n_tokens - 1)
    capped = torch.zeros(n_features, dtype=torch.bool, device=activity.device)
    for _ in range(n_features):  # water-filling: cap at B, hand the excess on
        over = (want > room) & ~capped
        if not over.any():
            break
        excess = float((want[over] - room).sum())
        want[over] = room
        capped |= over
        free = ~capped
        want[free] += excess * want[free] / want[free].sum()
    base = want.floor()
    rest = budget - n_features - int(base.sum())
    frac = torch.where(base < room, want - base, torch.full_like(want, -1.0))
    base[frac.topk(rest).indices] += 1  # largest remainders
    caps = torch.empty(n_features, dtype=torch.long, device=activity.device)
    caps[order] = base.long() + 1
    return caps


def selection_counts(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(active features per token, active tokens per feature) of an activation matrix."""
    nz = acts != 0
    return nz.sum(-1), nz.sum(0)


def check_k(k: float, d_sae: int) -> None:
    if not (k > 0 and math.isfinite(k)):
        raise ValueError("k must be a positive number")
    if k > d_sae:
        raise ValueError(f"k = {k} is larger than the number of features d_sae = {d_sae}")


# --- a fast exact path for Mutual Choice, given a guess of the cut-off (the running threshold) --------
# A top-k over the whole B x F matrix costs 2-3x TopK's per-row top-k on CPU. Training already tracks
# the cut-off as the inference threshold, so the entries above a slightly lower guess are a small
# superset of the selection, and the exact selection is taken among them. When the guess is too high
# for the answer to be certain, the reference rule runs instead: the result is always identical.
# (The same idea for Feature Choice's per-column cut-offs did not pay off on CPU: scattering the
# candidates column by column cost more than the column top-k it saved.)

def mutual_choice_guided(z: torch.Tensor, budget: int, guess: float | None, return_stats: bool = False):
    """= mutual_choice(z, budget). With return_stats, also (positive selections per feature, the
    smallest positive selected value), from the selected entries alone."""
    budget = min(int(budget), z.numel())
    flat = z.flatten()
    cand_idx = (flat > guess).nonzero().squeeze(1) if guess is not None and guess > 0 else None
    if cand_idx is None or cand_idx.numel() < budget:  # no guess, or too high: the full top-k
        vals, sel = _largest_entries(flat.relu(), budget)
    else:  # candidates are above a positive guess, so already positive: no ReLU pass over the matrix
        vals, sel = _largest_entries(flat, budget, among=cand_idx)
    out = torch.zeros_like(flat).scatter(-1, sel, vals).reshape(z.shape)
    if not return_stats:
        return out
    positive = vals > 0
    counts = torch.bincount(sel[positive] % z.shape[-1], minlength=z.shape[-1])
    smallest = vals[positive].min() if bool(positive.any()) else torch.tensor(torch.inf, device=z.device)
    return out, counts, smallest

