"""Attention features page: an SAE trained on `blocks.L.attn.hook_z` read per head (Kissane et al. 2024).
Every feature's heads (decoder-norm and activation shares), its family (induction, short- or long-range
context) from where its direct feature attribution sits, per head its top features; one feature's heads and
DFA over its top contexts; DFA of a feature on a prompt by (head, destination, source).

Readable links: ?page=attention_features&model=…&sae=…&feature=… opens a feature."""
from __future__ import annotations

import streamlit as st

from analyses.attention_features import AttentionDFASpec, AttentionFeatureSpec, AttentionFeaturesSpec
from analyses.attention_upstream import AttentionUpstreamSpec, upstream_hooks
from analyses.sae_runs import finished_sae_runs, run_label
from analyses.sae_source import load_for_model
from app import urlstate, widgets
from app.services import workbench

VIEWS = ["All features", "Feature", "On a prompt"]
TOKENS = [16_384, 65_536, 262_144, 1_048_576]
SHOWN = ("n_tokens", "n_top", "induction_share", "short_window", "short_share")

wb = workbench()
st.title("Attention features")
st.caption("An SAE trained on an attention layer's `hook_z` (heads concatenated) read per head: which heads "
           "write each feature, which source tokens it reads (direct feature attribution with the attention "
           "pattern frozen, exact), and its family. Train one on the SAE training page with hook "
           "`blocks.L.attn.hook_z`.")
lm = widgets.require_lm(wb, "The Attention features page")

shared = urlstate.take_shared(wb, AttentionFeaturesSpec, AttentionDFASpec, AttentionUpstreamSpec)
if shared is not None:
    st.session_state["af_sae"] = shared.sae
    st.session_state["_seeded_from_url"] = st.session_state.get("_seeded_from_url", set()) | {"af_sae"}
    if isinstance(shared, AttentionDFASpec):
        st.session_state.update(af_view="On a prompt", af_prompt=shared.prompt, af_dfa_feature=shared.feature,
                                af_destination=shared.destination, af_prompt_ran=True)
        if isinstance(shared, AttentionUpstreamSpec):
            st.session_state.update(af_upstream=shared.upstream_sae, af_n_terms=shared.n_terms)
    else:
        st.session_state.update({f"af_{k}": getattr(shared, k) for k in SHOWN},
                                af_view="Feature" if isinstance(shared, AttentionFeatureSpec) else "All features")
        if isinstance(shared, AttentionFeatureSpec):
            st.session_state["af_feature"] = shared.feature

runs = {h: s for h, s in finished_sae_runs(wb, lm.id) if getattr(s, "hook", "").endswith("attn.hook_z")}
urlstate.init_from_url("af_sae", "sae", next(iter(runs), ""))
urlstate.init_from_url("af_feature", "feature", None, cast=int)
if st.session_state.get("af_feature") is not None and "af_view" not in st.session_state:
    st.session_state["af_view"] = "Feature"
options = list(runs)
if st.session_state.get("af_sae") and st.session_state["af_sae"] not in options:
    options.append(st.session_state["af_sae"])
if not options:
    st.info("No attention-output SAE of this model yet: train one on the SAE training page on a hook such as "
            "`blocks.1.attn.hook_z`, or type a SAELens-format folder (or release:sae_id) below.")
sae = st.selectbox("Attention-output SAE", options, key="af_sae", accept_new_options=True,
                   format_func=lambda h: run_label(h, runs[h]) if h in runs else h)
if not sae:
    st.stop()
try:
    sae_obj, hook = load_for_model(wb, sae, lm)
    if not hook.endswith("attn.hook_z"):
        raise ValueError(f"this page needs an attention-output SAE (one trained on blocks.L.attn.hook_z); this SAE "
                         f"reads {hook}: open it in the SAE browser instead")
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()
st.caption(f"{sae_obj.cfg.d_sae:,} features · reads `{hook}` ({sae_obj.cfg.d_in} dims = "
           f"{lm.model.cfg.n_heads} heads × {lm.model.cfg.d_head})")

for key, value in (("af_n_tokens", 65_536), ("af_n_top", 10), ("af_induction_share", 0.4), ("af_short_window", 3),
                   ("af_short_share", 0.5), ("af_destination", -1), ("af_dfa_feature", 0), ("af_feature", 0),
                   ("af_prompt", "def add(a, b):\n    return a + b\n\ndef add(a, b):\n")):
    if st.session_state.get(key) is None:
        st.session_state[key] = value
with st.expander("Data and family thresholds"):
    c1, c2 = st.columns(2)
    n_tokens = c1.select_slider("Tokens of zoo-stdlib read", TOKENS, key="af_n_tokens")
    n_top = c2.number_input("Top contexts per feature (for its family)", 1, 50, key="af_n_top")
    d1, d2, d3 = st.columns(3)
    ind = d1.slider("Induction: share of |DFA| on induction sources ≥", 0.0, 1.0, step=0.05, key="af_induction_share",
                    help="a source is an induction source when the token before it equals the destination token")
    window = d2.number_input("Short-range window (tokens)", 0, 4096, key="af_short_window")
    short = d3.slider("Short-range: share within the window ≥", 0.0, 1.0, step=0.05, key="af_short_share")

try:
    spec = urlstate.with_opened_settings(
        AttentionFeaturesSpec(model=lm.id, sae=sae, n_tokens=int(n_tokens), n_top=int(n_top),
                              induction_share=float(ind), short_window=int(window), short_share=float(short)),
        shown=SHOWN)
    spec.validate()
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()



def upstream_section(dspec: AttentionDFASpec) -> None:
    """Recursive DFA one step back, when a residual-stream SAE on the stream entering the layer is picked."""
    entering = upstream_hooks(hook)
    st.subheader("One step back: residual-stream features feeding it (recursive DFA)")
    st.caption(f"Pick an SAE on the residual stream entering this layer ({' or '.join(f'`{h}`' for h in entering)}): "
               "its features at each source position, through LN1 and W_V, decomposed exactly with the attention "
               "pattern and LN1 scale held; the top terms are rerun with both recomputed.")
    ups = {h: s for h, s in finished_sae_runs(wb, lm.id) if getattr(s, "hook", "") in entering}
    options = [""] + list(ups)
    if st.session_state.get("af_upstream") and st.session_state["af_upstream"] not in options:
        options.append(st.session_state["af_upstream"])
    c1, c2 = st.columns([3, 1])
    up = c1.selectbox("Upstream residual-stream SAE", options, key="af_upstream", accept_new_options=True,
                      format_func=lambda h: "—" if not h else run_label(h, ups[h]) if h in ups else h)
    n_terms = c2.number_input("Terms shown", 1, 500, value=30, key="af_n_terms")
    if not up:
        if not ups:
            st.info("No residual-stream SAE of this model on that hook yet: train one on the SAE training page.")
        return
    try:
        uspec = AttentionUpstreamSpec(**{k: v for k, v in dspec.to_dict().items() if k != "kind"}, upstream_sae=up,
                                      n_terms=int(n_terms))
        ures = wb.run(uspec).result
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    u = ures.summary
    parts = u["parts"]
    widgets.metric_row([("upstream features", f"{parts['upstream features']:.3f}"),
                        ("upstream SAE error", f"{parts['upstream SAE error']:.3f}"),
                        ("parts − pre-activation", f"{u['max_error']:.1e}"),
                        ("top terms keeping their sign, recomputed",
                         "–" if u["recomputed_same_sign"] is None else f"{u['recomputed_same_sign']:.0%}")])
    st.caption(f"Exact: {u['exact']}. Approximate: {u['approximate']}.")
    top = ures.tables["features"].head(8)
    if len(top):
        st.markdown("Upstream features' dashboards: " + " · ".join(
            f"[u{int(j)} ({c:+.3f})]({urlstate.share_link('sae_browser', model=lm.id, sae=up, feature=int(j))})"
            for j, c in zip(top.upstream_feature, top.contribution)))
    widgets.show_result(ures, uspec.hash, f"af-up-{uspec.hash}",
                        urlstate.share_link("attention_features", a=uspec.hash, model=lm.id),
                        first=("parts",), last=("terms", "features", "sources"))


view = st.radio("View", VIEWS, horizontal=True, key="af_view")
if view == "On a prompt":
    prompt = st.text_area("Prompt", key="af_prompt")
    c1, c2 = st.columns(2)
    feature = c1.number_input(f"Feature (0–{sae_obj.cfg.d_sae - 1})", 0, int(sae_obj.cfg.d_sae) - 1,
                              key="af_dfa_feature")
    dest = c2.number_input("Destination position (-1: where the feature is largest)", -1, None,
                           key="af_destination")
    if st.button("Attribute", type="primary", key="af_run_prompt"):
        st.session_state["af_prompt_ran"] = True
    if st.session_state.get("af_prompt_ran"):
        try:
            dspec = AttentionDFASpec(model=lm.id, sae=sae, prompt=prompt, feature=int(feature), destination=int(dest))
            res = wb.run(dspec).result
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)
            st.stop()
        s = res.summary
        widgets.metric_row([("destination", f"{s['destination']} {s['destination_token']!r}"),
                            ("pre-activation", f"{s['pre_activation']:.3f}"), ("activation", f"{s['activation']:.3f}"),
                            ("top head", s["top_head"]), ("DFA + bias − pre-activation", f"{s['dfa_max_error']:.1e}")])
        src = res.tables["sources"]
        st.markdown("**Source tokens** (red: the feature's DFA from that source at the destination)")
        top = float(src.dfa.abs().max()) or 1.0
        from html import escape

        spans = "".join(f"<span title='{d:.3f}' style='background: rgba(228,87,46,{max(d, 0) / top:.2f}); "
                        f"border-bottom: {'2px solid #333' if i == s['destination'] else 'none'}'>"
                        f"{escape(t)}</span>" for i, (t, d) in enumerate(zip(src.token, src.dfa)))
        st.markdown(f"<div style='white-space: pre-wrap; font-family: monospace'>{spans}</div>",
                    unsafe_allow_html=True)
        widgets.show_result(res, dspec.hash, f"af-dfa-{dspec.hash}",
                            urlstate.share_link("attention_features", a=dspec.hash, model=lm.id),
                            first=("heads",), last=("sources", "terms", "tokens"))
        upstream_section(dspec)
    st.stop()

res = widgets.job_result(wb, spec, f"af-{spec.hash}", "Read every feature's heads (background job)")
if res is None:
    st.stop()
s = res.summary
widgets.metric_row([("live features", f"{s['live_features']:,} of {s['d_sae']:,}"),
                    ("induction", f"{s['induction_features']}"), ("short-range", f"{s['short_range_features']}"),
                    ("long-range", f"{s['long_range_features']}"),
                    ("polysemantic heads", f"{s['polysemantic_heads']} of {s['n_heads']}")])
st.caption("Families: " + "; ".join(f"**{k}** {v}" for k, v in s["rule"].items()) +
           f". DFA exactness on the top contexts: {s['dfa_max_error']:.1e}.")
if view == "All features":
    widgets.show_result(res, spec.hash, f"af-{spec.hash}",
                        urlstate.share_link("attention_features", a=spec.hash, model=lm.id),
                        first=("heads", "families"), last=("features", "examples"))
    st.stop()

feature = st.number_input(f"Feature (0–{s['d_sae'] - 1})", 0, int(s["d_sae"]) - 1, key="af_feature")
fspec = AttentionFeatureSpec(**{k: v for k, v in spec.to_dict().items() if k != "kind"}, feature=int(feature))
try:
    fres = wb.run(fspec).result
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()
urlstate.set_params(feature=int(feature))
fs = fres.summary
st.subheader(f"Feature {fs['feature']}: {fs['label']}")
widgets.metric_row([("family", fs["family"]), ("top head", str(fs["top_head"])),
                    ("induction share", "–" if fs["induction_share"] is None else f"{fs['induction_share']:.2f}"),
                    ("short-range share", "–" if fs["short_share"] is None else f"{fs['short_share']:.2f}"),
                    ("mean source distance", "–" if fs["mean_distance"] is None else f"{fs['mean_distance']:.1f}")])
st.markdown(f"[Its dashboard in the SAE browser]"
            f"({urlstate.share_link('sae_browser', model=lm.id, sae=sae, feature=fs['feature'])})")
widgets.show_result(fres, fspec.hash, f"af-f-{fspec.hash}",
                    urlstate.share_link("attention_features", a=fspec.hash, model=lm.id, sae=sae,
                                        feature=fs["feature"]),
                    first=("heads",), last=("examples",))
