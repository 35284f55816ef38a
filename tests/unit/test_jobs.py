import time

import pytest

from compute.jobs import pid_alive

FAKE = "tests.fake_analyses"


@pytest.fixture
def jobs_wb(monkeypatch, tmp_path, store_target):
    """A workbench whose store is each database in turn; its worker processes inherit the environment."""
    monkeypatch.setenv("WORKBENCH_EXTRA_ANALYSES", FAKE)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    if isinstance(store_target, str):
        monkeypatch.setenv("WORKBENCH_DATABASE_URL", store_target)
    import tests.fake_analyses  # noqa: F401  (registers the kind in this process too)
    from analyses.workbench import Workbench

    return Workbench()


def _wait_for(pred, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_job_runs_in_background_and_lands_in_cache(jobs_wb):
    from tests.fake_analyses import SleepSpec

    rec = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=0.5))
    assert rec.status in ("queued", "running")
    done = jobs_wb.jobs.wait(rec.id, timeout=90)
    assert done.status == "done", done.error
    assert done.progress == 1.0
    assert jobs_wb.results.get(done.result_key) is not None
    # the same spec run inline afterwards is a cache hit
    assert jobs_wb.run(SleepSpec(model="zoo-digits-cnn", seconds=0.5)).cached


def test_cancel_stops_a_running_job_and_stores_nothing(jobs_wb):
    from tests.fake_analyses import SleepSpec

    rec = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=60))
    assert _wait_for(lambda: jobs_wb.jobs.get(rec.id).progress > 0)
    jobs_wb.jobs.cancel(rec.id)
    done = jobs_wb.jobs.wait(rec.id, timeout=30)
    assert done.status == "cancelled"
    assert done.result_key is None
    assert not pid_alive(done.pid) or _wait_for(lambda: not pid_alive(done.pid), 10)


def test_a_worker_that_ignores_cancel_is_killed(jobs_wb):
    from tests.fake_analyses import SleepSpec

    rec = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=120, ignore_cancel=True))
    assert _wait_for(lambda: jobs_wb.jobs.get(rec.id).status == "running")
    jobs_wb.jobs.cancel(rec.id)
    jobs_wb.jobs.enforce_cancels(grace_s=0)
    done = jobs_wb.jobs.wait(rec.id, timeout=30)
    assert done.status == "cancelled"
    assert _wait_for(lambda: not pid_alive(done.pid), 10)


def test_crashed_worker_is_marked_failed_without_a_result(jobs_wb):
    from tests.fake_analyses import SleepSpec

    rec = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=1.0, crash=True))
    done = jobs_wb.jobs.wait(rec.id, timeout=90)
    assert done.status == "failed"
    assert "ended without finishing" in done.error
    assert done.result_key is None
    assert not [p for p in jobs_wb.results.root.iterdir() if not p.name.startswith(".")]


def test_restart_marks_orphaned_jobs_failed(jobs_wb):
    # a job the previous server started, whose worker is gone
    from analyses.workbench import Workbench

    jobs_wb.store.create_job("orphan01", {"kind": "test_sleep", "model": "zoo-digits-cnn"}, "orphan")
    jobs_wb.store.update_job("orphan01", status="running", pid=2**22 + 12345)
    Workbench(jobs_wb.settings).startup()
    assert jobs_wb.store.get_job("orphan01").status == "failed"


def test_jobs_queue_behind_the_compute_slot(jobs_wb):
    from tests.fake_analyses import SleepSpec

    a = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=2.0))
    b = jobs_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=0.2))
    assert _wait_for(lambda: jobs_wb.jobs.get(a.id).status == "running" or jobs_wb.jobs.get(b.id).status == "running")
    # never both running at once
    for _ in range(20):
        states = {jobs_wb.jobs.get(a.id).status, jobs_wb.jobs.get(b.id).status}
        assert states != {"running"}
        time.sleep(0.05)
    assert jobs_wb.jobs.wait(a.id, 90).status == "done"
    assert jobs_wb.jobs.wait(b.id, 90).status == "done"


def test_unknown_model_is_refused_at_submit(jobs_wb):
    from compute.errors import ModelNotFound
    from tests.fake_analyses import SleepSpec

    with pytest.raises(ModelNotFound, match="unknown model"):
        jobs_wb.submit(SleepSpec(model="no-such-model"))
