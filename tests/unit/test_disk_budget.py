"""The disk budget (issue 16): past WORKBENCH_DISK_BUDGET_GB the least recently *used* results and activation
sets go first; what was used in the last ten minutes stays (a running job's, a page's); fitted artifacts (trained
SAEs, factors) are never touched; a link to an evicted result still opens, by recomputing it."""
import os
import time

from analyses.prompt import PromptSpec
from analyses.workbench import Workbench
from compute.disk_budget import MARKER, enforce
from compute.results import ResultCache
from compute.settings import Limits, Settings

MB = 1 << 20


def _entry(cache: ResultCache, key: str, size: int, hours_ago: float):
    path = cache.put(key, lambda d: (d / "payload.bin").write_bytes(b"x" * size))
    stamp = time.time() - 3600 * hours_ago
    (path / MARKER).touch()
    os.utime(path / MARKER, (stamp, stamp))
    return path


def test_least_recently_used_go_first_and_recent_or_fitted_stay(tmp_path):
    cache = ResultCache(tmp_path / "results")
    old, older, oldest = (_entry(cache, k, 3 * MB, h) for k, h in (("old", 1), ("older", 2), ("oldest", 3)))
    recent = _entry(cache, "recent", 3 * MB, 0)  # just used: kept even though the caches are over budget
    fitted = tmp_path / "saes" / "run" / "sae"
    fitted.mkdir(parents=True)
    (fitted / "sae_weights.safetensors").write_bytes(b"w" * 3 * MB)
    assert cache.get("older") is not None  # reading it makes it the most recently used of the three
    evicted = enforce([tmp_path / "results", tmp_path / "activations"], budget_bytes=7 * MB)
    assert [p.name for p in evicted] == ["oldest", "old"]
    assert older.exists() and recent.exists() and not old.exists() and not oldest.exists()
    assert (fitted / "sae_weights.safetensors").exists()
    assert not list((tmp_path / "results").glob(".tmp-*"))
    assert enforce([tmp_path / "results"], budget_bytes=0) == []  # 0: no budget


def test_a_link_to_an_evicted_result_recomputes_it(tmp_path):
    wb = Workbench(Settings(home=tmp_path, max_loaded_models=2, device="cpu", limits=Limits(disk_bytes=1)))
    first = wb.run(PromptSpec(model="zoo-lm", prompt="import os", top_k=3))
    path = wb.results.get(first.result_key)
    stamp = time.time() - 7200
    os.utime(path / MARKER, (stamp, stamp))  # unused for two hours
    wb.run(PromptSpec(model="zoo-lm", prompt="import sys", top_k=3))  # over the 1-byte budget: the old one goes
    assert wb.results.get(first.result_key) is None
    again = wb.run(wb.load_shared(first.spec_hash))
    assert not again.cached and again.result.summary == first.result.summary
