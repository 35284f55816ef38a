"""Attribution page: compare token-attribution methods on a prompt and its target (ReAGent, SHAP,
Captum's gradient and ablation methods, attention), with faithfulness, agreement and cost; or run
the comparison over a set of prompts as a job."""
from __future__ import annotations


import streamlit as st

from analyses.attribution_text import (FAITHFULNESS_DEFINITIONS, AttributionBatchSpec, AttributionTextSpec,
                                       default_replacement, parse_prompt_lines)
from analyses.influence_lm import InfluenceLMSpec
from app import urlstate, widgets
from app.services import workbench
from app.views.attribution_image_panel import image_page
from attribution.registry import REPLACEMENTS, TEXT_METHODS


def method_label(name: str) -> str:
    return TEXT_METHODS[name].label if name in TEXT_METHODS else name


def method_help() -> str:
    return "\n".join(f"- {m.label}: {m.cost}" for m in TEXT_METHODS.values())

wb = workbench()
st.title("Attribution")
st.caption("Which prompt tokens make the model predict the target? Several attribution methods side by side, "
           "with how faithful each is (soft sufficiency / comprehensiveness against random attributions, deletion "
           "and insertion curves), how much they agree, and what each cost.")
try:
    lm = wb.models.get(st.session_state.get("model"))
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()

shared, _ = urlstate.shared_spec(wb)
if lm.kind == "image":
    st.subheader(f"Image attribution on {lm.id}")
    image_page(wb, lm)
    st.stop()
taken = urlstate.take_shared(wb, AttributionTextSpec)
if taken is not None:
    st.session_state.update(attr_prompt=taken.prompt, attr_target=taken.target, attr_methods=list(taken.methods),
                            attr_replacement=taken.replacement, attr_faithfulness=taken.faithfulness,
                            attr_ran=taken.hash)
if st.session_state.get("attr_defaults_for") != lm.id:  # a model's own default replacement, once per model
    st.session_state.setdefault("attr_replacement", default_replacement(lm))
    if taken is None:
        st.session_state["attr_replacement"] = default_replacement(lm)
    st.session_state["attr_batch_replacement"] = default_replacement(lm)
    st.session_state["attr_defaults_for"] = lm.id

FAITHFULNESS_LABELS = {"reagent_code": "ReAGent paper's code (default)", "workbench": "workbench (earlier)"}


def faithfulness_caption(summary: dict) -> None:
    """Which definition the faithfulness numbers follow: results stored before the choice existed lack the
    key and used the workbench one."""
    name = summary.get("faithfulness", "workbench")
    st.caption(f"Faithfulness shown: **{FAITHFULNESS_LABELS[name]}**: {FAITHFULNESS_DEFINITIONS[name]}. "
               f"Soft-NS/NC are compared with random attributions (softmax of uniform noise) on the same prompt.")


def token_rows(scores, methods) -> str:
    """One row of highlighted tokens per method (red: raises the target, blue: lowers it)."""
    out = ["<table style='border-collapse:collapse;font-family:monospace;font-size:0.85em'>"]
    for m in methods:
        df = scores[scores.method == m]
        cells = []
        for tok, v in zip(df.token, df.normalised):
            colour = f"rgba(178,24,43,{min(1, abs(v)):.2f})" if v >= 0 else f"rgba(33,102,172,{min(1, abs(v)):.2f})"
            cells.append(f"<span title='{v:+.3f}' style='background:{colour};padding:1px 0;white-space:pre'>"
                         f"{widgets.literal(tok)}</span>")
        out.append(f"<tr><td style='padding-right:12px;white-space:nowrap'>{widgets.literal(method_label(m))}</td>"
                   f"<td>{''.join(cells)}</td></tr>")
    return "".join(out) + "</table>"


def show(res, h: str) -> None:
    s = res.summary
    tau = s.get("mean_pairwise_kendall_tau")
    widgets.metric_row([("target", repr(s["target"])), ("log p(target)", f"{s['log_p_target']:.3f}"),
                        ("methods", str(len(s["methods"]))), ("seconds (all methods)", f"{s['total_seconds']:.1f}"),
                        ("mean Kendall τ between methods", f"{tau:.2f}" if tau is not None else "–")])
    st.markdown(token_rows(res.tables["scores"], s["methods"]), unsafe_allow_html=True)
    faithfulness_caption(s)
    if "reagent" in s["notes"]:
        r = s["notes"]["reagent"]
        st.caption(f"ReAGent replacement: {r['replacement_label']} · {r['converged_probes']}/{r['probes']} probes "
                   f"converged (median {r['median_steps']:.0f} steps)" + (f" · ⚠️ {r['warning']}" if "warning" in r
                                                                         else ""))
    if "shap" in s["notes"]:
        sh = s["notes"]["shap"]
        st.caption(f"SHAP: {sh['model_calls']} model calls (max_evals {sh['max_evals']}), masked tokens become "
                   f"{sh['mask_token']!r}")
        if sh.get("unresolved_spans"):
            tokens = res.tables["scores"].query("method == 'shap'").token.tolist()
            spans = "; ".join(f"tokens {a}–{b} ({''.join(tokens[a:b + 1])!r})" for a, b in sh["unresolved_spans"])
            st.warning(f"SHAP did not split every span within its budget: {spans} share part of their value, so "
                       f"their order among themselves is not SHAP's. {sh['evals_to_resolve']:,} evaluations resolve "
                       f"every token (Settings → SHAP max evaluations). {sh['ties']}.", icon="⚠️")
    widgets.show_result(res, h, f"attr-{h}", urlstate.share_link("attribution", a=h, model=lm.id),
                        first=("methods",), last=("agreement",))


tab_one, tab_batch = st.tabs(["One prompt", "Batch of prompts"])
with tab_one:
    with st.form("attr_form"):
        prompt = st.text_area("Prompt", key="attr_prompt", height=110)
        c1, c2 = st.columns([2, 3])
        target = c1.text_input("Target continuation (empty: the model's next token)", key="attr_target")
        methods = c2.multiselect("Methods", list(TEXT_METHODS), default=list(TEXT_METHODS), key="attr_methods",
                                 format_func=method_label, help=method_help())
        with st.expander("Settings"):
            d1, d2, d3, d4 = st.columns(4)
            replacement = d1.selectbox("ReAGent replacement model", list(REPLACEMENTS), key="attr_replacement",
                                       format_func=REPLACEMENTS.get)
            faithfulness = d4.selectbox("Faithfulness definition", list(FAITHFULNESS_DEFINITIONS),
                                        key="attr_faithfulness", format_func=FAITHFULNESS_LABELS.get,
                                        help="\n".join(f"- {FAITHFULNESS_LABELS[k]}: {v}"
                                                       for k, v in FAITHFULNESS_DEFINITIONS.items()))
            shap_evals = d2.number_input("SHAP max evaluations", 50, 20_000, 500, step=50, key="attr_shap_evals")
            ig_steps = d3.number_input("IG steps", 4, 1024, 128, key="attr_ig_steps")
        go = st.form_submit_button("Compare", type="primary")
    if go or st.session_state.get("attr_ran"):
        try:
            spec = urlstate.with_opened_settings(
                AttributionTextSpec(model=lm.id, prompt=prompt, target=target, methods=tuple(methods),
                                    replacement=replacement, shap_max_evals=int(shap_evals), ig_steps=int(ig_steps),
                                    faithfulness=faithfulness),
                shown=("prompt", "target", "methods", "replacement", "shap_max_evals", "ig_steps", "faithfulness"))
            bar = st.progress(0.0, text="starting")
            out = wb.run(spec, progress=lambda f, m="": bar.progress(min(1.0, f), text=m))
            bar.empty()
            st.session_state["attr_ran"] = out.spec_hash
            urlstate.set_params(a=out.spec_hash)
            show(out.result, out.spec_hash)
            taught = InfluenceLMSpec(model=lm.id, prompt=prompt, completion=out.result.summary["target"])
            st.markdown("[Which training sequences taught the model this target? (Influence: log p(target | prompt))]"
                        f"({urlstate.spec_link(wb, 'influence', taught)})")
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

with tab_batch:
    st.caption("One prompt per line (write \\n for a newline inside a prompt); optionally a TAB and the target "
               "(a line without one explains the model's next token). "
               "Runs as a background job; the table averages each method's metrics over the prompts, as in the "
               "ReAGent paper.")
    text = st.text_area("Prompts", key="attr_batch_prompts", height=160)
    b1, b2, b3 = st.columns([3, 2, 2])
    batch_methods = b1.multiselect("Methods", list(TEXT_METHODS), default=list(TEXT_METHODS),
                                   key="attr_batch_methods", format_func=method_label)
    batch_replacement = b2.selectbox("ReAGent replacement model", list(REPLACEMENTS), key="attr_batch_replacement",
                                     format_func=REPLACEMENTS.get)
    batch_faithfulness = b3.selectbox("Faithfulness definition", list(FAITHFULNESS_DEFINITIONS),
                                      key="attr_batch_faithfulness", format_func=FAITHFULNESS_LABELS.get)
    prompts, targets = parse_prompt_lines(text)
    if prompts:
        try:
            bspec = urlstate.with_opened_settings(
                AttributionBatchSpec(model=lm.id, prompts=prompts, targets=targets, methods=tuple(batch_methods),
                                     replacement=batch_replacement, faithfulness=batch_faithfulness),
                shown=("prompts", "targets", "methods", "replacement", "faithfulness"))
            bspec.validate()
            res = widgets.job_result(wb, bspec, f"attr-batch-{bspec.hash}",
                                     f"Compare on {len(prompts)} prompts (background job)")
            if res is not None:
                faithfulness_caption(res.summary)
                widgets.show_result(res, bspec.hash, f"attrb-{bspec.hash}",
                                    urlstate.share_link("attribution", a=bspec.hash, model=lm.id),
                                    first=("per_method",), last=("per_prompt",))
        except Exception as e:  # noqa: BLE001
            widgets.show_error(e)

if isinstance(shared, AttributionBatchSpec):
    st.divider()
    st.subheader("Shared batch comparison")
    res = wb.cached(shared)
    if res is None:
        st.info("This batch comparison has no stored result on this server yet.")
    else:
        faithfulness_caption(res.summary)
        widgets.table_with_download("per_method", res.tables["per_method"], "attr-shared")
        for name, fig in res.figures.items():
            widgets.figure_with_downloads(name, fig, "attr-shared")
