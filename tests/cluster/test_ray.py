"""Jobs and shards on a real Ray cluster: a head started on loopback with two worker slots (tests.services),
WORKBENCH_RAY_ADDRESS pointing at it. Results must equal the local path's; a cancel, a killed worker and a killed
shard each end the way they do locally (or better: a shard is retried)."""
from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import pytest
import torch

from compute.activations import ActivationCache
from compute.cluster import TaskPool

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from tests.services.ray_cluster import RayCluster

    head = RayCluster(cpus=2).start()
    yield head
    import ray

    ray.shutdown()
    head.stop()


@pytest.fixture
def ray_wb(cluster, wb, monkeypatch):
    """The session's workbench (its home, models, SAEs) with jobs and shards on the cluster."""
    import tests.fake_analyses  # noqa: F401  (the test kinds, here and in the cluster's workers)
    from analyses.workbench import Workbench

    monkeypatch.setenv("WORKBENCH_EXTRA_ANALYSES", "tests.fake_analyses")
    monkeypatch.setenv("WORKBENCH_RAY_ADDRESS", cluster.address)
    return Workbench(dataclasses.replace(wb.settings, ray_address=cluster.address))


def _wait(pred, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_a_sharded_activation_cache_on_the_cluster_equals_the_local_one(ray_wb, zoo_lm, tmp_path):
    local = ActivationCache(tmp_path / "local").get_or_build(zoo_lm, "zoo-stdlib", "blocks.1.hook_resid_post",
                                                             140_000)
    seen = []
    sharded = ActivationCache(tmp_path / "ray", pool=ray_wb.tasks).get_or_build(
        zoo_lm, "zoo-stdlib", "blocks.1.hook_resid_post", 140_000, progress=lambda f, m="": seen.append(m))
    assert len(sharded.meta["shards"]) == len(local.meta["shards"]) == 3
    assert any("on the Ray cluster" in m for m in seen)
    assert {k: v for k, v in sharded.meta.items()} == local.meta
    a, b = local.load(), sharded.load()
    assert a.shape == b.shape and torch.equal(a, b)  # the same batches through the same weights: the same bits
    assert torch.equal(local.tokens(), sharded.tokens())


def test_a_dashboard_job_runs_on_the_cluster_and_equals_the_local_run(ray_wb, small_sae):
    from analyses.sae_dashboard import SAEDashboardSpec

    spec = SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=140_000, n_top=5)  # 3 shards of each kind
    rec = ray_wb.submit(spec)
    assert rec.runner == "ray"
    done = ray_wb.jobs.wait(rec.id, timeout=300)
    assert done.status == "done", done.error
    from analyses.base import Result

    on_cluster = Result.load(ray_wb.results.get(done.result_key))
    local = ray_wb.run(spec, force=True).result  # the same spec, computed here
    for name in ("features", "examples", "histograms", "cofiring"):
        a, b = on_cluster.tables[name], local.tables[name]
        assert a.shape == b.shape, name
        numeric = a.select_dtypes("number").columns
        assert np.allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), atol=1e-5, equal_nan=True), name
    assert on_cluster.summary["firings"] == local.summary["firings"]


def test_sharded_encoding_on_the_cluster_equals_the_local_encoding(ray_wb, small_sae, zoo_lm):
    from analyses.sae_source import load_for_model, sae_location
    from sae.dashboards import encode_sparse

    sae, hook = load_for_model(ray_wb, small_sae, zoo_lm)
    aset = ray_wb.activations.get_or_build(zoo_lm, "zoo-stdlib", hook, 140_000)
    acts = aset.load(140_000)
    seen = []
    here = encode_sparse(sae, acts)
    there = encode_sparse(sae, acts, pool=ray_wb.tasks, source=(sae_location(ray_wb, small_sae), "cpu", aset),
                          progress=lambda f, m="": seen.append(m))
    assert any("on the Ray cluster: 3/3" in m for m in seen)
    assert np.array_equal(here.token, there.token) and np.array_equal(here.feature, there.feature)
    assert np.array_equal(here.value, there.value)


def test_influence_scores_over_training_shards_on_the_cluster_equal_the_local_scores(ray_wb, wb, monkeypatch):
    import analyses.influence_lm as influence_lm
    from analyses.influence_lm import InfluenceLMSpec

    monkeypatch.setattr(influence_lm, "SCORE_SHARD", 24)  # 48 sequences: 2 shards
    spec = InfluenceLMSpec(model="zoo-lm", max_sequences=48, prompt="def add(a, b):\n    return", completion=" a + b",
                           check=False)
    seen = []
    sharded = ray_wb.run(spec, progress=lambda f, m="": seen.append(m)).result
    assert any("scoring training shards on the Ray cluster: 2/2" in m for m in seen)
    local = wb.run(spec, force=True).result
    a, b = sharded.tables["scores"], local.tables["scores"]
    assert (a.row.to_numpy() == b.row.to_numpy()).all()
    assert np.allclose(a.score, b.score, rtol=1e-4, atol=1e-6 * np.abs(b.score).max())
    assert list(sharded.tables["helpful"]["row"]) == list(local.tables["helpful"]["row"])


def test_a_cancelled_cluster_job_stops(ray_wb):
    from tests.fake_analyses import SleepSpec

    rec = ray_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=120))
    assert _wait(lambda: ray_wb.jobs.get(rec.id).progress > 0)
    ray_wb.jobs.cancel(rec.id)
    done = ray_wb.jobs.wait(rec.id, timeout=60)
    assert done.status == "cancelled" and done.result_key is None


def test_a_job_whose_ray_worker_is_killed_is_marked_failed(ray_wb):
    from tests.fake_analyses import SleepSpec

    rec = ray_wb.submit(SleepSpec(model="zoo-digits-cnn", seconds=121))
    assert _wait(lambda: ray_wb.jobs.get(rec.id).progress > 0)
    os.kill(ray_wb.jobs.get(rec.id).pid, signal.SIGKILL)
    done = ray_wb.jobs.wait(rec.id, timeout=60)
    assert done.status == "failed" and "Ray worker running this job died" in done.error
    assert done.result_key is None


def test_a_shard_whose_worker_is_killed_runs_again_and_the_result_is_whole(ray_wb, tmp_path):
    from tests.fake_analyses import slow_square

    calls = [(x, 3.0, str(tmp_path)) for x in range(4)]
    pool = ray_wb.tasks

    def kill_first_runner(fraction, message=""):
        started = sorted(tmp_path.iterdir())
        if started and not (tmp_path / "killed").exists():
            (tmp_path / "killed").write_text(started[0].name)
            os.kill(int(started[0].name.split("-")[1]), signal.SIGKILL)

    assert pool.map(slow_square, calls, progress=kill_first_runner) == TaskPool(None).map(slow_square, calls)
    victim = (tmp_path / "killed").read_text().split("-")[0]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(f"{victim}-")]) >= 2  # ran twice
