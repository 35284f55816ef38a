"""The services an analysis runs against, bundled once per process (server, worker or CLI)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from compute.activations import ActivationCache
from compute.cluster import TaskPool
from compute.errors import BadInput
from compute.jobs import JobManager
from compute.models import LoadedModel, ModelRegistry
from compute.results import ResultCache
from compute.settings import Settings, load_settings
from compute.specs import result_key
from compute.store import JobRecord, Store

from .acting import LOCAL
from .base import FitSpec, Result, Spec
from .registry import analysis_of, spec_from_dict

Progress = Callable[[float, str], None]
MAX_WORKER_THREADS = 2


@dataclass
class RunContext:
    workbench: "Workbench"
    progress: Progress

    def model(self, model_id: str) -> LoadedModel:
        return self.workbench.models.get(model_id)

    def require(self, spec: Spec, share: tuple[float, float] = (0.0, 1.0)) -> Result:
        """The result of another analysis this one builds on (e.g. the dashboards a feature page reads),
        through the same cache: stored once, then a disk read. Its progress fills `share` of ours."""
        lo, hi = share
        return self.workbench.run(spec, progress=lambda f, m="": self.progress(lo + (hi - lo) * f, m)).result


@dataclass
class RunOutcome:
    spec: Spec
    spec_hash: str
    result: Result
    cached: bool
    seconds: float
    result_key: str


class Workbench:
    user = LOCAL  # the local tool and the CLI act as their machine's operator (analyses.acting)

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self.store = Store(self.settings.store_target)
        self.models = ModelRegistry(self.settings)
        self.results = ResultCache(self.settings.results_dir)
        self.tasks = TaskPool(self.settings.ray_address)  # shards of parallel work: here, or on the Ray cluster
        self.activations = ActivationCache(self.settings.activations_dir, pool=self.tasks)
        self.jobs = JobManager(self.settings, self.store, worker_module="analyses.worker")
        self._submitting = threading.Lock()

    def startup(self) -> None:
        """Server start: sweep half-written results and mark orphaned jobs failed."""
        self.results.sweep_partial(older_than_s=60)
        self.jobs.reap()

    def result_key(self, spec: Spec, version: int | None = None) -> str:
        """Results depend on the spec, the model's weights, every artifact the spec depends on, and the
        version of the computation (`result_version()` unless given)."""
        fingerprint = self.models.fingerprint(spec.model)
        for dependency in spec.depends_on():
            fingerprint += ":" + dependency.fingerprint(self)
        version = spec.result_version() if version is None else version
        if version > 1:
            fingerprint += f":v{version}"
        return result_key(spec.hash, fingerprint)

    def check_access(self, spec: Spec) -> None:
        """Server paths the spec names (an SAE folder, a training file, through its dependencies) must lie in
        the operator's roots when the app serves a group; checked here, in the server, before a job is handed
        to a worker (whose own settings do not confine)."""
        if self.settings.path_roots is None:
            return
        for dependency in spec.depends_on():
            check = getattr(dependency, "check_access", None)
            if check is not None:
                check(self)
            elif isinstance(dependency, Spec):
                self.check_access(dependency)

    def artifact_folder(self, spec: FitSpec) -> Path:
        """The folder a fit keeps its artifact in (checkpoints, logs, the fitted weights)."""
        return self.settings.fit_dir(spec.ARTIFACT) / self.result_key(spec, spec.artifact_version())

    def cached(self, spec: Spec) -> Result | None:
        return self.stored_result(self.result_key(spec))

    def stored_result(self, key: str) -> Result | None:
        """The stored result, or None; a damaged one is discarded (and so recomputed), never a crash."""
        path = self.results.get(key)
        if path is None:
            return None
        try:
            return Result.load(path)
        except Exception:  # noqa: BLE001 - truncated parquet, corrupt JSON, a missing file
            self.results.discard(key)
            return None

    def run(self, spec: Spec | dict, progress: Progress | None = None, force: bool = False,
            owner: str = "") -> RunOutcome:
        if isinstance(spec, dict):
            spec = spec_from_dict(spec)
        spec.validate()
        self.check_access(spec)
        self.check_tokens(spec)
        t0 = time.perf_counter()
        h = self.store.put_spec(spec.to_dict(), creator=owner)
        key = self.result_key(spec)
        if not force:
            stored = self.stored_result(key)
            if stored is not None:
                return RunOutcome(spec, h, stored, True, time.perf_counter() - t0, key)
        analysis = analysis_of(spec.KIND)
        lm = self.models.get(spec.model)
        # re-entrant: an analysis that requires another (ctx.require) runs it under the lock it holds
        # on the CPU too: browser sessions are threads sharing one copy of the model, and an analysis hangs
        # hooks on it (run_with_cache, patching, steering), so two at once would read each other's activations
        # (five sessions at once once failed a prompt with an index error); the CPU's cores are busy either way
        lock = self.models.device_lock(lm.device)
        with lock:
            result = analysis.run(spec, RunContext(self, progress or (lambda f, m="": None)))
        self.results.put(key, result.save)
        self.keep_to_disk_budget()
        return RunOutcome(spec, h, result, False, time.perf_counter() - t0, key)

    def keep_to_disk_budget(self) -> list[Path]:
        """Evict least-recently-used results and activation sets past WORKBENCH_DISK_BUDGET_GB (never fitted
        artifacts, never what was used in the last ten minutes); see compute/disk_budget.py."""
        from compute.disk_budget import enforce

        return enforce([self.settings.results_dir, self.settings.activations_dir], self.settings.limits.disk_bytes)

    def submit(self, spec: Spec, owner: str = "") -> JobRecord:
        """A background job for `spec`, or the one already running it: six clicks on a button (or six users
        asking for the same analysis) follow one worker instead of starting six. The limits (Settings.limits)
        count queued and running jobs per user and in all."""
        spec.validate()
        self.models.resolve(spec.model)  # an unknown model (or a folder outside the roots) fails now, not in the worker
        self.check_access(spec)
        self.check_tokens(spec)
        spec.check_ready(self)
        limits = self.settings.limits
        with self._submitting:
            listed = self.jobs.list()
            active = [j for j in listed if j.active]
            running = next((j for j in active if j.spec_hash == spec.hash), None)
            if running is not None:
                return running
            key = self.result_key(spec)
            if self.results.get(key) is not None:  # already computed: its done job, or one recorded now
                done = next((j for j in listed if j.status == "done" and j.result_key == key), None)
                return done or self.jobs.record_done(spec.to_dict(), spec.describe(), owner, key)
            mine = [j for j in active if j.owner == owner]
            if limits.jobs_per_user and len(mine) >= limits.jobs_per_user:
                raise BadInput(f"you have {len(mine)} jobs queued or running, the limit per user on this server "
                               f"(an operator raises it with WORKBENCH_MAX_JOBS_PER_USER): wait for one, or cancel one "
                               f"on the Jobs page")
            if limits.jobs_total and len(active) >= limits.jobs_total:
                raise BadInput(f"{len(active)} jobs are queued or running on this server, its limit (an operator "
                               f"raises it with WORKBENCH_MAX_JOBS): try again when one has finished")
            return self.jobs.submit(spec.to_dict(), title=spec.describe(), owner=owner, resources=spec.resources())

    # as the local tool and the CLI use them; analyses.acting.Acting gives a signed-in user's view
    def share(self, spec: Spec) -> str:
        return self.store.put_spec(spec.to_dict())

    def may_cancel(self, rec: JobRecord) -> bool:
        return True

    def cancel(self, job_id: str) -> JobRecord | None:
        return self.jobs.cancel(job_id)

    def check_tokens(self, spec: Spec) -> None:
        budget = self.settings.limits.job_tokens
        asked = spec.token_budget()
        if budget and asked > budget:
            raise BadInput(f"this asks for {asked:,} tokens; one analysis may process at most {budget:,} on this "
                           f"server (an operator raises it with WORKBENCH_MAX_JOB_TOKENS)")

    def load_shared(self, spec_hash_: str) -> Spec:
        data = self.store.get_spec(spec_hash_)
        if data is None:
            raise BadInput(f"no analysis is stored under '{spec_hash_}' on this server (the link may come "
                           f"from another deployment)")
        return spec_from_dict(data, stored=True)


def configure_threads() -> None:
    """Keep torch to the cores we were given (the default oversubscribes small machines)."""
    import torch

    n = int(os.environ.get("WORKBENCH_THREADS", "0")) or min(MAX_WORKER_THREADS, os.cpu_count() or 1)
    torch.set_num_threads(n)
