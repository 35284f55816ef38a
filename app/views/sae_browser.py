"""SAE browser page: pick an SAE of the current model, then browse its features, open a feature's
dashboard, see features on a prompt, steer or ablate features, and decompose the SAE's error.

Readable links: ?page=sae_browser&model=…&sae=…&feature=… opens a feature's dashboard."""
from __future__ import annotations

import streamlit as st

from analyses.sae_dashboard import SAEDashboardSpec, SAEFeatureSpec
from analyses.sae_error import SAEErrorSpec
from analyses.sae_prompt import SAEPromptSpec
from analyses.sae_steer import SAESteerSpec
from analyses.sae_runs import finished_sae_runs, run_label
from analyses.sae_source import load_for_model
from app import urlstate, widgets
from app.services import workbench
from app.views import sae_browser_panels as panels

VIEWS = ["Features", "Feature", "On a prompt", "Steering", "SAE error"]
DASH_TOKENS = [32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576]
DATASETS = ["zoo-stdlib", "zoo-stdlib-heldout"]

wb = workbench()
st.title("SAE browser")
st.caption("Feature dashboards, features on a prompt, steering and ablation, and the SAE's error ('dark matter'), "
           "for any SAE of this model: trained here, a SAELens-format folder, or a SAELens release.")

lm = widgets.require_lm(wb, "The SAE browser")

# --- a shared analysis (?a=<hash>) fills the widgets once ------------------------------------------
shared = urlstate.take_shared(wb, SAEDashboardSpec, SAEPromptSpec, SAESteerSpec, SAEErrorSpec)
if shared is not None:
    st.session_state["browser_sae"] = shared.sae
    st.session_state["_seeded_from_url"] = st.session_state.get("_seeded_from_url", set()) | {"browser_sae"}
    if isinstance(shared, SAEPromptSpec):
        st.session_state.update(browser_view="On a prompt", browser_prompt=shared.prompt,
                                browser_top_k=shared.top_k, browser_prompt_ran=True)
    elif isinstance(shared, SAESteerSpec):
        st.session_state.update(
            browser_view="Steering", browser_steer_prompt=shared.prompt, browser_steer_ran=True,
            browser_steer_features=", ".join(map(str, shared.steer_features)),
            browser_coef=(", ".join(f"{c:g}" for c in shared.coefficients) if len(set(shared.coefficients)) > 1
                          else f"{shared.coefficients[0]:g}" if shared.coefficients else "10"),
            browser_ablate=", ".join(map(str, shared.ablate_features)), browser_new_tokens=shared.max_new_tokens)
    elif isinstance(shared, SAEErrorSpec):
        st.session_state["browser_view"] = "SAE error"
        if shared.n_tokens in panels.ERROR_TOKENS:
            st.session_state["browser_err_tokens"] = shared.n_tokens
    elif isinstance(shared, SAEFeatureSpec):
        # the dashboards it is read from are built by this page: they keep the link's settings too
        st.session_state["_opened_specs"]["sae_dashboards"] = shared.dashboards()
        st.session_state.update(browser_view="Feature", browser_feature=shared.feature,
                                browser_dash_tokens=shared.n_tokens, browser_dataset=shared.dataset)
    else:
        st.session_state.update(browser_view="Features", browser_dash_tokens=shared.n_tokens,
                                browser_dataset=shared.dataset)

# --- which SAE --------------------------------------------------------------------------------------
runs = dict(finished_sae_runs(wb, lm.id))
urlstate.init_from_url("browser_sae", "sae", next(iter(runs), ""))
options = list(runs)
if st.session_state.get("browser_sae") and st.session_state["browser_sae"] not in options:
    options.append(st.session_state["browser_sae"])
if not options:
    st.info("No SAE of this model yet: train one on the SAE training page, or type the path of a SAELens-format "
            "folder (or release:sae_id) below.")
sae = st.selectbox("SAE", options, key="browser_sae", accept_new_options=True,
                   format_func=lambda h: run_label(h, runs[h]) if h in runs else h,
                   help="A run trained here, a SAELens-format folder on the server, or release:sae_id")
if not sae:
    st.stop()
try:
    sae_obj, hook = load_for_model(wb, sae, lm)
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()
st.caption(f"{sae_obj.cfg.architecture()} SAE · {sae_obj.cfg.d_sae:,} features · reads `{hook}` "
           f"({sae_obj.cfg.d_in} dims)")

with st.expander("Dashboard data settings"):
    urlstate.init_from_url("browser_dash_tokens", "tokens", 131_072, cast=int)
    urlstate.init_from_url("browser_dataset", "dataset", DATASETS[0])
    c1, c2 = st.columns(2)
    n_tokens = c1.select_slider("tokens", sorted({*DASH_TOKENS, int(st.session_state["browser_dash_tokens"])}),
                                key="browser_dash_tokens")
    dataset = c2.selectbox("text", DATASETS if st.session_state["browser_dataset"] in DATASETS
                           else [*DATASETS, st.session_state["browser_dataset"]], key="browser_dataset")
dash_spec = urlstate.with_opened_settings(SAEDashboardSpec(model=lm.id, sae=sae, dataset=dataset,
                                                          n_tokens=int(n_tokens)), shown=("dataset", "n_tokens"))

# --- which view -------------------------------------------------------------------------------------
urlstate.init_from_url("browser_feature", "feature", cast=int)
urlstate.init_from_url("browser_view", "view", "Feature" if "feature" in st.query_params else "Features")
if st.session_state.get("browser_view") not in VIEWS:
    st.session_state["browser_view"] = "Features"
view = st.segmented_control("View", VIEWS, key="browser_view", label_visibility="collapsed") or "Features"
st.session_state.setdefault("browser_feature", 0)
urlstate.set_params(sae=sae, view=view, feature=st.session_state["browser_feature"] if view == "Feature" else None,
                    tokens=int(n_tokens) if n_tokens != 131_072 else None,
                    dataset=dataset if dataset != DATASETS[0] else None)

dash = wb.cached(dash_spec)
labels = dict(zip(dash.tables["features"].feature, dash.tables["features"].label)) if dash is not None else {}
if view == "Features":
    panels.feature_list(wb, dash_spec, lm.id, dash)
elif view == "Feature":
    panels.feature_dashboard(wb, dash_spec, lm.id, dash)
elif view == "On a prompt":
    panels.on_prompt(wb, sae, lm.id, labels)
elif view == "Steering":
    if labels:
        st.caption("Tip: a feature's max activation on its dashboard is a natural scale for the coefficient.")
    panels.steering(wb, sae, lm.id)
else:
    panels.sae_error(wb, sae, lm.id)
