"""Start a data-parallel run under torchrun and follow it (SAE training, influence factors).

The run's first process writes `progress.json` ({fraction, message}) in the run's folder; progress (and with it
cancellation) flows through the caller's callback as in a one-process run. A cancel first asks the run to stop
(a STOP file the processes check together at each step, so the first can save where they all are), then stops
every process that is still there after a grace period.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRESS = "progress.json"
STOP = "STOP"
LOG = "torchrun.log"
STOP_GRACE_S = 20.0


def torchrun_command(processes: int, module: str, plan: Path) -> list[str]:
    """This interpreter's torchrun on one machine (`--standalone`: rendezvous on loopback)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", module, str(plan)]


def stop_requested(folder: Path) -> bool:
    """For the processes of a run: has the launcher asked them to stop?"""
    return (Path(folder) / STOP).exists()


def write_progress(folder: Path, fraction: float, message: str) -> None:
    """For the first process of a run: what the launcher reads."""
    tmp = Path(folder) / (PROGRESS + ".tmp")
    tmp.write_text(json.dumps({"fraction": fraction, "message": message}))
    tmp.replace(Path(folder) / PROGRESS)


def run_torchrun(module: str, plan: dict, folder: Path, processes: int,
                 progress: Callable[[float, str], None] | None = None, threads_per_process: int = 1,
                 poll_s: float = 0.5) -> None:
    """Run `python -m module PLAN.json` in `processes` processes; PLAN.json (in `folder`) holds `plan`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROGRESS).unlink(missing_ok=True)
    (folder / STOP).unlink(missing_ok=True)
    plan_path = folder / "torchrun_plan.json"
    plan_path.write_text(json.dumps(plan))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process), "PYTHONPATH": str(REPO_ROOT)}
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen(torchrun_command(processes, module, plan_path), cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            if progress is not None:
                try:
                    seen = json.loads((folder / PROGRESS).read_text())
                except (OSError, ValueError):
                    continue
                progress(float(seen["fraction"]), f"{seen['message']} ({processes} processes)")
    except BaseException:  # cancelled (or interrupted): ask the run to stop, then make sure it has
        (folder / STOP).write_text("")
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        _stop(proc)
        raise
    if proc.returncode != 0:
        tail = (folder / LOG).read_text(errors="replace").strip().splitlines()[-15:]
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
