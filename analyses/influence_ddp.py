"""One process of a data-parallel factor fit, as torchrun starts it (compute.torchrun writes the plan it reads):

    torchrun --standalone --nproc_per_node W -m analyses.influence_ddp PLAN.json

Each process loads the model and the training set itself, fits its share of the examples with kronfluence
(influence.distributed: gloo on CPUs, NCCL on GPUs) and the first writes the factors into the plan's folder.
"""
from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from compute.torchrun import write_progress

from .influence import fisher_draws, setup
from .registry import spec_from_dict
from .workbench import Workbench


def main(plan_path: str) -> None:
    from influence.distributed import check_split, enable_cpu_processes, wrap
    from influence.engine import Engine, tracked

    plan = json.loads(Path(plan_path).read_text())
    folder = Path(plan["folder"])
    wb = Workbench()
    spec = spec_from_dict(plan["spec"], stored=True)
    cuda = (wb.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if cuda:  # kronfluence's own path: its State starts the NCCL group and wraps the model
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dist.init_process_group("gloo")
        enable_cpu_processes()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    s = setup(SimpleNamespace(model=wb.models.get, workbench=wb), spec)
    data = fisher_draws(s.train, spec)
    engine = None
    try:
        with tracked(s.net, s.task, s.lock) as net:
            engine = Engine(net if cuda else wrap(net), s.task, folder, distributed=True)
            check_split(len(data), engine.train_batch, dist.get_world_size() if dist.is_initialized() else 1)
            first = not dist.is_initialized() or dist.get_rank() == 0
            engine.fit(data, spec.strategy, lambda f, m: write_progress(folder, f, m) if first else None)
    finally:
        # the DDP wrapper holds the process group: release it before the group goes (else a rare hang at exit)
        del engine
        gc.collect()
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
