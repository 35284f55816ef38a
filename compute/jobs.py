"""Background jobs: long specs run in worker processes, outside any browser session.

- `JobManager.submit` records the job (status `queued`) and starts a worker process
  (`python -m <worker_module> <job_id>`) in its own session, so closing a tab -- or the tab's
  Streamlit session ending -- does not stop it.
- Workers take a file lock ("the compute slot") before running, so jobs run one at a time per
  machine and queue behind each other, across server restarts too.
- Progress and the cancel flag travel through the SQLite store; a worker checks the flag on every
  progress report and stops with `JobCancelled`. A worker that ignores it is killed after a grace period.
- A worker that dies (crash, OOM kill) leaves its job `running` with a dead pid; `reap()` (called on
  every listing and at server start) marks such orphans failed. Results are published atomically
  by the result cache, so a dead worker never leaves a half-written result.
- With a Ray cluster (WORKBENCH_RAY_ADDRESS; compute.cluster) a job is a Ray task instead of a local process:
  the same worker code, progress and cancel flag through the same store; Ray schedules it by its resources; a
  task whose worker died is marked failed from the task's own outcome (not a pid, which may be on another node).
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import JobCancelled
from .settings import Settings
from .store import JobRecord, Store

CANCEL_GRACE_S = 10.0


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class JobManager:
    def __init__(self, settings: Settings, store: Store, worker_module: str):
        self.settings = settings
        self.store = store
        self.worker_module = worker_module
        self.settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[str, subprocess.Popen] = {}
        self._cluster_reasons: dict[str, str | None] = {}
        self.cluster = None
        if settings.ray_address:
            from .cluster import RayJobs

            self.cluster = RayJobs(settings.ray_address)

    def log_path(self, job_id: str) -> Path:
        return self.settings.jobs_dir / f"{job_id}.log"

    def submit(self, spec: dict, title: str | None = None, owner: str = "", resources: dict | None = None) -> JobRecord:
        """`resources`: what a Ray task of this job asks for (num_cpus, num_gpus, memory); local jobs queue on the
        machine's compute slot instead."""
        job_id = uuid.uuid4().hex[:12]
        if self.cluster is not None:
            self.store.create_job(job_id, spec, title or spec.get("kind", "job"), owner=owner, runner="ray")
            try:
                self.cluster.submit(self.worker_module, job_id, resources or {"num_cpus": 1})
            except BaseException as e:
                self.store.finish_job(job_id, "failed", error=f"could not submit to the Ray cluster: {e}")
                raise
            return self.store.get_job(job_id)
        rec = self.store.create_job(job_id, spec, title or spec.get("kind", "job"), owner=owner)
        env = {**os.environ, "WORKBENCH_HOME": str(self.settings.home)}
        with open(self.log_path(job_id), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", self.worker_module, job_id], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, cwd=str(Path(__file__).resolve().parents[1]))
        self._children[job_id] = proc
        self.store.update_job(job_id, pid=proc.pid)
        return self.store.get_job(job_id) or rec

    def record_done(self, spec: dict, title: str, owner: str, result_key: str) -> JobRecord:
        """A job whose result is already stored: recorded as done at once, with no worker process (a worker
        costs seconds of imports and hundreds of MB, and would only read the cache)."""
        job_id = uuid.uuid4().hex[:12]
        self.store.create_job(job_id, spec, title, owner=owner)
        self.store.finish_job(job_id, "done", result_key=result_key, message="already computed: from the result cache")
        return self.store.get_job(job_id)

    def get(self, job_id: str) -> JobRecord | None:
        self._poll_children()
        rec = self.store.get_job(job_id)
        if rec and rec.active and self._gone(rec):
            self._mark_orphan(rec)
            rec = self.store.get_job(job_id)
        return rec

    def _gone(self, rec: JobRecord) -> bool:
        """An active job whose worker has ended without saying so (crashed, killed)."""
        if rec.runner == "ray":
            if self.cluster is None or not self.cluster.knows(rec.id):
                return False  # submitted by another server (or before a restart): its own server follows it
            ended, why = self.cluster.ended(rec.id)
            self._cluster_reasons[rec.id] = why
            return ended and self.store.get_job(rec.id).active
        return rec.pid is not None and not pid_alive(rec.pid)

    def list(self, limit: int = 200) -> list[JobRecord]:
        self.reap()
        return self.store.list_jobs(limit)

    def cancel(self, job_id: str) -> JobRecord | None:
        rec = self.store.get_job(job_id)
        if rec is None or not rec.active:
            return rec
        self.store.update_job(job_id, cancel_requested=time.time(), message="cancelling…")
        return self.store.get_job(job_id)

    def enforce_cancels(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Kill workers that were asked to cancel more than grace_s ago and are still going."""
        now = time.time()
        for rec in self.store.list_jobs():
            if rec.runner == "ray" and rec.active and rec.cancel_requested and now - rec.cancel_requested > grace_s:
                if self.cluster is not None and self.cluster.knows(rec.id):
                    self.cluster.kill(rec.id)
                    self.store.finish_job(rec.id, "cancelled", message="cancelled (Ray task stopped)")
                continue
            if rec.runner == "local" and rec.active and rec.cancel_requested and pid_alive(rec.pid):
                if now - rec.cancel_requested > grace_s:
                    try:
                        os.killpg(rec.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    self.store.finish_job(rec.id, "cancelled", message="cancelled (worker killed)")

    def reap(self) -> int:
        """Mark jobs whose worker is gone as failed (and kill workers that ignore a cancel). Returns how
        many were marked."""
        self._poll_children()
        self.enforce_cancels()
        n = 0
        for rec in self.store.list_jobs():
            if rec.active and self._gone(rec):
                self._mark_orphan(rec)
                n += 1
        return n

    def wait(self, job_id: str, timeout: float = 600, poll: float = 0.2) -> JobRecord:
        deadline = time.time() + timeout
        while True:
            rec = self.get(job_id)
            if rec is None or not rec.active or time.time() > deadline:
                return rec
            time.sleep(poll)

    def _poll_children(self) -> None:
        for job_id, proc in list(self._children.items()):
            if proc.poll() is not None:  # reap our zombies
                del self._children[job_id]

    def _mark_orphan(self, rec: JobRecord) -> None:
        if rec.cancel_requested:
            self.store.finish_job(rec.id, "cancelled", message="cancelled")
        else:
            why = self._cluster_reasons.pop(rec.id, None) if rec.runner == "ray" else None
            self.store.finish_job(rec.id, "failed",
                                  error=why or "the worker process ended without finishing (crashed, killed, or the "
                                               "server restarted); nothing was stored for this job")


class JobContext:
    """What a running job sees: progress reporting that doubles as the cancellation check."""

    def __init__(self, store: Store, job_id: str, min_interval_s: float = 0.25):
        self.store = store
        self.job_id = job_id
        self._last = 0.0
        self._min_interval = min_interval_s

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.time()
        if now - self._last >= self._min_interval or fraction >= 1.0:
            self._last = now
            self.store.update_job(self.job_id, progress=float(min(max(fraction, 0.0), 1.0)), message=message)
        rec = self.store.get_job(self.job_id)
        if rec is not None and rec.cancel_requested:
            raise JobCancelled()

    def cancelled(self) -> bool:
        rec = self.store.get_job(self.job_id)
        return bool(rec and rec.cancel_requested)


@contextmanager
def compute_slot(settings: Settings, is_cancelled: Callable[[], bool], poll_s: float = 0.5) -> Iterator[None]:
    """Hold the machine-wide compute slot (a file lock), checking for cancellation while queued."""
    path = settings.jobs_dir / "compute.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if is_cancelled():
                    raise JobCancelled() from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
