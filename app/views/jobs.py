"""Jobs & exports page: background jobs with live progress, cancel, their results; batch export of analyses."""
from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from analyses.exporting import export_analyses
from app import urlstate, widgets
from app.services import workbench
from compute.export import find_browser, zip_dir

wb = workbench()
st.title("Jobs & exports")

def _when(ts):
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@st.fragment(run_every="2s")
def job_table():
    jobs = wb.jobs.list()
    if not jobs:
        st.info("No jobs yet. Long analyses (model checks, SAE training, …) submitted from other pages appear here.")
        return
    df = pd.DataFrame([{"job": j.id, "status": f"{widgets.STATUS_ICON.get(j.status, '')} {j.status}", "title": j.title,
                        "progress": j.progress, "message": j.error or j.message, "submitted": _when(j.created),
                        "seconds": round((j.finished or dt.datetime.now().timestamp()) - (j.started or j.created), 1),
                        "by": j.owner, "on": "Ray cluster" if j.runner == "ray" else "this machine"}
                       for j in jobs])
    if not df.by.any():  # the local tool: nobody signs in, so there is no one to name
        df = df.drop(columns="by")
    if (df.on == "this machine").all():  # no cluster: every job is a local worker
        df = df.drop(columns="on")
    st.dataframe(df, hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")})


job_table()

urlstate.init_from_url("job_selected", "job", "")
ids = [j.id for j in wb.jobs.list()]
options = [""] + ids if st.session_state.get("job_selected") in ids or not st.session_state.get("job_selected") \
    else ["", st.session_state["job_selected"]] + ids
st.selectbox("Open a job", options, key="job_selected", format_func=lambda x: x or "—")
job_id = st.session_state.get("job_selected")
urlstate.set_params(job=job_id or None)


def show_finished(rec) -> None:
    res = wb.stored_result(rec.result_key) if rec.result_key else None
    if res is None:
        st.warning("the job finished but its result is no longer in the cache (or was damaged): open its share "
                   "link to compute it again")
        return
    st.json(res.summary, expanded=False)
    widgets.share_box(urlstate.share_link("jobs", job=rec.id, a=rec.spec_hash))
    for name, fig in res.figures.items():
        widgets.figure_with_downloads(name, fig, f"job-{rec.id}")
    widgets.export_all_button(res, rec.spec_hash, f"job-{rec.id}")


if job_id:
    rec = wb.jobs.get(job_id)
    if rec is None:
        st.error(f"no job '{job_id}' on this server")
    elif rec.status == "done":
        st.markdown(f"**{rec.title}** · `{rec.id}` · {widgets.STATUS_ICON['done']} done")
        show_finished(rec)
    else:  # follow it live; the page reruns once it is done, and shows the result
        widgets.follow_job(wb, job_id, "job", rerun_when_done=True, cancel_label="Cancel job")

st.divider()
st.subheader("Batch export")
st.caption("Paste share links or analysis hashes, one per line: every figure (HTML, plus PNG and SVG where Chromium "
           "is present) and its data (CSV, JSON) in one zip. Analyses not yet computed are computed first.")
links = st.text_area("Links or hashes", key="export_links", height=100)
formats = st.multiselect("Figure formats", ["html", "png", "svg", "json"],
                         default=["html", "png", "svg"] if find_browser() else ["html"], key="export_formats")
if st.button("Build export", key="export_go"):
    items = [x.strip() for x in links.splitlines() if x.strip()]
    try:
        with tempfile.TemporaryDirectory() as tmp, st.spinner("exporting…"):
            report = export_analyses(wb, items, Path(tmp), formats)
            st.session_state["export_zip"] = zip_dir(Path(tmp))
            st.session_state["export_report"] = report
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
if st.session_state.get("export_zip"):
    rep = st.session_state["export_report"]
    st.success(f"{rep['files']} files from {len(rep['analyses'])} analyses")
    for p in rep["problems"]:
        st.warning(p)
    st.download_button("Download export (zip)", st.session_state["export_zip"], file_name="workbench-export.zip",
                       mime="application/zip", key="export_download", on_click="ignore", icon="📦")
