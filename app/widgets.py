"""Widgets shared by every page: figures with downloads, batch export, share link, error display."""
from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

import streamlit as st

from analyses.base import Result
from compute.errors import WorkbenchError
from compute.export import figure_bytes, find_browser, table_bytes, write_bundle, zip_dir

PLOTLY_CONFIG = {"displaylogo": False, "showSendToCloud": False,
                 "toImageButtonOptions": {"format": "svg", "scale": 2}}


_MARKDOWN_SPECIALS = {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-.!|~$<>&\"'"}


def literal(text: str) -> str:
    """User text (a prompt, a token) for st.markdown with HTML allowed: every HTML and Markdown character as an
    entity, so `<script>`, `**`, `$x$` or `[a](b)` show as typed (Markdown still parses text inside HTML tags,
    and across a row of token spans)."""
    return "".join(_MARKDOWN_SPECIALS.get(c, c) for c in str(text))


def valid_spec(build):
    """The spec `build()` makes from a page's widgets, validated; or its message on the page and the page
    stopped there (a bad value in a form is the user's to fix, not a crash)."""
    try:
        spec = build()
        spec.validate()
        return spec
    except Exception as e:  # noqa: BLE001
        show_error(e)
        st.stop()


def show_error(e: BaseException) -> None:
    if isinstance(e, WorkbenchError):
        st.error(str(e), icon="⚠️")
    else:  # a bug: say so, keep serving, keep the details one click away
        st.error(f"Something went wrong inside the workbench ({type(e).__name__}: {e}). The server is still running.")
        with st.expander("details"):
            st.code("".join(traceback.format_exception(e)), language=None)


def figure_with_downloads(name: str, fig, key: str) -> None:
    st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}-{name}-chart")
    has_browser = find_browser() is not None
    cols = st.columns(4)
    cols[0].download_button("HTML", data=figure_bytes(fig, "html"), file_name=f"{name}.html", mime="text/html",
                            key=f"{key}-{name}-html", on_click="ignore")
    for col, fmt, mime in ((cols[1], "png", "image/png"), (cols[2], "svg", "image/svg+xml")):
        col.download_button(fmt.upper(), data=(lambda f=fmt: figure_bytes(fig, f)) if has_browser else b"",
                            file_name=f"{name}.{fmt}", mime=mime, key=f"{key}-{name}-{fmt}", on_click="ignore",
                            disabled=not has_browser,
                            help=None if has_browser else "PNG/SVG export needs Chromium on the server (BROWSER_PATH)")
    cols[3].download_button("JSON", data=figure_bytes(fig, "json"), file_name=f"{name}.json",
                            mime="application/json", key=f"{key}-{name}-json", on_click="ignore")


def table_with_download(name: str, df, key: str, **kwargs) -> None:
    st.dataframe(df, hide_index=True, **kwargs)
    st.download_button(f"{name}.csv", data=table_bytes(df, "csv"), file_name=f"{name}.csv", mime="text/csv",
                       key=f"{key}-{name}-csv", on_click="ignore")


def export_all_button(result: Result, spec_hash: str, key: str) -> None:
    formats = ["html", "png", "svg"] if find_browser() else ["html"]

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            write_bundle(Path(tmp), "", result.figures, result.tables, result.summary, formats)
            return zip_dir(Path(tmp))

    st.download_button(f"Export all figures and data ({', '.join(formats).upper()} + CSV) as zip", data=build,
                       file_name=f"analysis-{spec_hash}.zip", mime="application/zip", key=f"{key}-zip",
                       on_click="ignore", icon="📦")


def share_box(link: str) -> None:
    st.caption("Copy share link (the copy icon is on the right; anyone with access to this server can open it)")
    st.code(link, language=None)


STATUS_ICON = {"queued": "⏳", "running": "▶️", "done": "✅", "failed": "❌", "cancelled": "⛔"}


def follow_job(wb, job_id: str, key: str, *, title: bool = True, live=None, when_done=None,
               rerun_when_done: bool = False, cancel_label: str = "Cancel", every: str = "1s") -> None:
    """A background job's live state, refreshed every second: its progress and a cancel button while it runs,
    why it failed or that it was cancelled; `live(rec)` draws more on each refresh (e.g. training curves),
    `when_done(rec)` runs once it is done, or the whole page reruns (`rerun_when_done`) to show the result."""
    @st.fragment(run_every=every)
    def follow():
        rec = wb.jobs.get(job_id)
        if rec is None:
            st.error(f"no job '{job_id}' on this server")
            return
        if title:
            st.markdown(f"**{rec.title}** · job `{rec.id}` · {rec.status}")
        if rec.active:
            st.progress(rec.progress, text=rec.message or rec.status)
            mine = wb.may_cancel(rec)
            if st.button(cancel_label, key=f"{key}-cancel-{rec.id}", disabled=bool(rec.cancel_requested) or not mine,
                         help=None if mine else f"started by {rec.owner or 'someone before sign-in'}: only they or "
                                                f"an operator can cancel it"):
                try:
                    wb.cancel(rec.id)
                except WorkbenchError as e:
                    show_error(e)
                    return
                st.rerun(scope="fragment")
        elif rec.status == "failed":
            st.error(rec.error or "failed")
        elif rec.status == "cancelled":
            st.warning("cancelled; nothing was stored")
        if live is not None:
            live(rec)
        if rec.status == "done":
            if rerun_when_done:
                st.rerun()
            if when_done is not None:
                when_done(rec)

    follow()


def job_result(wb, spec, key: str, action: str) -> Result | None:
    """A long analysis behind a button: its stored result when there is one; otherwise its running job's
    live progress (started here or by anyone else), or a button that starts it as a background job."""
    cached = wb.cached(spec)
    if cached is not None:
        return cached
    active = next((j for j in wb.jobs.list() if j.spec_hash == spec.hash and j.active), None)
    if active is None:
        last = next((j for j in wb.jobs.list() if j.spec_hash == spec.hash), None)
        if last is not None and last.status == "failed":
            st.error(f"The last run failed: {last.error}")
        if st.button(action, key=f"{key}-start", type="primary"):
            try:
                active = wb.submit(spec)
            except Exception as e:  # noqa: BLE001
                show_error(e)
                return None
        else:
            return None
    follow_job(wb, active.id, key, title=False, rerun_when_done=True)
    return None


def metric_row(items: list[tuple[str, str]]) -> None:
    """One row of metrics: (label, formatted value) pairs."""
    for col, (label, value) in zip(st.columns(len(items)), items):
        col.metric(label, value)


def require_model(wb):
    """The model picked in the sidebar, when it loads; otherwise say why and stop."""
    try:
        return wb.models.get(st.session_state.get("model"))
    except Exception as e:  # noqa: BLE001
        show_error(e)
        st.stop()


def require_lm(wb, purpose: str):
    """The model picked in the sidebar, when it loads and is a language model; otherwise say why and stop."""
    lm = require_model(wb)
    if lm.kind != "lm":
        st.info(f"{purpose} needs a language model: pick one in the sidebar.")
        st.stop()
    return lm


def show_result(result: Result, spec_hash: str, key: str, link: str, first: tuple[str, ...] = (),
                last: tuple[str, ...] = (), drawn: tuple[str, ...] = ()) -> None:
    """A result laid out the usual way: some tables, every figure (but those the page `drawn` its own
    way; they still export), more tables, its share link and the export-all button."""
    for name in first:
        table_with_download(name, result.tables[name], key)
    for name, fig in result.figures.items():
        if name not in drawn:
            figure_with_downloads(name, fig, key)
    for name in last:
        table_with_download(name, result.tables[name], key)
    share_box(link)
    export_all_button(result, spec_hash, key)
