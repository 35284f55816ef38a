import os
import time

import pandas as pd
import plotly.graph_objects as go
import pytest

from analyses.base import Result
from compute.results import ResultCache


def _result():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    return Result("demo", {"x": 1.5, "items": [1, 2]}, {"t": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})}, {"f": fig})


def test_put_then_get_round_trips(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", _result().save)
    back = Result.load(cache.get("k"))
    assert back.summary == {"x": 1.5, "items": [1, 2]}
    pd.testing.assert_frame_equal(back.tables["t"], _result().tables["t"])
    assert list(back.figures["f"].data[0].y) == [1, 2]
    assert cache.hits == 1 and cache.misses == 1


def test_a_writer_that_crashes_leaves_no_result(tmp_path):
    cache = ResultCache(tmp_path)

    def crash(folder):
        (folder / "summary.json").write_text("{half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        cache.put("k", crash)
    assert cache.get("k") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_sweep_removes_partial_directories(tmp_path):
    cache = ResultCache(tmp_path)
    (tmp_path / ".tmp-k-abc").mkdir()
    old = time.time() - 3600
    os.utime(tmp_path / ".tmp-k-abc", (old, old))
    assert cache.sweep_partial(older_than_s=60) == 1
    assert not (tmp_path / ".tmp-k-abc").exists()


def test_second_run_is_a_cache_hit(wb):
    from analyses.prompt import PromptSpec

    spec = PromptSpec(model="zoo-lm", prompt="import os\nimport sys\n", top_k=3)
    first = wb.run(spec)
    hits = wb.results.hits
    second = wb.run(spec)
    assert not first.cached and second.cached
    assert wb.results.hits == hits + 1
    assert second.result.summary == first.result.summary
    pd.testing.assert_frame_equal(second.result.tables["predictions"], first.result.tables["predictions"])
