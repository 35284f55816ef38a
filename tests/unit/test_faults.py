"""Faults a shared server meets (issue 16): a damaged result or a truncated activation shard is recomputed, not
a crash; a full disk (a file-size limit) while a result is written fails cleanly with earlier results intact and
nothing half-published; five processes writing to the store at once see no "database is locked"."""
import multiprocessing
import os
import resource
import signal

import pytest

from analyses.prompt import PromptSpec
from analyses.workbench import Workbench
from compute.settings import Settings


@pytest.fixture
def fresh(tmp_path):
    return Workbench(Settings(home=tmp_path, max_loaded_models=2, device="cpu"))


def test_a_damaged_result_is_recomputed(fresh):
    spec = PromptSpec(model="zoo-lm", prompt="def f(x):", top_k=3)
    first = fresh.run(spec)
    folder = fresh.results.get(first.result_key)
    table = next((folder / "tables").glob("*.parquet"))
    table.write_bytes(table.read_bytes()[:20])  # truncated
    assert fresh.cached(spec) is None  # discarded, not a crash
    again = fresh.run(spec)
    assert not again.cached and again.result.summary == first.result.summary
    assert fresh.run(spec).cached


def test_a_truncated_activation_shard_is_rebuilt(fresh):
    lm = fresh.models.get("zoo-lm")
    first = fresh.activations.get_or_build(lm, "zoo-stdlib-heldout", "blocks.0.hook_resid_post", n_tokens=2048, seq_len=64)
    want = first.load()
    shard = first.path / first.meta["shards"][0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    builds = fresh.activations.builds
    again = fresh.activations.get_or_build(lm, "zoo-stdlib-heldout", "blocks.0.hook_resid_post", n_tokens=2048, seq_len=64)
    assert fresh.activations.builds == builds + 1
    assert (again.load() == want).all()


def _write_under_a_file_size_limit(home, key, limit_bytes, queue):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as a full disk: writes fail with EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    from compute.results import ResultCache

    try:
        ResultCache(home / "results").put(key, lambda d: (d / "big.bin").write_bytes(b"x" * (4 * limit_bytes)))
        queue.put("written")
    except OSError as e:
        queue.put(f"OSError {e.errno}")


def test_a_full_disk_fails_the_write_cleanly_and_keeps_earlier_results(fresh):
    earlier = fresh.run(PromptSpec(model="zoo-lm", prompt="import os", top_k=3))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_write_under_a_file_size_limit, args=(fresh.settings.home, "k" * 16, 1 << 16, queue))
    p.start()
    p.join(60)
    assert queue.get(timeout=5).startswith("OSError")
    assert fresh.results.get("k" * 16) is None  # nothing half-published
    assert not list(fresh.results.root.glob(".tmp-*"))  # and the partial write was cleaned up
    assert fresh.run(PromptSpec(model="zoo-lm", prompt="import os", top_k=3)).cached
    assert fresh.cached(earlier.spec).summary == earlier.result.summary


def _hammer(path, worker, n, queue):
    from compute.store import Store

    store = Store(path)
    try:
        for i in range(n):
            h = store.put_spec({"kind": "prompt", "model": "zoo-lm", "prompt": f"{worker}-{i}"})
            job = f"{worker}-{i}"
            store.create_job(job, {"kind": "prompt", "model": "zoo-lm", "prompt": f"{worker}-{i}"}, "t")
            store.update_job(job, progress=0.5, message="half")
            store.finish_job(job, "done", result_key=h)
        queue.put("ok")
    except Exception as e:  # noqa: BLE001
        queue.put(f"{type(e).__name__}: {e}")


def test_five_processes_writing_the_store_at_once(tmp_path):
    from compute.store import Store

    path = tmp_path / "store.sqlite"
    Store(path)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(path, w, 60, queue)) for w in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = [queue.get(timeout=5) for _ in procs]
    assert outcomes == ["ok"] * 5, outcomes
    jobs = Store(path).list_jobs(limit=1000)
    assert len(jobs) == 300 and all(j.status == "done" for j in jobs)
