"""Real browser: a figure's PNG and SVG buttons and the "export all" zip download real files."""
from __future__ import annotations

import io
import json
import struct
import xml.etree.ElementTree as ET
import zipfile

import pytest

from tests.e2e.conftest import settle

pytestmark = pytest.mark.browser


def test_figure_buttons_and_the_zip_download_what_they_say(server, browser, server_workbench):
    from analyses.prompt import PromptSpec

    spec = PromptSpec(model="zoo-lm", prompt="import os\nimport sys\n")
    outcome = server_workbench.run(spec)  # stored on the server's home: the link opens it from the cache
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.goto(f"{server}/?a={outcome.spec_hash}")
    page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    settle(page)

    def download(name: str, nth: int = 0):
        with page.expect_download(timeout=120_000) as info:
            page.get_by_role("button", name=name, exact=True).nth(nth).click()
        return info.value

    names = list(outcome.result.figures)
    png = download("PNG")  # the first figure on the page
    shown = png.suggested_filename.removesuffix(".png")
    assert shown in names, (png.suggested_filename, names)
    fig = outcome.result.figures[shown]
    data = open(png.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == ((fig.layout.width or 700) * 2, (fig.layout.height or 500) * 2)
    svg = download("SVG")
    assert svg.suggested_filename == f"{shown}.svg"
    root = ET.parse(svg.path()).getroot()
    assert root.tag.endswith("svg") and float(root.get("width")) == width

    with page.expect_download(timeout=180_000) as info:
        page.get_by_role("button", name="Export all figures and data").click()
    bundle = zipfile.ZipFile(io.BytesIO(open(info.value.path(), "rb").read()))
    files = set(bundle.namelist())
    for name in names:
        assert {f"{name}.html", f"{name}.png", f"{name}.svg"} <= files, (name, sorted(files))
    assert "summary.json" in files
    assert json.loads(bundle.read("summary.json"))["n_tokens"] == outcome.result.summary["n_tokens"]
    assert bundle.read("predictions.png")[:4] == b"\x89PNG"
    ctx.close()
