"""SAE training benchmarks, all measured in one process on the same activations.

1. Step time of Feature Choice and Mutual Choice relative to TopK at equal shapes (target <= 1.15x).
   The three trainers run interleaved, round after round, so that machine noise hits them alike.
2. Training throughput (tokens/s) of our pipeline (sae.training.SAETrainer, TopK) against SAELens's
   own training loop (sae_lens.training.sae_trainer.SAETrainer, the loop its LanguageModelSAETrainingRunner
   drives) with SAELens's TopK SAE, fed the same cached activation tensor (LM forward passes excluded
   from both: they come from the activation cache).
3. Where the time goes: torch profiler's top operators for one Mutual Choice step.

    .venv/bin/python bench/bench_sae.py [--device cpu|cuda] [--rounds 5] [--steps 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def activations(n_tokens: int, device: str) -> torch.Tensor:
    """Layer-0 residual stream of the zoo LM, through the activation cache."""
    os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))
    from analyses.workbench import Workbench

    wb = Workbench()
    lm = wb.models.get("zoo-lm", device="cpu")
    return wb.activations.get_or_build(lm, "zoo-stdlib", "blocks.0.hook_resid_post", n_tokens).load().to(device)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_times(acts, device, rounds, steps, batch, d_sae, k):
    from sae.training import SAETrainer, TrainConfig

    trainers = {}
    for arch in ("topk", "feature_choice", "mutual_choice"):
        cfg = TrainConfig(arch=arch, k=k, d_sae=d_sae, batch_size=batch, n_tokens=batch * (rounds + 1) * steps * 2,
                          log_every=10**9, checkpoint_every=10**9)
        t = SAETrainer(cfg, acts, Path(tempfile.mkdtemp()), device=device)
        t.cfg = cfg
        trainers[arch] = t
    times = {a: [] for a in trainers}
    for r in range(rounds + 1):  # round 0 warms up
        for arch, tr in trainers.items():
            target = tr.step + steps
            sync(device)
            t0 = time.perf_counter()
            _train_until(tr, target)
            sync(device)
            if r:
                times[arch].append((time.perf_counter() - t0) / steps)
    med = {a: statistics.median(v) for a, v in times.items()}
    return {"step_s": med, "fc_over_topk": med["feature_choice"] / med["topk"],
            "mc_over_topk": med["mutual_choice"] / med["topk"]}


def _train_until(trainer, target):
    cfg = trainer.cfg
    from dataclasses import replace

    trainer.cfg = replace(cfg, n_tokens=target * cfg.batch_size)
    trainer.train()
    trainer.sae.train()
    trainer.cfg = cfg


def throughput(acts, device, rounds, steps, batch, d_sae, k):
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer as LensTrainer

    from sae.training import SAETrainer, TrainConfig

    ours, theirs = [], []
    n = steps * batch
    for r in range(rounds + 1):
        cfg = TrainConfig(arch="topk", k=k, d_sae=d_sae, batch_size=batch, n_tokens=n, log_every=steps,
                          checkpoint_every=10**9)
        tr = SAETrainer(cfg, acts, Path(tempfile.mkdtemp()), device=device)
        sync(device)
        t0 = time.perf_counter()
        tr.train()
        sync(device)
        if r:
            ours.append(n / (time.perf_counter() - t0))

        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=d_sae, k=int(k), device=device))
        perm = torch.randperm(len(acts))

        def provider():
            i = 0
            while True:
                idx = perm[(i * batch) % (len(acts) - batch):][:batch]
                i += 1
                yield acts[idx]

        lens_cfg = SAETrainerConfig(total_training_samples=n, train_batch_size_samples=batch, lr=1e-3, lr_end=1e-3,
                                   device=device)
        lt = LensTrainer(lens_cfg, sae, provider())
        sync(device)
        t0 = time.perf_counter()
        lt.fit()
        sync(device)
        if r:
            theirs.append(n / (time.perf_counter() - t0))
    o, t = statistics.median(ours), statistics.median(theirs)
    return {"ours_tokens_per_s": o, "sae_lens_tokens_per_s": t, "ours_over_sae_lens": o / t}


def profile_step(acts, device, batch, d_sae, k, arch="mutual_choice"):
    from torch.profiler import ProfilerActivity, profile

    from sae.training import SAETrainer, TrainConfig

    cfg = TrainConfig(arch=arch, k=k, d_sae=d_sae, batch_size=batch, n_tokens=batch * 20, log_every=10**9,
                      checkpoint_every=10**9)
    tr = SAETrainer(cfg, acts, Path(tempfile.mkdtemp()), device=device)
    _train_until(tr, 10)
    acts_kinds = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=acts_kinds) as prof:
        _train_until(tr, 20)
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    rows = []
    for e in sorted(prof.key_averages(), key=lambda e: -getattr(e, key))[:8]:
        rows.append({"op": e.key, "ms_per_step": getattr(e, key) / 1000 / 10})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--d-sae", type=int, default=1536)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=262_144)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("WORKBENCH_THREADS", "2")))
    acts = activations(args.tokens, args.device)
    shape = {"d_in": acts.shape[1], "d_sae": args.d_sae, "k": args.k, "batch": args.batch, "device": args.device,
             "threads": torch.get_num_threads()}
    out = {"shape": shape,
           "step_time": step_times(acts, args.device, args.rounds, args.steps, args.batch, args.d_sae, args.k),
           "throughput": throughput(acts, args.device, args.rounds, args.steps, args.batch, args.d_sae, args.k),
           "mutual_choice_profile": profile_step(acts, args.device, args.batch, args.d_sae, args.k)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
