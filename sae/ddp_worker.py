"""One process of a data-parallel SAE run, as torchrun starts it (`sae.ddp_launch` writes the plan it reads).

    torchrun --standalone --nproc_per_node W -m sae.ddp_worker PLAN.json   (compute.torchrun starts it)

gloo on CPUs; NCCL on GPUs, one per process (LOCAL_RANK). Every process reads the same cached activations and
takes its share of each batch; the first writes the checkpoint, the curves and the progress.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch
import torch.distributed as dist

from compute.torchrun import stop_requested, write_progress

from .distributed import Collective
from .training import SAETrainer, TrainConfig, TrainingStopped


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    cuda = plan["device"].startswith("cuda") and torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        torch.set_num_threads(max(1, int(plan.get("threads_per_process", 1))))
        from compute.activations import ActivationSet

        acts = ActivationSet(Path(plan["activations"]), plan["activations_meta"]).load(plan["n_tokens"])
        names = {f.name for f in fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in plan["config"].items() if k in names})
        out = Path(plan["out_dir"])
        trainer = SAETrainer(cfg, acts, out, metadata=plan.get("metadata"), device=device,
                             collective=Collective(), stop_requested=lambda: stop_requested(out),
                             progress=lambda f, m="": write_progress(out, f, m))
        trainer.try_resume()
        try:
            trainer.train()
        except TrainingStopped:
            pass  # the launcher asked (a cancelled job); the checkpoint holds the run so far
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
