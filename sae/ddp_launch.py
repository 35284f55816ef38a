"""Start a data-parallel SAE run under torchrun (compute.torchrun) and follow it; the checkpoint the first process
keeps lets a cancelled run resume."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

from compute.torchrun import run_torchrun


def train_data_parallel(cfg, activations, n_tokens: int, out_dir: Path, processes: int, device: str,
                        metadata: dict | None = None, progress: Callable[[float, str], None] | None = None,
                        threads_per_process: int = 1) -> None:
    """Train `cfg` on `activations` (an ActivationSet: every process reads it) over `processes` processes,
    leaving the checkpoint and the curves in `out_dir` as SAETrainer.train does."""
    plan = {"config": asdict(cfg), "activations": str(activations.path), "activations_meta": activations.meta,
            "n_tokens": n_tokens, "out_dir": str(out_dir), "metadata": metadata or {}, "device": device,
            "threads_per_process": threads_per_process}
    run_torchrun("sae.ddp_worker", plan, Path(out_dir), processes, progress, threads_per_process)
