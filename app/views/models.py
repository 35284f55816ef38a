"""Models page: pick a model, see its architecture and hooks, run a prompt through it."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analyses.model_check import ModelCheckSpec
from analyses.prompt import PromptSpec
from app import urlstate, widgets
from app.services import workbench
from compute.errors import WorkbenchError

wb = workbench()
model_id = st.session_state.get("model")
st.title("Models")

# A shared link (?a=<hash>) of a prompt analysis fills the form once.
shared = urlstate.take_shared(wb, PromptSpec)
if shared is not None:
    st.session_state.update({"prompt_text": shared.prompt, "prompt_top_k": shared.top_k, "prompt_active": shared.hash})

try:
    lm = wb.models.get(model_id)
except Exception as e:  # noqa: BLE001 - unknown model, offline hub, corrupt checkpoint: say so, keep serving
    widgets.show_error(e)
    st.stop()

arch = lm.architecture()
st.caption(f"**{lm.id}** — {lm.info.description} · {lm.info.source} · fingerprint `{lm.fingerprint}` · "
           f"{arch['parameters']:,} parameters")
with st.expander("Architecture and hook names", expanded=False):
    left, right = st.columns([1, 2])
    left.dataframe(pd.DataFrame({"property": list(arch), "value": [str(v) for v in arch.values()]}), hide_index=True)
    hooks = lm.hook_names()
    needle = right.text_input("filter hooks", key="hook_filter", placeholder="e.g. hook_z, resid_post")
    shown = [h for h in hooks if needle.lower() in h.lower()] if needle else hooks
    right.dataframe(pd.DataFrame({"hook": shown}), hide_index=True, height=300)
    right.caption(f"{len(shown)} of {len(hooks)} hook points")

if lm.kind != "lm":
    st.info("This is an image model: prompts apply to language models. Its quality check runs below.")
else:
    urlstate.init_from_url("prompt_top_k", "top_k", 5, int, lo=1, hi=50)
    if "prompt_text" not in st.session_state:
        st.session_state["prompt_text"] = ("def add(a, b):\n    return a + b\n\n\ndef add(a, b):\n    return"
                                           if lm.id == "zoo-lm" else "The quick brown fox")
    with st.form("prompt_form"):
        st.text_area("Prompt", key="prompt_text", height=120)
        st.number_input("top-k predictions", 1, 50, key="prompt_top_k")
        run = st.form_submit_button("Run prompt", type="primary")
    fresh = None  # the outcome computed in this rerun, shown without reading it back from disk
    if run:
        try:
            spec = PromptSpec(model=lm.id, prompt=st.session_state["prompt_text"],
                              top_k=int(st.session_state["prompt_top_k"]))
            spec.validate()
            with st.spinner("running the model…"):
                fresh = wb.run(spec)
            st.session_state["prompt_active"] = fresh.spec_hash
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)
            st.session_state.pop("prompt_active", None)

    active = st.session_state.get("prompt_active")
    if active:
        try:
            spec = wb.load_shared(active)
            if spec.model != lm.id:
                raise WorkbenchError(f"this analysis was run on {spec.model}; pick that model to see it")
            outcome = fresh if fresh is not None and fresh.spec_hash == active else wb.run(spec)  # else: from cache
            urlstate.set_params(a=outcome.spec_hash, model=lm.id)
            res = outcome.result
            s = res.summary
            st.subheader("Result")
            c = st.columns(4)
            c[0].metric("tokens", s["n_tokens"])
            c[1].metric("mean loss on the prompt", f"{s['mean_loss']:.3f}" if s["mean_loss"] is not None else "–")
            c[2].metric("top next token", repr(s["top_next_token"]))
            c[3].metric("its probability", f"{s['top_next_prob']:.3f}")
            st.caption(("loaded from the result cache" if outcome.cached else "computed") +
                       f" in {outcome.seconds*1000:.0f} ms · analysis `{outcome.spec_hash}`")
            widgets.share_box(urlstate.share_link("", a=outcome.spec_hash, model=lm.id))
            st.markdown("**Tokens**: " + " ".join(f"<code>{widgets.literal(t)}</code>" for t in s["tokens"]),
                        unsafe_allow_html=True)
            tabs = st.tabs(["Predictions", "Logit lens", "Attention", "Tables"])
            with tabs[0]:
                widgets.figure_with_downloads("predictions", res.figures["predictions"], active)
            with tabs[1]:
                widgets.figure_with_downloads("logit_lens", res.figures["logit_lens"], active)
            with tabs[2]:
                for name, fig in res.figures.items():
                    if name.startswith("attention_layer"):
                        widgets.figure_with_downloads(name, fig, active)
            with tabs[3]:
                for name in ("tokens", "predictions", "logit_lens"):
                    widgets.table_with_download(name, res.tables[name], active)
            widgets.export_all_button(res, outcome.spec_hash, active)
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

st.divider()
st.subheader("Quality check")
st.caption("Induction test (per-head induction and previous-token scores) and held-out loss for language models, "
           "accuracy for task models. Runs as a background job: it keeps going if you close the tab.")
check = ModelCheckSpec(model=lm.id)
if st.button("Run the quality check as a job", key="check_job"):
    try:
        rec = wb.submit(check)
        st.session_state[f"check_job_{lm.id}"] = rec.id
        st.success(f"Job `{rec.id}` submitted.")
        st.page_link("views/jobs.py", label=f"Follow job {rec.id} on the Jobs page", query_params={"job": rec.id})
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
check_result = wb.cached(check)
if check_result is not None:
    widgets.show_result(check_result, check.hash, f"check-{check.hash}",
                        urlstate.share_link("", a=check.hash, model=lm.id))
elif st.session_state.get(f"check_job_{lm.id}"):
    widgets.follow_job(wb, st.session_state[f"check_job_{lm.id}"], "check", rerun_when_done=True)
