"""A job worker process: `python -m analyses.worker JOB_ID`.

Runs one stored spec inside the machine-wide compute slot, reporting progress through the store,
and publishes the result atomically. Every way out writes a final status first.

On a Ray cluster (compute.cluster) the same code runs as a Ray task, `main_on_cluster`: Ray's scheduler, not the
machine's compute slot, decides what runs where.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
import traceback

from compute.errors import JobCancelled, WorkbenchError
from compute.jobs import JobContext, compute_slot

from .registry import spec_from_dict
from .workbench import Workbench, configure_threads


def main(job_id: str, on_cluster: bool = False) -> int:
    wb = Workbench()
    rec = wb.store.get_job(job_id)
    if rec is None:
        print(f"no job {job_id}", file=sys.stderr)
        return 2
    ctx = JobContext(wb.store, job_id)
    try:
        spec = spec_from_dict(wb.store.get_spec(rec.spec_hash), stored=True)
        with nullcontext() if on_cluster else compute_slot(wb.settings, ctx.cancelled):
            wb.store.update_job(job_id, status="running", started=time.time(), message="starting",
                                **({"pid": os.getpid()} if on_cluster else {}))
            configure_threads()
            outcome = wb.run(spec, progress=ctx.progress)
        wb.store.finish_job(job_id, "done", result_key=outcome.result_key,
                            message="done (from cache)" if outcome.cached else f"done in {outcome.seconds:.1f}s")
        return 0
    except JobCancelled:
        wb.store.finish_job(job_id, "cancelled", message="cancelled")
        return 0
    except WorkbenchError as e:
        wb.store.finish_job(job_id, "failed", error=str(e))
        return 1
    except BaseException as e:  # noqa: BLE001 - a job must always end with a status
        traceback.print_exc()
        wb.store.finish_job(job_id, "failed", error=f"{type(e).__name__}: {e}")
        return 1


def main_on_cluster(job_id: str) -> int:
    return main(job_id, on_cluster=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
