"""kronfluence's own distributed factor fitting, on CPUs too.

kronfluence 1.0.1 fits factors data-parallel under torchrun: each process takes every W-th example
(DistributedEvalSampler), the covariances and Λ are summed onto the first process, which alone eigendecomposes
and writes; the others read the eigenvectors back from the shared folder. Its code assumes CUDA in four places,
which `enable_cpu_processes` lifts for a gloo process group (on GPUs kronfluence runs as it is, NCCL):
1. `State` goes distributed only when CUDA is there: it is told the torchrun world instead;
2. the covariance and Λ trackers reduce only CUDA tensors (`.cuda()`): they reduce the CPU tensors;
3. `get_time` synchronises CUDA: it all-reduces the time on the CPU;
4. its DDP wrapping passes device_ids=[local_rank], which CPU modules refuse: `wrap` wraps without them.
The examples' Fisher labels are drawn per example (influence.fisher), so the draws do not depend on the split.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn


def enable_cpu_processes() -> None:
    """After `dist.init_process_group("gloo")`, before the Analyzer is made."""
    import kronfluence.computer.factor_computer as factor_computer
    import kronfluence.computer.score_computer as score_computer
    import kronfluence.utils.logger as logger
    from kronfluence.module.tracker.factor import CovarianceTracker, LambdaTracker
    from kronfluence.utils.constants import COVARIANCE_FACTOR_NAMES, LAMBDA_FACTOR_NAMES
    from kronfluence.utils.state import State

    State._reset_state()
    state = State(cpu=True)  # a one-process CPU state, then told the world it is part of
    state.num_processes, state.process_index = dist.get_world_size(), dist.get_rank()
    state.local_process_index, state.device = dist.get_rank(), torch.device("cpu")

    def summed_on_first(names):
        def synchronize(self, num_processes: int) -> None:
            del num_processes
            if dist.is_initialized() and self.exist():
                for name in names:
                    self.module.storage[name] = self.module.storage[name].contiguous()
                    dist.reduce(tensor=self.module.storage[name], op=dist.ReduceOp.SUM, dst=0)
        return synchronize

    CovarianceTracker.synchronize = summed_on_first(COVARIANCE_FACTOR_NAMES)
    LambdaTracker.synchronize = summed_on_first(LAMBDA_FACTOR_NAMES)

    def get_time(state) -> float:
        t = torch.tensor(time.time(), dtype=torch.float64)
        if state.use_distributed:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    logger.get_time = factor_computer.get_time = score_computer.get_time = get_time


def wrap(model: nn.Module) -> nn.Module:
    """The prepared (tracked) model in DDP, as kronfluence expects it in a distributed run, on the CPU."""
    return nn.parallel.DistributedDataParallel(model)


def check_split(n_examples: int, batch: int, world: int) -> None:
    """kronfluence 1.0.1 calls a barrier every 1000 batches and skips it for a process's last two: processes
    with different batch counts where the smaller is 2 (mod 1000) wait at different barriers and hang."""
    counts = [-(-len(range(r, n_examples, world)) // batch) for r in range(world)]
    if max(counts) != min(counts) and min(counts) % 1000 == 2:
        raise ValueError(f"{n_examples} examples in batches of {batch} over {world} processes would hang "
                         f"kronfluence's barriers (batches per process {counts}); use another number of examples "
                         "or processes")
