"""Feature-dashboard data for every feature of an SAE at once (the panels of sae-dashboard / Neuronpedia).

The SAE is run once over the token set and its activations kept as a sparse (token, feature, value)
list: an SAE fires on few features per token, so this is small, and every panel of every feature is
then a vectorised group-by over it rather than a per-feature pass over the tokens:

- density, mean and max activation, top tokens and a short label (its top tokens);
- top-activating examples and stratified samples from equal-count activation quantiles, each with a
  window of surrounding tokens and the feature's activation on each of them;
- a histogram of the non-zero activations (counts add up to the number of firings);
- decoder cosine neighbours; co-firing features (count, P(other | this), Jaccard);
- direct logit effects: the decoder direction mapped into the residual stream and through the
  unembedding (top and bottom tokens).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .aux_losses import UNDERUSED_SHORTFALL, underuse_shortfall

MAX_NONZEROS = 60_000_000  # ~0.7 GB of (token, feature, value): beyond this, ask for fewer tokens


@dataclass
class SparseActivations:
    """The SAE's non-zero activations over n_tokens tokens, sorted by feature then token."""
    token: np.ndarray  # int64 flat token index
    feature: np.ndarray  # int64
    value: np.ndarray  # float32
    n_tokens: int
    d_sae: int

    @property
    def offsets(self) -> np.ndarray:
        return np.searchsorted(self.feature, np.arange(self.d_sae + 1))

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.feature, minlength=self.d_sae)

    def lookup(self, feature: np.ndarray, token: np.ndarray) -> np.ndarray:
        """The activation of feature[i] on token[i] (0 where it did not fire); any shapes, broadcast."""
        feature, token = np.broadcast_arrays(feature, token)
        key = self.feature * self.n_tokens + self.token  # sorted, since entries are sorted by (feature, token)
        want = feature.astype(np.int64) * self.n_tokens + token.astype(np.int64)
        at = np.clip(np.searchsorted(key, want), 0, max(len(key) - 1, 0))
        hit = (key[at] == want) if len(key) else np.zeros(want.shape, bool)
        return np.where(hit, self.value[at] if len(key) else 0.0, 0.0).astype(np.float32)


@torch.no_grad()
def _encode_rows(sae, acts: torch.Tensor, offset: int, batch: int, seen: int = 0, progress=None):
    """(token, feature, value) of the SAE's non-zero activations on `acts`, tokens numbered from `offset`."""
    toks, feats, vals, total = [], [], [], seen
    for i in range(0, len(acts), batch):
        z = sae.encode(acts[i : i + batch].to(sae.W_dec.device, sae.W_dec.dtype))
        t, f = torch.nonzero(z, as_tuple=True)
        total += len(t)
        if total > MAX_NONZEROS:
            raise ValueError(f"the SAE fires {total:,}+ times on the first {offset + i + batch:,} tokens; dashboards "
                             f"keep at most {MAX_NONZEROS:,} firings: use fewer tokens")
        toks.append((t + offset + i).cpu())
        feats.append(f.cpu())
        vals.append(z[t, f].float().cpu())
        if progress:
            progress(min(1.0, (i + batch) / len(acts)), "running the SAE over the tokens")
    cat = lambda parts, dtype: torch.cat(parts).numpy().astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return cat(toks, np.int64), cat(feats, np.int64), cat(vals, np.float32)


_loaded: dict = {}  # a cluster task's SAEs, one copy per worker process


def encode_shard(sae_location: str, device: str, activations_path: str, activations_meta: dict, start: int,
                 stop: int, batch: int):
    """A cluster task: the SAE (loaded once per worker process) over tokens [start, stop) of a cached set."""
    from compute.activations import ActivationSet

    from .loading import load_sae

    if sae_location not in _loaded:
        _loaded[sae_location] = load_sae(sae_location, device=device)
    sae = _loaded[sae_location]
    sae.eval()
    acts = ActivationSet(Path(activations_path), activations_meta).rows(start, stop)
    return _encode_rows(sae, acts, start, batch)


def encode_sparse(sae, acts: torch.Tensor, batch: int = 8192, progress=None, pool=None,
                  source: tuple | None = None) -> SparseActivations:
    """The SAE's non-zero activations on `acts`. With a parallel `pool` (compute.cluster.TaskPool) and `source`
    = (SAE location, device, ActivationSet) the tokens are encoded in shards of whole batches on the cluster: the
    same batches, so the same entries."""
    sae.eval()
    shard = batch * 8
    if pool is not None and pool.parallel and source is not None and len(acts) > shard:
        location, device, aset = source
        calls = [(location, device, str(aset.path), aset.meta, a, min(a + shard, len(acts)), batch)
                 for a in range(0, len(acts), shard)]
        parts = pool.map(encode_shard, calls, progress=progress, what="running the SAE over the tokens")
        total = sum(len(t) for t, _, _ in parts)
        if total > MAX_NONZEROS:
            raise ValueError(f"the SAE fires {total:,} times on these tokens; dashboards keep at most "
                             f"{MAX_NONZEROS:,} firings: use fewer tokens")
        token, feature, value = (np.concatenate([p[i] for p in parts]) for i in range(3))
    else:
        token, feature, value = _encode_rows(sae, acts, 0, batch, progress=progress)
    order = np.lexsort((token, feature))
    return SparseActivations(token[order], feature[order], value[order], len(acts), int(sae.cfg.d_sae))


def feature_stats(sa: SparseActivations, token_ids: np.ndarray, vocab_strings: list[str],
                  n_label_tokens: int = 3) -> pd.DataFrame:
    counts = sa.counts
    sums = np.bincount(sa.feature, weights=sa.value, minlength=sa.d_sae)
    maxes = np.full(sa.d_sae, 0.0)
    np.maximum.at(maxes, sa.feature, sa.value)
    density = counts / max(sa.n_tokens, 1)
    dead = counts == 0
    short = underuse_shortfall(torch.from_numpy(density).double(), torch.from_numpy(dead)).numpy()
    # top tokens: the token ids carrying most of the feature's total activation
    df = pd.DataFrame({"feature": sa.feature, "tok": token_ids[sa.token], "value": sa.value})
    mass = df.groupby(["feature", "tok"], sort=False).value.sum().reset_index()
    mass = mass.sort_values(["feature", "value"], ascending=[True, False]).groupby("feature").head(n_label_tokens)
    mass["text"] = [vocab_strings[t] if 0 <= t < len(vocab_strings) else str(t) for t in mass.tok]
    top = mass.groupby("feature").text.agg(list)
    top_tokens = [top.get(f, []) for f in range(sa.d_sae)]
    return pd.DataFrame({
        "feature": np.arange(sa.d_sae),
        "label": [" · ".join(t) if t else "(dead)" for t in top_tokens],
        "density": density,
        "log10_density": np.log10(np.maximum(density, 1e-10)),
        "mean_activation": np.where(counts > 0, sums / np.maximum(counts, 1), 0.0),
        "max_activation": maxes,
        "fires": counts,
        "dead": dead,
        "underused": (short > UNDERUSED_SHORTFALL) & ~dead,
        "top_tokens": ["|".join(t) for t in top_tokens],
    })


def example_rows(sa: SparseActivations, n_top: int, n_quantiles: int, per_quantile: int,
                 seed: int = 0) -> pd.DataFrame:
    """Top-n_top firings per feature, and per_quantile firings from each of n_quantiles equal-count
    quantile bins of its non-zero activations (stratified, so the samples spread over each bin)."""
    offsets = sa.offsets
    counts = np.diff(offsets)
    # within each feature: order by activation, highest first
    order = np.lexsort((-sa.value, sa.feature))
    feat_sorted = sa.feature[order]
    rank = np.arange(len(order)) - offsets[feat_sorted]
    top = rank < n_top
    rows = [pd.DataFrame({"feature": feat_sorted[top], "group": "top", "rank": rank[top],
                          "token_index": sa.token[order][top], "activation": sa.value[order][top]})]
    rng = np.random.default_rng(seed)
    live = np.flatnonzero(counts >= n_quantiles)
    for q in range(n_quantiles):
        # quantile q covers ranks [lo, hi) counted from the lowest activation
        lo = (counts[live] * q) // n_quantiles
        hi = (counts[live] * (q + 1)) // n_quantiles
        width = hi - lo
        j = np.arange(per_quantile)
        pick = lo[:, None] + np.floor((j[None, :] + rng.random((len(live), per_quantile))) * width[:, None]
                                      / per_quantile).astype(np.int64)
        ok = (j[None, :] < width[:, None])  # a bin with fewer firings than samples gives what it has
        desc_rank = counts[live][:, None] - 1 - pick  # rank in the descending order
        idx = offsets[live][:, None] + desc_rank
        f = np.broadcast_to(live[:, None], idx.shape)[ok]
        sel = order[idx[ok]]
        rows.append(pd.DataFrame({"feature": f, "group": f"q{q + 1}", "rank": np.broadcast_to(j, idx.shape)[ok],
                                  "token_index": sa.token[sel], "activation": sa.value[sel]}))
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["feature", "group", "rank"], kind="stable").reset_index(drop=True)


def add_windows(examples: pd.DataFrame, sa: SparseActivations, token_ids: np.ndarray, seq_len: int,
                vocab_strings: list[str], before: int = 8, after: int = 3) -> pd.DataFrame:
    """Each example's surrounding tokens (same row only) and the feature's activation on each."""
    t = examples.token_index.to_numpy()
    offs = np.arange(-before, after + 1)
    pos = t[:, None] + offs[None, :]
    same_row = (pos // seq_len) == (t // seq_len)[:, None]
    pos_c = np.clip(pos, 0, len(token_ids) - 1)
    acts = sa.lookup(examples.feature.to_numpy()[:, None], pos_c)
    ids = token_ids[pos_c]
    vocab = np.asarray(vocab_strings, dtype=object)
    ex = examples.copy()
    ex["window_tokens"] = [list(vocab[i[m]]) for i, m in zip(ids, same_row)]
    ex["window_acts"] = [list(np.round(a[m], 4)) for a, m in zip(acts, same_row)]
    ex["center"] = np.minimum(t % seq_len, before)
    ex["next_token"] = [vocab[token_ids[i + 1]] if (i + 1) % seq_len and i + 1 < len(token_ids) else ""
                        for i in t]
    return ex


def activation_histograms(sa: SparseActivations, n_bins: int = 30) -> pd.DataFrame:
    """Per feature, n_bins equal-width bins from min(0, lowest) to its highest non-zero activation."""
    counts = sa.counts
    live = np.flatnonzero(counts)
    hi = np.zeros(sa.d_sae)
    np.maximum.at(hi, sa.feature, sa.value)
    lo = np.zeros(sa.d_sae)
    np.minimum.at(lo, sa.feature, sa.value)
    width = np.where(hi > lo, (hi - lo) / n_bins, 1.0)
    b = np.clip(np.floor((sa.value - lo[sa.feature]) / width[sa.feature]).astype(np.int64), 0, n_bins - 1)
    hist = np.bincount(sa.feature * n_bins + b, minlength=sa.d_sae * n_bins).reshape(sa.d_sae, n_bins)
    f = np.repeat(live, n_bins)
    k = np.tile(np.arange(n_bins), len(live))
    return pd.DataFrame({"feature": f, "bin_left": lo[f] + k * width[f], "bin_right": lo[f] + (k + 1) * width[f],
                         "count": hist[live].reshape(-1)})


@torch.no_grad()
def decoder_neighbours(W_dec: torch.Tensor, n: int = 5, chunk: int = 2048) -> pd.DataFrame:
    W = torch.nn.functional.normalize(W_dec.float(), dim=-1)
    n = min(n, len(W) - 1)
    feats, others, cos = [], [], []
    for i in range(0, len(W), chunk):
        sims = W[i : i + chunk] @ W.T
        rows = torch.arange(len(sims))
        sims[rows, rows + i] = -2.0  # not itself
        v, j = sims.topk(n, dim=-1)
        feats.append(np.repeat(np.arange(i, i + len(sims)), n))
        others.append(j.reshape(-1).cpu().numpy())
        cos.append(v.reshape(-1).cpu().numpy())
    return pd.DataFrame({"feature": np.concatenate(feats), "rank": np.tile(np.arange(n), len(W)),
                         "other": np.concatenate(others), "cosine": np.concatenate(cos)})


def cofiring(sa: SparseActivations, n: int = 5) -> pd.DataFrame:
    """Features that fire on the same tokens: count, P(other fires | this fires), Jaccard."""
    from scipy import sparse

    B = sparse.csr_matrix((np.ones(len(sa.token), np.float32), (sa.token, sa.feature)),
                          shape=(sa.n_tokens, sa.d_sae))
    C = (B.T @ B).tocoo()
    keep = C.row != C.col
    df = pd.DataFrame({"feature": C.row[keep], "other": C.col[keep], "count": C.data[keep].astype(np.int64)})
    counts = sa.counts
    df["p_other_given_feature"] = df["count"] / counts[df.feature]
    df["jaccard"] = df["count"] / (counts[df.feature] + counts[df.other] - df["count"])
    df = df.sort_values(["feature", "jaccard"], ascending=[True, False]).groupby("feature").head(n)
    df["rank"] = df.groupby("feature").cumcount()
    return df.reset_index(drop=True)[["feature", "rank", "other", "count", "p_other_given_feature", "jaccard"]]


@torch.no_grad()
def logit_table(directions: torch.Tensor, W_U: torch.Tensor, vocab_strings: list[str], n: int = 10,
                chunk: int = 1024) -> pd.DataFrame:
    """Top and bottom n tokens of each residual-stream direction through the unembedding."""
    rows = []
    for i in range(0, len(directions), chunk):
        logits = directions[i : i + chunk].float() @ W_U.float().to(directions.device)
        for side, (v, j) in (("top", logits.topk(n, dim=-1)), ("bottom", (-logits).topk(n, dim=-1))):
            v = v if side == "top" else -v
            f = np.repeat(np.arange(i, i + len(logits)), n)
            rows.append(pd.DataFrame({"feature": f, "side": side, "rank": np.tile(np.arange(n), len(logits)),
                                      "token_id": j.reshape(-1).cpu().numpy(), "logit": v.reshape(-1).cpu().numpy()}))
    out = pd.concat(rows, ignore_index=True)
    out["token"] = [vocab_strings[t] for t in out.token_id]
    return out.sort_values(["feature", "side", "rank"], ascending=[True, False, True]).reset_index(drop=True)
