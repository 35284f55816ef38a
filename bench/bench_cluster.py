"""Scaling of the cluster paths on this machine, each measured against its one-worker peer in the same run.

1. Sharded activation caching and dashboard encoding on a local Ray head with 1 and with 2 worker slots, beside
   the in-process path (no cluster): the same work, the same bits.
2. Data-parallel SAE training under torchrun with 2 processes (1 thread each) against the one-process trainer
   (2 threads), on the same cached activations (TopK, Feature Choice, Mutual Choice): tokens/s of the training
   loop (each run's own clock, process start excluded).
3. EK-FAC factors (kronfluence) of the zoo LM under torchrun, 1 vs 2 processes: wall time of the fit.

    .venv/bin/python bench/bench_cluster.py [--tokens 262144] [--out bench/results_cluster.json]

On 2 cores, 2 workers or processes can at best halve the time of work that 1 does single-threaded; the in-process
path already uses both cores through torch's threads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-cluster-"))

import torch  # noqa: E402

HOOK = "blocks.1.hook_resid_post"


def ray_scaling(wb, lm, sae_source: str, tokens: int) -> dict:
    import ray

    from analyses.sae_source import load_for_model, sae_location
    from compute.activations import ActivationCache
    from compute.cluster import TaskPool
    from sae.dashboards import encode_sparse
    from tests.services.ray_cluster import RayCluster

    out = {}
    t0 = time.perf_counter()
    local_set = ActivationCache(Path(tempfile.mkdtemp())).get_or_build(lm, "zoo-stdlib", HOOK, tokens)
    out["cache_in_process_s"] = time.perf_counter() - t0
    sae, hook = load_for_model(wb, sae_source, lm)
    aset = wb.activations.get_or_build(lm, "zoo-stdlib", hook, tokens)
    acts = aset.load(tokens)
    t0 = time.perf_counter()
    reference = encode_sparse(sae, acts)
    out["encode_in_process_s"] = time.perf_counter() - t0
    for cpus in (1, 2):
        head = RayCluster(cpus=cpus).start()
        try:
            pool = TaskPool(head.address)
            pool.map(abs, [(1,)] * 4)  # workers started and the connection made before the clock
            t0 = time.perf_counter()
            built = ActivationCache(Path(tempfile.mkdtemp()), pool=pool).get_or_build(lm, "zoo-stdlib", HOOK, tokens)
            out[f"cache_ray_{cpus}_workers_s"] = time.perf_counter() - t0
            assert torch.equal(built.load(), local_set.load())
            t0 = time.perf_counter()
            sharded = encode_sparse(sae, acts, pool=pool, source=(sae_location(wb, sae_source), "cpu", aset))
            out[f"encode_ray_{cpus}_workers_s"] = time.perf_counter() - t0
            assert (sharded.value == reference.value).all()
        finally:
            ray.shutdown()
            head.stop()
    out["cache_speedup_2_over_1_workers"] = out["cache_ray_1_workers_s"] / out["cache_ray_2_workers_s"]
    out["encode_speedup_2_over_1_workers"] = out["encode_ray_1_workers_s"] / out["encode_ray_2_workers_s"]
    out["shards"] = len(local_set.meta["shards"])
    return out


def ddp_scaling(wb, lm, tokens: int) -> dict:
    from sae.ddp_launch import train_data_parallel
    from sae.training import SAETrainer, TrainConfig

    aset = wb.activations.get_or_build(lm, "zoo-stdlib", "blocks.0.hook_resid_post", tokens)
    out = {}
    for arch in ("topk", "feature_choice", "mutual_choice"):
        cfg = TrainConfig(arch=arch, k=16, d_sae=1536, n_tokens=tokens, batch_size=4096, log_every=10**9,
                          checkpoint_every=10**9)
        # the peer: the one-process trainer as a run without --processes uses it (2 threads)
        one = SAETrainer(cfg, aset.load(tokens), Path(tempfile.mkdtemp()))
        one.train()
        folder = Path(tempfile.mkdtemp())
        train_data_parallel(cfg, aset, tokens, folder, 2, "cpu", threads_per_process=1)
        two = SAETrainer(cfg, aset.load(tokens), folder)
        two.try_resume()
        rates = {1: tokens / one.seconds, 2: tokens / two.seconds}
        out[arch] = {"tokens_per_s_1_process": rates[1], "tokens_per_s_2_processes": rates[2],
                     "speedup": rates[2] / rates[1]}
    return out


def factor_scaling(wb, sequences: int) -> dict:
    from analyses.influence import InfluenceFactorsSpec

    out = {}
    for processes in (1, 2):
        spec = InfluenceFactorsSpec(model="zoo-lm", max_sequences=sequences, processes=processes, seed=7)
        t0 = time.perf_counter()
        wb.run(spec, force=True)
        out[f"fit_s_{processes}_process{'es' if processes > 1 else ''}"] = time.perf_counter() - t0
    out["speedup"] = out["fit_s_1_process"] / out["fit_s_2_processes"]
    out["sequences"] = sequences
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=262_144)
    ap.add_argument("--sequences", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_cluster.json"))
    args = ap.parse_args()
    from analyses.sae_runs import SAETrainSpec
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    wb = Workbench()
    lm = wb.models.get("zoo-lm")
    sae_spec = SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", arch="topk", k=8, d_sae=256,
                            n_tokens=32_768, batch_size=1024, lr=2e-3, eval_tokens=4096)
    wb.run(sae_spec)
    result = {"machine": f"{os.cpu_count()} cores, torch {torch.__version__}", "tokens": args.tokens,
              "ray": ray_scaling(wb, lm, sae_spec.hash, args.tokens),
              "ddp_sae": ddp_scaling(wb, lm, args.tokens),
              "ekfac_factors": factor_scaling(wb, args.sequences)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
