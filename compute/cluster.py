"""Work on a Ray cluster (`WORKBENCH_RAY_ADDRESS=host:port`): whole jobs, and the shards of embarrassingly
parallel work inside them.

- A job becomes one Ray task (its resources: CPUs, GPUs, memory) running the same worker code as a local job;
  progress, cancellation and failure flow through the store exactly as for a local worker process, so the store
  must be one every node reaches (PostgreSQL via WORKBENCH_DATABASE_URL, or the home on a shared filesystem) and
  WORKBENCH_HOME a path every node sees.
- `TaskPool.map` runs a function over shards: in this process when there is no cluster (the embedded default), as
  Ray tasks otherwise (retried on another worker when a worker dies; cancelled with the job). Shard functions are
  module-level functions whose results do not depend on where they ran, so both paths give the same result.
Nodes import the workbench from REPO_ROOT (the same checkout path on every node: see the README, "Running on a
cluster").
"""
from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
# Ray's own settings for a workbench: no usage reporting, no token authentication (a lab cluster behind its
# firewall; set RAY_AUTH_MODE yourself otherwise), a fast shutdown.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
# What a task needs of the submitting process's environment.
FORWARDED = ("WORKBENCH_HOME", "WORKBENCH_DATABASE_URL", "WORKBENCH_DEVICE", "WORKBENCH_THREADS",
             "WORKBENCH_EXTRA_ANALYSES", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")
SHARD_RETRIES = 2  # a shard whose worker died runs again elsewhere (shards are pure functions of their inputs)

_lock = threading.Lock()


def ray_address() -> str | None:
    return os.environ.get("WORKBENCH_RAY_ADDRESS", "").strip() or None


def on_cluster() -> bool:
    """Inside a Ray task (a job or a shard): shards it asks for go to the same cluster."""
    return os.environ.get("WORKBENCH_ON_RAY") == "1"


def connect(address: str):
    """The `ray` module, connected to the cluster at `address` (once per process)."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    with _lock:
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARDED if k in os.environ}
            env.update(PYTHONPATH=str(REPO_ROOT), WORKBENCH_ON_RAY="1", WORKBENCH_RAY_ADDRESS=address, **RAY_ENV)
            try:
                ray.init(address=address, runtime_env={"env_vars": env}, logging_level="ERROR",
                         log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, TimeoutError) as e:
                from .errors import BadInput

                raise BadInput(f"cannot reach the Ray cluster at WORKBENCH_RAY_ADDRESS={address}: "
                               f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return ray


def _call(module: str, name: str, *args):
    return getattr(importlib.import_module(module), name)(*args)


class TaskPool:
    """Runs a module-level function over a list of argument tuples, in order of the list."""

    def __init__(self, address: str | None):
        self.address = address

    @property
    def parallel(self) -> bool:
        return self.address is not None

    def map(self, fn: Callable, calls: Sequence[tuple], progress: Callable[[float, str], None] | None = None,
            what: str = "shards", num_cpus: float = 1, num_gpus: float = 0) -> list[Any]:
        if not calls:
            return []
        if self.address is None:
            out = []
            for i, args in enumerate(calls):
                out.append(fn(*args))
                if progress:
                    progress((i + 1) / len(calls), f"{what}: {i + 1}/{len(calls)}")
            return out
        ray = connect(self.address)
        remote = ray.remote(_call).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=SHARD_RETRIES,
                                           retry_exceptions=False)
        refs = [remote.remote(fn.__module__, fn.__name__, *args) for args in calls]
        pending = list(refs)
        try:
            while pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
                if progress:  # may raise JobCancelled: the shards still queued or running are cancelled below
                    done = len(refs) - len(pending)
                    progress(done / len(refs), f"{what} on the Ray cluster: {done}/{len(refs)}")
            return ray.get(refs)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


class RayJobs:
    """Whole jobs as Ray tasks, for the JobManager: submit, poll, cancel."""

    def __init__(self, address: str):
        self.address = address
        self._refs: dict[str, Any] = {}

    def submit(self, worker_module: str, job_id: str, resources: dict) -> None:
        ray = connect(self.address)
        task = ray.remote(_call).options(max_retries=0, name=f"workbench-job-{job_id}", **resources)
        self._refs[job_id] = task.remote(worker_module, "main_on_cluster", job_id)

    def knows(self, job_id: str) -> bool:
        return job_id in self._refs

    def ended(self, job_id: str) -> tuple[bool, str | None]:
        """(the task has ended, why it failed if the worker could not say so itself)."""
        ref = self._refs.get(job_id)
        if ref is None:
            return False, None
        ray = connect(self.address)
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            return False, None
        del self._refs[job_id]
        try:
            ray.get(ref)
            return True, None
        except Exception as e:  # noqa: BLE001 - the worker died (killed, out of memory, node lost)
            return True, f"the Ray worker running this job died ({type(e).__name__}); nothing was stored for it"

    def kill(self, job_id: str) -> None:
        ref = self._refs.get(job_id)
        if ref is not None:
            connect(self.address).cancel(ref, force=True)
