"""Influence (EK-FAC through kronfluence): how close to exact, how predictive, how fast.

- `exact`: scores of 10 held-out queries over the whole training set, against influence with the exact damped
  Gauss–Newton matrix (float64, influence/exact.py, the same λ = 0.1 × its mean eigenvalue everywhere), on the
  test suite's digits MLP 64→16→10 (1,210 parameters; seeds 0–2) and on the zoo's digits MLP 64→100→100→10
  (17,610 parameters). Beside kronfluence's EK-FAC, K-FAC and the identity: the exact GGN restricted to its
  per-layer blocks (what any layer-wise method can reach at best) and K-FAC/EK-FAC written out in float64 with
  the label expectation exact (what kronfluence estimates by sampling).
- `damping`: the same comparison on the test-suite MLP as λ goes from 0.01 to 10 × the mean eigenvalue.
- `lds`: the linear datamodeling score (Park et al. 2023) on the zoo's digits MLP: `--subsets` random halves of
  its training split, each retrained from scratch with the zoo's own recipe (compute/digits_training.py);
  LDS = Spearman, across subsets, between −Σ_{i∈S} τ(q, i) and the query loss the retrained model gets,
  averaged over 50 test digits; EK-FAC vs K-FAC vs identity vs exact.
- `lm`: the zoo LM in a fresh workbench: EK-FAC factors on 1,000 corpus sequences (MLP, and MLP + attention),
  stage by stage, beside the peer measured in the same run: one epoch of forward + backward passes over the same
  sequences (what fitting costs in training epochs); one query scored full, with a TF-IDF pre-filter and with
  rank-8 query gradients (query batching), with the checks the page shows.

    .venv/bin/python bench/bench_influence.py [--only exact,damping,lds,lm] [--subsets 64] [--out bench/results_influence.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fresh import fresh_workbench  # noqa: E402

QUERY = ("def __init__(self", ", name):")


def _corr(a, b) -> dict:
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return {"spearman": round(float(np.mean([spearmanr(x, y).statistic for x, y in zip(a, b)])), 3),
            "pearson": round(float(np.mean([pearsonr(x, y).statistic for x, y in zip(a, b)])), 3)}


def _kronfluence_scores(net, modules, x, y, xq, yq, strategies, lam, train_batch=400, repeats=10):
    from influence.engine import Engine, tracked
    from influence.tasks import ClassifierTask

    task = ClassifierTask(modules)
    data = torch.utils.data.TensorDataset(x, y)
    out, seconds = {}, {}
    with tracked(net, task) as m:
        eng = Engine(m, task, Path(tempfile.mkdtemp(prefix="bench-influence-")), train_batch=train_batch)
        for s in strategies:
            t0 = time.perf_counter()
            eng.fit(torch.utils.data.ConcatDataset([data] * repeats), s, lambda f, msg: None)
            out[s] = eng.pairwise(torch.utils.data.TensorDataset(xq, yq), data, s, damping=lam)["all_modules"]
            seconds[s] = round(time.perf_counter() - t0, 2)
    return out, seconds


def _block_diagonal(G: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    B = torch.zeros_like(G)
    lo = 0
    for n in sizes:
        B[lo: lo + n, lo: lo + n] = G[lo: lo + n, lo: lo + n]
        lo += n
    return B


def exact_comparison(net, modules, x, y, xq, yq) -> dict:
    from influence import exact

    t0 = time.perf_counter()
    G = exact.gauss_newton(net, modules, x)
    lam = 0.1 * exact.mean_eigenvalue(G)
    qg, tg = exact.loss_gradients(net, modules, xq, yq), exact.loss_gradients(net, modules, x, y)
    reference = exact.influence_scores(G, qg, tg, lam)
    exact_seconds = time.perf_counter() - t0
    named = dict(net.named_modules())
    sizes = [sum(p.numel() for p in named[m].parameters(recurse=False)) for m in modules]
    found, seconds = _kronfluence_scores(net, modules, x, y, xq, yq, ("ekfac", "kfac"), lam)
    rows = {s: _corr(v, reference) for s, v in found.items()}
    rows["identity"] = _corr(qg @ tg.T, reference)
    rows["exact per-layer blocks"] = _corr(exact.influence_scores(_block_diagonal(G, sizes), qg, tg, lam), reference)
    for s in ("kfac", "ekfac"):
        rows[f"{s} float64, exact expectation"] = _corr(
            exact.kronecker_influence(net, modules, x, qg, tg, lam, eigen_correct=s == "ekfac"), reference)
    return {"parameters": int(sum(sizes)), "train": len(x), "queries": len(xq),
            "vs_exact": rows, "seconds": {"exact": round(exact_seconds, 2), **seconds}}


def small_digits_mlp(seed: int):
    """The 1,210-parameter digits MLP 64→16→10 (seed 0 is tests/influence/test_exact_reference.py's), trained
    full-batch with Adam on the first 1,200 digits; the next 10 are the queries."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X[:1200]), y[:1200]).backward()
        opt.step()
    return net, ["0", "2"], X[:1200], y[:1200], X[1200:1210], y[1200:1210]


def zoo_mlp(wb):
    from compute.tasks import task_for

    lm = wb.models.get("zoo-digits-mlp")
    x, xt, y, yt = task_for(lm).split_arrays()
    net = lm.model
    modules = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return (net, modules, torch.from_numpy(x).float(), torch.from_numpy(y).long(), torch.from_numpy(xt).float(),
            torch.from_numpy(yt).long())


def run_exact(wb) -> dict:
    out = {}
    for seed in (0, 1, 2):
        net, mods, x, y, xq, yq = small_digits_mlp(seed)
        out[f"test-suite MLP, seed {seed}"] = exact_comparison(net, mods, x, y, xq, yq)
        print(json.dumps({f"seed {seed}": out[f"test-suite MLP, seed {seed}"]["vs_exact"]}), flush=True)
    net, mods, x, y, xt, yt = zoo_mlp(wb)
    out["zoo-digits-mlp"] = exact_comparison(net, mods, x, y, xt[:10], yt[:10])
    print(json.dumps({"zoo-digits-mlp": out["zoo-digits-mlp"]}), flush=True)
    return out


def run_damping(wb) -> dict:
    """EK-FAC vs exact as λ grows (same λ on both sides): large λ pulls every method towards the gradient dot
    product and the correlations to 1; the paper's 0.1 × mean eigenvalue is where curvature matters."""
    from influence import exact

    net, mods, x, y, xq, yq = small_digits_mlp(0)
    G = exact.gauss_newton(net, mods, x)
    qg, tg = exact.loss_gradients(net, mods, xq, yq), exact.loss_gradients(net, mods, x, y)
    out = {}
    for factor in (0.01, 0.1, 1.0, 10.0):
        lam = factor * exact.mean_eigenvalue(G)
        reference = exact.influence_scores(G, qg, tg, lam)
        found, _ = _kronfluence_scores(net, mods, x, y, xq, yq, ("ekfac",), lam)
        out[f"{factor} × mean eigenvalue"] = {"ekfac": _corr(found["ekfac"], reference),
                                              "identity": _corr(qg @ tg.T, reference)}
    return out


def run_lds(wb, n_subsets: int, n_queries: int = 50) -> dict:
    """LDS on the zoo digits MLP: the query losses of models retrained on random halves, predicted by summing
    each method's scores (computed once, on the zoo model trained on everything) over the half."""
    from scipy.stats import spearmanr

    from compute.digits_training import train_digits
    from compute.zoo_nets import DigitsMLP
    from influence import exact

    net, mods, x, y, xt, yt = zoo_mlp(wb)
    xq, yq = xt[:n_queries], yt[:n_queries]
    t0 = time.perf_counter()
    G = exact.gauss_newton(net, mods, x)
    lam = 0.1 * exact.mean_eigenvalue(G)
    qg, tg = exact.loss_gradients(net, mods, xq, yq), exact.loss_gradients(net, mods, x, y)
    scores = {"exact GGN": exact.influence_scores(G, qg, tg, lam).numpy(), "identity": (qg @ tg.T).numpy()}
    del G
    found, _ = _kronfluence_scores(net, mods, x, y, xq, yq, ("ekfac", "kfac"), lam)
    scores.update({s: v.double().numpy() for s, v in found.items()})
    scoring_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    subsets = [rng.choice(len(x), len(x) // 2, replace=False) for _ in range(n_subsets)]
    losses = np.zeros((n_subsets, n_queries))
    t0 = time.perf_counter()
    for j, idx in enumerate(subsets):
        torch.manual_seed(1000 + j)
        model = train_digits(DigitsMLP(), x[idx], y[idx])
        with torch.no_grad():
            losses[j] = nn.functional.cross_entropy(model(xq), yq, reduction="none").numpy()
    retrain_seconds = time.perf_counter() - t0
    member = np.zeros((n_subsets, len(x)))
    for j, idx in enumerate(subsets):
        member[j, idx] = 1.0
    lds = {}
    for name, tau in scores.items():
        predicted = -(member @ tau.T)  # [subsets, queries]: positive τ = helpful = a lower loss
        per_query = [spearmanr(predicted[:, q], losses[:, q]).statistic for q in range(n_queries)]
        lds[name] = round(float(np.nanmean(per_query)), 3)
    return {"model": "zoo-digits-mlp (17,610 parameters)", "train": len(x), "subsets": n_subsets,
            "subset_size": len(x) // 2, "queries": n_queries, "lds": lds,
            "seconds": {"scores (all methods)": round(scoring_seconds, 1), "retraining": round(retrain_seconds, 1)}}


def run_lm(wb) -> dict:
    from analyses.influence import InfluenceFactorsSpec, setup
    from analyses.influence_lm import InfluenceLMSpec

    lm = wb.models.get("zoo-lm")
    out = {}
    for modules in ("mlp", "mlp+attn"):
        factors = InfluenceFactorsSpec(model="zoo-lm", modules=modules, max_sequences=1000)
        t0 = time.perf_counter()
        res = wb.run(factors).result
        out[f"factors {modules}"] = {"seconds": round(time.perf_counter() - t0, 2), "stages": res.summary["timing"],
                                     "tracked_parameters": res.summary["tracked_parameters"],
                                     "sequences": res.summary["training_set"]}

    class Ctx:  # what setup() reads from an analysis context
        workbench = wb

        def model(self, name):
            return wb.models.get(name)

    s = setup(Ctx(), InfluenceFactorsSpec(model="zoo-lm", max_sequences=1000))
    loader = torch.utils.data.DataLoader(s.train, batch_size=32)
    hf = s.net
    t0 = time.perf_counter()
    for batch in loader:  # the peer: one epoch of training gradients over the same sequences
        hf.zero_grad()
        s.task.compute_train_loss(batch, hf).backward()
    hf.zero_grad()
    out["peer: one epoch of forward + backward, same sequences"] = {"seconds": round(time.perf_counter() - t0, 2)}
    for name, extra in (("full scan", {}), ("TF-IDF k=100", {"tfidf_k": 100}), ("rank-8 query", {"rank": 8}),
                        ("full scan, MLP + attention", {"modules": "mlp+attn"})):
        spec = InfluenceLMSpec(model="zoo-lm", max_sequences=1000, prompt=QUERY[0], completion=QUERY[1],
                               **{"modules": "mlp", **extra})
        t0 = time.perf_counter()
        r = wb.run(spec).result
        out[f"query, {name}"] = {"seconds": round(time.perf_counter() - t0, 2), "timing": r.summary["timing"],
                                 "scored": r.summary["scored"], "checks": r.summary["checks"],
                                 "top_1pct_share": round(r.summary["top_1pct_share_of_abs_influence"], 3)}
        print(json.dumps({name: out[f"query, {name}"]}), flush=True)
    del lm
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="exact,damping,lds,lm")
    ap.add_argument("--subsets", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_influence.json")))
    args = ap.parse_args(argv)
    wb = fresh_workbench("bench-influence-")
    out = {}
    for part in args.only.split(","):
        t0 = time.perf_counter()
        out[part] = {"exact": lambda: run_exact(wb), "damping": lambda: run_damping(wb),
                     "lds": lambda: run_lds(wb, args.subsets),
                     "lm": lambda: run_lm(wb)}[part]()
        print(json.dumps({part: out[part], "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
