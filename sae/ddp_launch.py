"""Start a data-parallel SAE run under torchrun and follow it: progress (and cancellation) flow through the
caller's callback as in a one-process run; a cancel stops every process, and the checkpoint the first process
keeps lets the run resume.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from .ddp_worker import PROGRESS

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG = "ddp.log"


def torchrun_command(processes: int, plan: Path) -> list[str]:
    """The launch, with this interpreter's torchrun; one machine (`--standalone` rendezvous on loopback)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "sae.ddp_worker", str(plan)]


def train_data_parallel(cfg, activations, n_tokens: int, out_dir: Path, processes: int, device: str,
                        metadata: dict | None = None, progress: Callable[[float, str], None] | None = None,
                        threads_per_process: int = 1, poll_s: float = 0.5) -> None:
    """Train `cfg` on `activations` (an ActivationSet: every process reads it) over `processes` processes,
    leaving the checkpoint and the curves in `out_dir` as SAETrainer.train does."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PROGRESS).unlink(missing_ok=True)
    plan = out_dir / "ddp_plan.json"
    plan.write_text(json.dumps({"config": asdict(cfg), "activations": str(activations.path),
                                "activations_meta": activations.meta, "n_tokens": n_tokens,
                                "out_dir": str(out_dir), "metadata": metadata or {}, "device": device,
                                "threads_per_process": threads_per_process}))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process), "PYTHONPATH": str(REPO_ROOT)}
    with open(out_dir / LOG, "ab") as log:
        proc = subprocess.Popen(torchrun_command(processes, plan), cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            if progress is not None:
                try:
                    seen = json.loads((out_dir / PROGRESS).read_text())
                except (OSError, ValueError):
                    continue
                progress(float(seen["fraction"]), f"{seen['message']} ({processes} processes)")
    except BaseException:  # cancelled (or interrupted): stop every process of the run; the checkpoint stays
        _stop(proc)
        raise
    if proc.returncode != 0:
        tail = (out_dir / LOG).read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"the data-parallel run failed (torchrun exit {proc.returncode}); its log ends:\n"
                           + "\n".join(tail))


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
