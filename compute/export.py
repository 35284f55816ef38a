"""Figure and data export: HTML always; PNG/SVG through kaleido and a system Chrome/Chromium.

Static export never touches the network: plotly.js comes from the installed plotly package and
MathJax is switched off (kaleido would otherwise fetch it from a CDN). With no browser, static
formats fail with a clear message while HTML, CSV and JSON still work.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Iterable

import pandas as pd
import plotly.graph_objects as go

from .errors import BadInput, StaticExportUnavailable

FIGURE_FORMATS = ("html", "png", "svg", "json")
STATIC_FORMATS = ("png", "svg")
_KALEIDO_LOCK = threading.Lock()  # kaleido's sync helpers are not re-entrant


def find_browser() -> str | None:
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def figure_bytes(fig: go.Figure, fmt: str, width: int | None = None, height: int | None = None,
                 scale: float = 2.0) -> bytes:
    fmt = fmt.lower()
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True,
                           config={"displaylogo": False, "showSendToCloud": False}).encode()
    if fmt == "json":
        return fig.to_json().encode()
    if fmt not in STATIC_FORMATS:
        raise BadInput(f"unknown figure format '{fmt}'; use {', '.join(FIGURE_FORMATS)}")
    browser = find_browser()
    if browser is None:
        raise StaticExportUnavailable(
            f"{fmt.upper()} export needs Chrome or Chromium (e.g. Debian's `chromium`, with BROWSER_PATH set); "
            "none was found. HTML, CSV and JSON export still work.")
    os.environ.setdefault("BROWSER_PATH", browser)
    import kaleido

    opts = {"format": fmt, "scale": scale}
    if width:
        opts["width"] = width
    if height:
        opts["height"] = height
    with _KALEIDO_LOCK:
        try:
            return kaleido.calc_fig_sync(fig, opts=opts, kopts={"mathjax": False})
        except Exception as e:  # browser failed to start or render
            raise StaticExportUnavailable(f"{fmt.upper()} export failed in {browser}: {type(e).__name__}: {e}") from None


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    if fmt == "json":
        return df.to_json(orient="records", indent=1).encode()
    raise BadInput(f"unknown table format '{fmt}'; use csv or json")


def checked_formats(formats: Iterable[str]) -> list[str]:
    formats = [f.lower() for f in formats]
    for f in formats:
        if f not in FIGURE_FORMATS:
            raise BadInput(f"unknown figure format '{f}'; use {', '.join(FIGURE_FORMATS)}")
    return formats


def write_bundle(out_dir: Path, prefix: str, figures: dict[str, go.Figure], tables: dict[str, pd.DataFrame],
                 summary: dict, formats: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Write one analysis's figures (in each format) and data. Returns (files written, problems)."""
    out_dir = Path(out_dir)
    formats = checked_formats(formats)
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the formats are known: no empty folder
    written, problems = [], []
    for name, fig in figures.items():
        for fmt in formats:
            path = out_dir / f"{prefix}{name}.{fmt}"
            try:
                path.write_bytes(figure_bytes(fig, fmt))
                written.append(path)
            except StaticExportUnavailable as e:
                problems.append(f"{path.name}: {e}")
    for name, df in tables.items():
        path = out_dir / f"{prefix}{name}.csv"
        path.write_bytes(table_bytes(df, "csv"))
        written.append(path)
    path = out_dir / f"{prefix}summary.json"
    path.write_text(json.dumps(summary, indent=1, default=str))
    written.append(path)
    return written, problems


def zip_dir(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder))
    return buf.getvalue()
