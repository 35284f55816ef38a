import json
import os
import zipfile

import pandas as pd
import plotly.graph_objects as go
import pytest

from compute.errors import StaticExportUnavailable
from compute.export import figure_bytes, find_browser, write_bundle, zip_dir

needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chromium on this machine")


def _fig():
    return go.Figure(go.Heatmap(z=[[0, 1], [1, 0]]), layout={"title": "t"})


def test_html_is_self_contained():
    html = figure_bytes(_fig(), "html").decode()
    assert "<html" in html and "Plotly.newPlot" in html
    # plotly.js is embedded, not fetched: the page opens offline
    assert 'src="https://cdn.plot.ly' not in html and len(html) > 1_000_000


@needs_browser
def test_png_and_svg_through_system_chromium():
    png = figure_bytes(_fig(), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    svg = figure_bytes(_fig(), "svg").decode()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg


def test_without_a_browser_static_formats_fail_clearly_and_html_still_works(monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER_PATH", "")
    monkeypatch.setattr("compute.export.shutil.which", lambda name: None)
    with pytest.raises(StaticExportUnavailable, match="needs Chrome or Chromium"):
        figure_bytes(_fig(), "png")
    written, problems = write_bundle(tmp_path, "", {"f": _fig()}, {"t": pd.DataFrame({"a": [1]})}, {"k": 1},
                                     ["html", "png"])
    names = sorted(p.name for p in written)
    assert names == ["f.html", "summary.json", "t.csv"]
    assert len(problems) == 1 and "f.png" in problems[0]


@needs_browser
def test_bundle_and_zip(tmp_path):
    written, problems = write_bundle(tmp_path / "b", "x_", {"f": _fig()}, {"t": pd.DataFrame({"a": [1, 2]})},
                                     {"k": 1}, ["html", "png", "svg"])
    assert not problems
    data = zip_dir(tmp_path / "b")
    (tmp_path / "b.zip").write_bytes(data)
    names = set(zipfile.ZipFile(tmp_path / "b.zip").namelist())
    assert names == {"x_f.html", "x_f.png", "x_f.svg", "x_t.csv", "x_summary.json"}
    assert json.loads((tmp_path / "b" / "x_summary.json").read_text()) == {"k": 1}
