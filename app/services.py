"""Process-wide services for all browser sessions (one Workbench: models, caches, store, jobs)."""
from __future__ import annotations

import streamlit as st

from analyses.workbench import Workbench, configure_threads


@st.cache_resource(show_spinner=False)
def workbench() -> Workbench:
    configure_threads()
    wb = Workbench()
    wb.startup()  # sweep half-written results, mark jobs orphaned by a restart as failed
    return wb
