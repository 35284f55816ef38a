"""Entry point: `streamlit run app/main.py` (or `workbench serve`). Navigation and the shared model picker."""
from __future__ import annotations

import streamlit as st

from app import auth, pages, urlstate
from app.services import ACTING_USER, workbench
from compute.models import DEFAULT_MODEL, list_models

st.set_page_config(page_title="Interpretability workbench", page_icon=":material/biotech:", layout="wide")
st.session_state[ACTING_USER] = auth.current_user()  # a served app's sign-in form stops here until signed in

PAGES = pages.st_pages()
nav = st.navigation(pages.navigation(PAGES), position="top")

wb = workbench()
if wb.user.name and st.session_state.get("_recorded_user") != wb.user:  # once per sign-in, not per rerun
    wb.store.record_user(wb.user.name, wb.user.operator)
    st.session_state["_recorded_user"] = wb.user
shared, shared_error = urlstate.shared_spec(wb)
if shared_error:
    st.error(shared_error, icon="🔗")

# Readable links name the page (?page=jobs&job=...); a share link ?a=<hash> alone goes to its spec's page.
wanted = st.query_params.get("page") or (pages.page_of(shared) if shared is not None else None)
if wanted is not None and wanted not in PAGES:
    st.warning(f"There is no page '{wanted[:40]}' here; the pages are {', '.join(PAGES)}.")
elif wanted in PAGES and nav.url_path != PAGES[wanted].url_path:
    rest = {k: v for k, v in st.query_params.to_dict().items() if k != "page"}
    st.switch_page(PAGES[wanted], query_params=rest)

with st.sidebar:
    st.header("Model")
    known = [m.id for m in list_models(wb.settings)]
    urlstate.init_from_url("model", "model", DEFAULT_MODEL)
    if st.session_state.get("model") not in known:
        known.append(st.session_state["model"])
    st.selectbox("Model", known, key="model", accept_new_options=True,
                 help="A zoo model, a TransformerLens name (needs the weights in the local Hugging Face cache "
                      "or internet), or the path of a local Hugging Face model folder.")
    st.caption(f"device: {wb.settings.device or ('cuda' if __import__('torch').cuda.is_available() else 'cpu')} · "
               f"loaded: {', '.join(k[0] for k in wb.models.loaded_keys()) or 'none'}")

nav.run()
