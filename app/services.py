"""Process-wide services for all browser sessions (one Workbench: models, caches, store, jobs), and that
Workbench as the session's signed-in user sees it."""
from __future__ import annotations

import streamlit as st

from analyses.acting import LOCAL, Acting
from analyses.workbench import Workbench, configure_threads
from compute.settings import load_settings, served_mode


@st.cache_resource(show_spinner=False)
def shared_workbench() -> Workbench:
    configure_threads()
    # served to a group (sign-in or roots configured): browser-named folders confined, job limits on
    wb = Workbench(load_settings(served=served_mode()))
    wb.startup()  # sweep half-written results, mark jobs orphaned by a restart as failed
    return wb


ACTING_USER = "_acting_user"


def workbench() -> Acting:
    """The shared Workbench acting as this session's user: app/main.py signs them in and records them before
    any page runs (no one recorded: the local tool's user)."""
    return Acting(shared_workbench(), st.session_state.get(ACTING_USER, LOCAL))
