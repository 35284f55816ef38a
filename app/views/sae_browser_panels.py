"""The views of the SAE browser page (feature list, one feature's dashboard, features on a prompt,
steering, SAE error). Each renders a Result produced by an analysis spec; nothing is computed here."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analyses.sae_dashboard import SAEDashboardSpec, SAEFeatureSpec
from analyses.sae_error import SAEErrorSpec
from analyses.influence_lm import InfluenceLMSpec
from analyses.sae_prompt import SAEPromptSpec
from analyses.sae_steer import SAESteerSpec
from app import urlstate, widgets
from compute.errors import BadInput

PAGE = "sae_browser"


def open_feature(feature: int) -> None:
    """Switch the page to a feature's dashboard (a callback, so it runs before the widgets are drawn)."""
    st.session_state["browser_feature"] = int(feature)
    st.session_state["browser_view"] = "Feature"


ERROR_TOKENS = [16_384, 32_768, 65_536, 131_072, 262_144]


def feature_link(spec: SAEDashboardSpec, feature: int, exact: str | None = None) -> str:
    """The readable link to a feature (dashboard settings only when they are not the defaults); with
    `exact`, the feature spec's hash too, which restores every setting, shown or not."""
    default = SAEDashboardSpec(model=spec.model, sae=spec.sae)
    return urlstate.share_link(PAGE, a=exact, model=spec.model, sae=spec.sae, feature=feature,
                               tokens=spec.n_tokens if spec.n_tokens != default.n_tokens else None,
                               dataset=spec.dataset if spec.dataset != default.dataset else None)


def context_html(tokens: list[str], acts: list[float], center: int, scale: float) -> str:
    spans = []
    for i, (tok, a) in enumerate(zip(tokens, acts)):
        alpha = 0.0 if scale <= 0 else min(1.0, max(0.0, a / scale))
        border = "border-bottom:2px solid #333;" if i == center else ""
        spans.append(f'<span title="{a:.3f}" style="background:rgba(228,87,46,{alpha:.2f});{border}'
                     f'padding:1px 0;white-space:pre">{widgets.literal(tok)}</span>')
    return "<div style='font-family:monospace;font-size:0.85em;line-height:1.9'>" + "".join(spans) + "</div>"


def show_contexts(examples: pd.DataFrame, scale: float, with_loss: bool) -> None:
    for row in examples.itertuples():
        extra = ""
        loss = getattr(row, "loss_effect", None)
        if with_loss and loss is not None and loss == loss:  # NaN: the context's last token has no next token
            extra = f" · loss effect {row.loss_effect:+.3f}"
        cols = st.columns([1, 6])
        cols[0].caption(f"{row.activation:.3f}{extra}")
        cols[1].markdown(context_html(list(row.window_tokens), list(row.window_acts), int(row.center), scale),
                         unsafe_allow_html=True)


def dashboards_needed(wb, spec: SAEDashboardSpec):
    """The dashboards result, or a way to start computing it."""
    st.caption(f"Dashboard data for every feature comes from one pass over {spec.n_tokens:,} tokens of "
               f"`{spec.dataset}`, stored once and opened instantly afterwards.")
    return widgets.job_result(wb, spec, f"dash-{spec.hash}", "Compute dashboard data (background job)")


def feature_list(wb, spec: SAEDashboardSpec, model: str, dash) -> None:
    """dash: the stored dashboards the page already loaded, or None."""
    dash = dash if dash is not None else dashboards_needed(wb, spec)
    if dash is None:
        return
    s = dash.summary
    widgets.metric_row([("features", f"{s['d_sae']:,}"), ("tokens", f"{s['n_tokens']:,}"),
                        ("mean L0", f"{s['mean_l0']:.2f}"), ("dead", f"{s['dead_fraction']:.1%}"),
                        ("underused", f"{s['underused_fraction']:.1%}")])
    feats = dash.tables["features"]
    f1, f2, f3 = st.columns([3, 2, 2])
    query = f1.text_input("Filter by label or top tokens", key="browser_filter")
    status = f2.selectbox("Show", ["all", "live only", "dead", "underused"], key="browser_status")
    min_density = f3.number_input("min log10 density", -10.0, 0.0, -10.0, step=0.5, key="browser_min_density")
    view = feats
    if query:
        view = view[view.label.str.contains(query, case=False, regex=False)
                    | view.top_tokens.str.contains(query, case=False, regex=False)]
    view = {"all": view, "live only": view[~view.dead], "dead": view[view.dead],
            "underused": view[view.underused]}[status]
    view = view[view.log10_density >= min_density]
    st.caption(f"{len(view):,} of {len(feats):,} features · click a column to sort, a row to open its dashboard")
    event = st.dataframe(view.drop(columns=["top_tokens"]), hide_index=True, on_select="rerun",
                         selection_mode="single-row", key="browser_feature_table", column_config={
                             "density": st.column_config.NumberColumn(format="%.4f"),
                             "log10_density": st.column_config.NumberColumn(format="%.2f"),
                             "mean_activation": st.column_config.NumberColumn(format="%.3f"),
                             "max_activation": st.column_config.NumberColumn(format="%.3f")})
    rows = event.selection.rows if event is not None else []
    if rows:
        picked = int(view.iloc[rows[0]].feature)
        st.button(f"Open feature {picked}", on_click=open_feature, args=(picked,), type="primary",
                  key="browser_open_selected")
    widgets.share_box(urlstate.share_link(PAGE, model=model, sae=spec.sae, view="Features"))
    for name, fig in dash.figures.items():
        widgets.figure_with_downloads(name, fig, f"dash-{spec.hash}")


def feature_dashboard(wb, spec: SAEDashboardSpec, model: str, dash) -> None:
    if dash is None:
        dashboards_needed(wb, spec)
        return
    d_sae = int(dash.summary["d_sae"])
    feature = st.number_input(f"Feature (0–{d_sae - 1})", min_value=0, max_value=None, step=1,
                              key="browser_feature")
    fspec = SAEFeatureSpec(**{k: v for k, v in spec.to_dict().items() if k != "kind"}, feature=int(feature))
    try:
        res = wb.run(fspec).result
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    urlstate.set_params(feature=int(feature))
    s = res.summary
    st.subheader(f"Feature {s['feature']}: {s['label']}")
    widgets.metric_row([("density", f"{s['density']:.4%}"), ("fires on", f"{s['fires']:,} tokens"),
                        ("mean activation", f"{s['mean_activation']:.3f}"),
                        ("max activation", f"{s['max_activation']:.3f}"),
                        ("status", "dead" if s["dead"] else ("underused" if s["underused"] else "live"))])
    widgets.share_box(feature_link(spec, s["feature"], exact=fspec.hash))
    if s["hook"].endswith("attn.hook_z"):  # an attention-output SAE: which heads write it, from where it reads
        st.markdown(f"[Heads and direct feature attribution of feature {s['feature']}]"
                    f"({urlstate.share_link('attention_features', model=model, sae=spec.sae, feature=s['feature'])})")
    ex = res.tables["examples"]
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Top-activating contexts** (the firing token is underlined; hover a token for its activation)")
        show_contexts(ex[ex.group == "top"], s["max_activation"], with_loss=True)
        quant = ex[ex.group != "top"]
        if len(quant):
            with st.expander("Samples from activation quantiles (q1 lowest … q5 highest)"):
                for group, part in quant.groupby("group"):
                    st.caption(f"{group}: activations {part.activation.min():.3f} – {part.activation.max():.3f}")
                    show_contexts(part, s["max_activation"], with_loss=False)
    with right:
        widgets.figure_with_downloads("activation_histogram", res.figures["activation_histogram"], f"f-{fspec.hash}")
        st.markdown("**Nearest features by decoder cosine**")
        nb = res.tables["neighbours"][["other", "cosine", "other_label"]]
        st.dataframe(nb, hide_index=True)
        st.markdown("**Features it co-fires with**")
        st.dataframe(res.tables["cofiring"][["other", "count", "p_other_given_feature", "jaccard", "other_label"]],
                     hide_index=True)
        jump = st.selectbox("Open a related feature", [None, *nb.other.tolist(),
                                                       *res.tables["cofiring"].other.tolist()], key="browser_jump")
        if jump is not None:
            st.button(f"Open feature {jump}", on_click=open_feature, args=(jump,), key="browser_jump_go")
    if s.get("logit_path"):
        st.caption(f"Direct logit effects: {s['logit_path']} · W_U. Through the model: the feature removed at its "
                   f"top contexts, mean change of the next-token logits there.")
    widgets.figure_with_downloads("logit_effects", res.figures["logit_effects"], f"f-{fspec.hash}")
    with st.expander("Contexts as exportable figures"):
        for name in ("top_contexts", "quantile_contexts"):
            if name in res.figures:
                widgets.figure_with_downloads(name, res.figures[name], f"f-{fspec.hash}")
    widgets.export_all_button(res, fspec.hash, f"f-{fspec.hash}")


def on_prompt(wb, sae: str, model: str, labels: dict[int, str]) -> None:
    with st.form("browser_prompt_form"):
        prompt = st.text_area("Prompt", key="browser_prompt", height=100)
        top_k = st.slider("features per token", 1, 20, 5, key="browser_top_k")
        go = st.form_submit_button("Show features", type="primary")
    if not (go or st.session_state.get("browser_prompt_ran")):
        return
    st.session_state["browser_prompt_ran"] = True
    try:
        out = wb.run(urlstate.with_opened_settings(SAEPromptSpec(model=model, sae=sae, prompt=prompt, top_k=int(top_k)),
                                                   shown=("prompt", "top_k")))
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    res = out.result
    s = res.summary
    widgets.metric_row([("tokens", str(s["n_tokens"])), ("mean L0", f"{s['l0_mean']:.2f}"),
                        ("mean relative error", f"{s['relative_error_mean']:.3f}")])
    fig = res.figures["prompt_features"]
    if labels:  # name the heatmap's features when dashboards exist
        fig.data[0].y = tuple(f"{str(y).split()[0]} {labels.get(int(str(y).split()[0]), '')}"[:48]
                              for y in fig.data[0].y)
    widgets.figure_with_downloads("prompt_features", fig, f"p-{out.spec_hash}")
    widgets.figure_with_downloads("reconstruction_error", res.figures["reconstruction_error"], f"p-{out.spec_hash}")
    feats = res.tables["features"].copy()
    if labels:
        feats["label"] = [labels.get(int(f), "") for f in feats.feature]
    st.caption("Features that fire (select one to open its dashboard)")
    event = st.dataframe(feats, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key="browser_prompt_features")
    rows = event.selection.rows if event is not None else []
    if rows:
        picked = int(feats.iloc[rows[0]].feature)
        st.button(f"Open feature {picked}", on_click=open_feature, args=(picked,), type="primary",
                  key="browser_prompt_open")
        fired = res.tables["token_features"].query("feature == @picked")
        if len(fired):
            at = int(fired.sort_values("activation").position.iloc[-1])
            query = InfluenceLMSpec(model=model, prompt=prompt, measure="feature", sae=sae, feature=picked, position=at)
            st.markdown(f"[Which training sequences made feature {picked} fire at token {at}? (Influence)]"
                        f"({urlstate.spec_link(wb, 'influence', query)})")
    widgets.table_with_download("tokens", res.tables["tokens"], f"p-{out.spec_hash}")
    widgets.share_box(urlstate.share_link(PAGE, a=out.spec_hash, model=model))
    widgets.export_all_button(res, out.spec_hash, f"p-{out.spec_hash}")


def _ints(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise BadInput(f"feature lists are comma-separated integers, got '{text}'") from None


def _floats(text: str, n: int) -> tuple[float, ...]:
    """One coefficient for every steered feature, or one per feature."""
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise BadInput(f"coefficients are comma-separated numbers, got '{text}'") from None
    if not all(math.isfinite(v) for v in values):
        raise BadInput(f"coefficients must be finite numbers, got '{text}'")
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise BadInput(f"{len(values)} coefficients for {n} steered features: give one, or one per feature")
    return values


def steering(wb, sae: str, model: str) -> None:
    st.session_state.setdefault("browser_coef", "10")
    with st.form("browser_steer_form"):
        prompt = st.text_area("Prompt", key="browser_steer_prompt", height=90)
        c1, c2, c3 = st.columns(3)
        steer = c1.text_input("Add features (comma-separated)", key="browser_steer_features")
        coefs = c2.text_input("coefficients (× decoder direction): one for all, or one per feature",
                              key="browser_coef")
        ablate = c3.text_input("Zero features (comma-separated)", key="browser_ablate")
        n_new = st.slider("tokens to generate", 0, 64, 20, key="browser_new_tokens")
        go = st.form_submit_button("Compare with the unmodified model", type="primary")
    if not (go or st.session_state.get("browser_steer_ran")):
        return
    st.session_state["browser_steer_ran"] = True
    try:
        feats = _ints(steer)
        spec = urlstate.with_opened_settings(
            SAESteerSpec(model=model, sae=sae, prompt=prompt, steer_features=feats,
                         coefficients=_floats(coefs, len(feats)), ablate_features=_ints(ablate),
                         max_new_tokens=int(n_new)),
            shown=("prompt", "steer_features", "coefficients", "ablate_features", "max_new_tokens"))
        out = wb.run(spec)
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    s = out.result.summary
    widgets.metric_row([("KL(unmodified ‖ steered), next token", f"{s['kl_next_token']:.4f}"),
                        ("top next token", f"{s['top1_clean']} → {s['top1_steered']}"),
                        ("largest probability change", f"{s['max_prob_change']:.3f}")])
    left, right = st.columns(2)
    left.markdown("**Unmodified**")
    left.code(prompt + s["continuation_clean"], language=None)
    right.markdown("**Steered / ablated**")
    right.code(prompt + s["continuation_steered"], language=None)
    widgets.figure_with_downloads("next_token_change", out.result.figures["next_token_change"], f"s-{out.spec_hash}")
    widgets.table_with_download("next_token", out.result.tables["next_token"], f"s-{out.spec_hash}")
    widgets.share_box(urlstate.share_link(PAGE, a=out.spec_hash, model=model))
    widgets.export_all_button(out.result, out.spec_hash, f"s-{out.spec_hash}")


def sae_error(wb, sae: str, model: str) -> None:
    st.caption("Engels et al. (2024): fit a linear map from the SAE's input to its error on held-out tokens. "
               "The linearly predictable part is error the SAE could still learn; the rest is 'dark matter'.")
    n_tokens = st.select_slider("held-out tokens", ERROR_TOKENS, 65_536,
                                key="browser_err_tokens")
    spec = urlstate.with_opened_settings(SAEErrorSpec(model=model, sae=sae, n_tokens=int(n_tokens)),
                                         shown=("n_tokens",))
    res = widgets.job_result(wb, spec, f"err-{spec.hash}", "Run the error analysis (background job)")
    if res is None:
        return
    s = res.summary
    nl, li = s.get("ce_increase_from_nonlinear"), s.get("ce_increase_from_linear")
    widgets.metric_row([("error variance linearly predictable", f"{s['r2_vector']:.1%}"),
                        ("error norm² linearly predictable (R²)", f"{s['r2_norm']:.1%}"),
                        ("CE increase from the nonlinear error", f"{nl:.1%}" if nl is not None else "–"),
                        ("CE increase from the linear error", f"{li:.1%}" if li is not None else "–")])
    st.caption(f"fit on {s['fit_tokens']:,} tokens, evaluated on {s['eval_tokens']:,} others; CE over "
               f"{s.get('ce_rows', 0)} held-out rows (clean {s.get('ce_clean', float('nan')):.4f}, "
               f"SAE {s.get('ce_sae', float('nan')):.4f} nats)")
    for name, fig in res.figures.items():
        widgets.figure_with_downloads(name, fig, f"e-{spec.hash}")
    widgets.share_box(urlstate.share_link(PAGE, a=spec.hash, model=model))
    widgets.export_all_button(res, spec.hash, f"e-{spec.hash}")
