"""Jobs outlive the server process that started them, and a worker killed while publishing its result
leaves nothing half-written that a later server would open (start-up sweeps the partial folder)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FAKE = "tests.fake_analyses"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_EXTRA_ANALYSES", FAKE)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    import tests.fake_analyses  # noqa: F401
    return tmp_path


def _server(tmp_path: Path, spec_line: str) -> subprocess.Popen:
    """A stand-in for the app's server process: it submits one job, prints its id, and stays up."""
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import tests.fake_analyses
        from tests.fake_analyses import SleepSpec
        from analyses.workbench import Workbench
        rec = Workbench().submit({spec_line})
        print(rec.id, flush=True)
        time.sleep(600)
    """))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env=os.environ.copy())


def test_a_job_finishes_after_its_server_is_killed_and_opens_from_a_new_one(home):
    server = _server(home, 'SleepSpec(model="zoo-digits-cnn", seconds=4.0)')
    job_id = server.stdout.readline().strip()
    from analyses.workbench import Workbench

    wb = Workbench()
    deadline = time.time() + 60
    while wb.jobs.get(job_id).status != "running" and time.time() < deadline:
        time.sleep(0.1)
    assert wb.jobs.get(job_id).status == "running"
    os.killpg(server.pid, signal.SIGKILL)  # the whole server process group, as a crash or a stop would
    server.wait(10)
    worker = wb.jobs.get(job_id).pid
    from compute.jobs import pid_alive

    assert pid_alive(worker), "the worker died with its server"
    fresh = Workbench()  # a new server on the same home
    fresh.startup()
    done = fresh.jobs.wait(job_id, timeout=90)
    assert done.status == "done", done.error
    from tests.fake_analyses import SleepSpec

    outcome = fresh.run(SleepSpec(model="zoo-digits-cnn", seconds=4.0))
    assert outcome.cached and outcome.result.summary == {"slept": 4.0}


def test_a_worker_killed_between_writing_and_publishing_leaves_only_a_swept_partial(home):
    from analyses.workbench import Workbench
    from tests.fake_analyses import SleepSpec

    wb = Workbench()
    spec = SleepSpec(model="zoo-digits-cnn", seconds=0.2, die_publishing=True)
    rec = wb.submit(spec)
    done = wb.jobs.wait(rec.id, timeout=90)
    assert done.status == "failed" and "ended without finishing" in done.error
    root = wb.results.root
    partial = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert len(partial) == 1 and (partial[0] / "COMPLETE").exists()  # written in full, never published
    assert wb.results.get(wb.result_key(spec)) is None and wb.cached(spec) is None
    assert not [p for p in root.iterdir() if not p.name.startswith(".")]
    Workbench().startup()  # a partial younger than a minute may be a live writer's: it stays
    assert partial[0].exists()
    old = time.time() - 3600
    os.utime(partial[0], (old, old))
    Workbench().startup()
    assert not partial[0].exists()
