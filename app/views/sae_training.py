"""SAE training page: train TopK / Feature Choice / Mutual Choice SAEs as jobs with live curves,
inspect a run, compare runs, evaluate an existing SAE."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analyses.sae_figures import training_curves
from analyses.sae_runs import SAECompareSpec, SAEEvalSpec, SAETrainSpec, finished_sae_runs, live_history, run_label
from app import urlstate, widgets
from app.services import workbench
from sae.registry import ARCHITECTURES, OPTION_CHOICES

wb = workbench()
st.title("SAE training")
st.caption("TopK (Gao et al.), Feature Choice and Mutual Choice (Ayonrinde 2024) sparse autoencoders on any hook, "
           "trained from the activation cache as background jobs. Saved in SAELens format.")

lm = widgets.require_lm(wb, "SAE training")

def finished_runs():
    return finished_sae_runs(wb, lm.id)


def show_run(h: str, spec, where: str) -> None:
    res = wb.cached(spec)
    if res is None:
        st.info("This run has no result yet: it is still training, was cancelled, or has not been started.")
        return
    s = res.summary
    rec, dlm = s.get("ce_loss_recovered"), s.get("delta_lm_loss")
    widgets.metric_row([("normalised MSE", f"{s['nmse']:.4f}"), ("explained variance", f"{s['explained_variance']:.3f}"),
                        ("mean L0", f"{s['l0_mean']:.2f}"),
                        ("CE loss recovered", f"{rec:.3f}" if rec is not None else "–"),
                        ("Δ LM loss", f"{dlm:.4f}" if dlm is not None else "–"),
                        ("dead / underused", f"{s['dead_fraction']:.1%} / {s['underused_fraction']:.1%}")])
    st.caption(f"SAE saved at `{s.get('sae_path')}` (SAELens format: cfg.json + sae_weights.safetensors)")
    widgets.share_box(urlstate.share_link("sae_training", a=h, model=lm.id))
    for name, fig in res.figures.items():
        widgets.figure_with_downloads(name, fig, f"{where}-{h}")
    widgets.export_all_button(res, h, f"{where}-{h}")


# --- a shared link: ?a=<hash> of a run or a comparison --------------------------------------------
taken = urlstate.take_shared(wb, SAETrainSpec, SAEEvalSpec, SAECompareSpec)
if taken is not None:
    st.session_state["sae_active"] = taken.hash
shared, _ = urlstate.shared_spec(wb)

tab_train, tab_runs, tab_compare, tab_load = st.tabs(["Train", "Runs", "Compare", "Load an existing SAE"])

with tab_train:
    hooks = [h for h in lm.hook_names() if h.endswith(("hook_resid_post", "hook_resid_pre", "hook_mlp_out",
                                                       "attn.hook_z", "hook_attn_out", "mlp.hook_post"))]
    with st.form("sae_train_form"):
        c1, c2, c3 = st.columns(3)
        default_hook = next((i for i, h in enumerate(hooks) if h.endswith("hook_resid_post")), 0)
        hook = c1.selectbox("Hook", hooks, index=default_hook, key="sae_hook",
                            help="hook_z trains on all heads concatenated (n_heads x d_head)")
        arch = c2.radio("Architecture", list(ARCHITECTURES), format_func=lambda a: ARCHITECTURES[a].label,
                        key="sae_arch", horizontal=True,
                        help=" · ".join(f"{a.label}: {a.cost}" for a in ARCHITECTURES.values()))
        k = c3.number_input("k (features per token; average for FC/MC)", 1.0, 4096.0, 16.0, step=1.0, key="sae_k")
        c1, c2, c3 = st.columns(3)
        d_sae = c1.number_input("d_sae (features)", 16, 1 << 20, 8 * lm.model.cfg.d_model, step=64, key="sae_d_sae")
        n_tokens = c2.number_input("training tokens", 4096, 200_000_000, 1_000_000, step=100_000, key="sae_tokens")
        lr = c3.number_input("learning rate", 1e-5, 1e-1, 1e-3, format="%.5f", key="sae_lr")
        c1, c2, c3 = st.columns(3)
        aux = c1.selectbox("aux loss (FC / MC)", OPTION_CHOICES["aux_loss"], key="sae_aux")
        capacity = c2.selectbox("capacity (FC)", OPTION_CHOICES["capacity"], key="sae_capacity")
        zipf = c3.number_input("Zipf exponent (FC, zipf capacity)", 0.1, 3.0, 1.0, key="sae_zipf")
        processes = st.number_input("processes (data-parallel under torchrun; 1: this worker alone)", 1, 64, 1,
                                    key="sae_processes",
                                    help="Each process takes an equal share of every batch (gloo on CPUs, NCCL on "
                                         "GPUs); Feature and Mutual Choice still select over the whole batch, so "
                                         "the SAE equals the one-process run's.")
        go = st.form_submit_button("Train as a background job", type="primary")
    if go:
        try:
            spec = SAETrainSpec(model=lm.id, hook=hook, arch=arch, k=float(k), d_sae=int(d_sae), n_tokens=int(n_tokens),
                                lr=float(lr), aux_loss=aux, capacity=capacity, zipf_exponent=float(zipf),
                                batch_size=min(4096, int(n_tokens)), processes=int(processes))
            spec.validate()
            if wb.cached(spec) is not None:
                st.success("This exact run is already trained: showing it.")
                st.session_state["sae_active"] = spec.hash
            else:
                rec = wb.submit(spec)
                st.session_state["sae_job"] = rec.id
                st.success(f"Training job `{rec.id}` submitted: follow it below and on the Runs tab.")
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

    urlstate.init_from_url("sae_job", "job", "")

    def curves(rec) -> None:
        if rec.active:
            st.caption("Cancelling keeps a checkpoint: submitting the same run again resumes it.")
        spec = wb.load_shared(rec.spec_hash)
        hist = live_history(wb, spec) if isinstance(spec, SAETrainSpec) else pd.DataFrame()
        if len(hist):
            st.plotly_chart(training_curves(hist, "Live training curves"), key=f"live-{rec.id}-{len(hist)}")

    def trained(rec) -> None:
        st.session_state["sae_active"] = rec.spec_hash
        st.session_state["sae_run_pick"] = rec.spec_hash  # the Runs tab turns to the run that just finished

    if st.session_state.get("sae_job"):
        widgets.follow_job(wb, st.session_state["sae_job"], "sae", live=curves, when_done=trained,
                           cancel_label="Cancel training", every="2s")
        urlstate.set_params(job=st.session_state["sae_job"])

with tab_runs:
    runs = finished_runs()
    if not runs:
        st.info("No finished SAE runs for this model yet.")
    else:
        labels = {h: run_label(h, s) for h, s in runs}
        active = st.session_state.get("sae_active")
        options = list(labels)
        idx = options.index(active) if active in options else 0
        chosen = st.selectbox("Run", options, index=idx, format_func=labels.get, key="sae_run_pick")
        show_run(chosen, dict(runs)[chosen], "runs")

with tab_compare:
    runs = finished_runs()
    labels = {h: run_label(h, s) for h, s in runs}
    default = [h for h in labels][:6]
    if isinstance(shared, SAECompareSpec):
        default = [h for h in shared.runs if h in labels]
    picked = st.multiselect("Runs to compare", list(labels), default=default, format_func=labels.get,
                            key="sae_compare_pick")
    if picked:
        try:
            outcome = wb.run(SAECompareSpec(model=lm.id, runs=tuple(sorted(picked))))
            st.dataframe(outcome.result.tables["runs"], hide_index=True)
            widgets.share_box(urlstate.share_link("sae_training", a=outcome.spec_hash, model=lm.id))
            for name, fig in outcome.result.figures.items():
                widgets.figure_with_downloads(name, fig, f"cmp-{outcome.spec_hash}")
            widgets.export_all_button(outcome.result, outcome.spec_hash, f"cmp-{outcome.spec_hash}")
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

with tab_load:
    st.caption("Any SAELens-format folder (cfg.json + sae_weights.safetensors), or a SAELens release as "
               "`release:sae_id` when the hub is reachable. It is evaluated on held-out text of this model.")
    with st.form("sae_load_form"):
        source = st.text_input("SAE folder or release:sae_id", key="sae_source")
        hook_override = st.text_input("Hook (optional: default is the SAE's own)", key="sae_load_hook")
        load = st.form_submit_button("Evaluate (background job)")
    if load:
        try:
            rec = wb.submit(SAEEvalSpec(model=lm.id, sae=source, hook=hook_override))
            st.session_state["sae_job"] = rec.id
            st.success(f"Evaluation job `{rec.id}` submitted; it appears under Runs when done.")
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

if isinstance(shared, (SAETrainSpec, SAEEvalSpec)):
    st.divider()
    st.subheader("Shared run")
    show_run(shared.hash, shared, "shared")
