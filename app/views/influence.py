"""Influence page (Grosse et al. 2023): which training examples made the model do this. EK-FAC factors of the
model on its training set are fitted once as a background job (kronfluence), then each query — a prompt and a
completion on a language model, an image and a label on the digits models, or the self-influence of every
training digit with a share of labels flipped — is scored against every training example as a job of its own."""
from __future__ import annotations


import numpy as np
import streamlit as st

from analyses.influence_image import InfluenceImageSpec, InfluenceSelfSpec
from analyses.influence_lm import InfluenceLMSpec
from analyses.prompt import PromptSpec
from app import urlstate, widgets
from app.services import workbench

COMMON = ("strategy", "damping", "top", "divide_by_n")
LM_SHOWN = COMMON + ("train", "modules", "max_sequences", "prompt", "completion", "tfidf_k", "rank", "measure", "sae",
                      "feature", "position")
IMAGE_SHOWN = COMMON + ("image", "label")
SELF_SHOWN = COMMON + ("flip_share", "epochs")

wb = workbench()
st.title("Influence")
st.caption("Influence functions with EK-FAC (Grosse et al. 2023, through kronfluence): score(z) = ∇f ᵀ (G + λI)⁻¹ "
           "∇L(z) for every training example z. **Positive = helpful**: upweighting z lowers the query's loss. "
           "Scores are kronfluence's raw sums, not divided by the training-set size unless asked. λ defaults to 0.1 × "
           "the mean eigenvalue of each layer. MLP layers only, as Grosse et al., or MLP + attention, as Quad.")

taken = urlstate.take_shared(wb, InfluenceLMSpec, InfluenceImageSpec, InfluenceSelfSpec)
if taken is not None:
    shown = {InfluenceLMSpec: LM_SHOWN, InfluenceImageSpec: IMAGE_SHOWN, InfluenceSelfSpec: SELF_SHOWN}[type(taken)]
    st.session_state.update({f"inf_{n}": getattr(taken, n) for n in shown})
    st.session_state["inf_view"] = "self" if isinstance(taken, InfluenceSelfSpec) else "query"
lm = widgets.require_model(wb)
if lm.kind not in ("lm", "image"):
    st.info("Influence queries run on language models and on the digits image models: pick one in the sidebar.")
    st.stop()


def options():
    c1, c2, c3, c4 = st.columns(4)
    strategy = c1.selectbox("Curvature", ["ekfac", "kfac", "diagonal", "identity"], key="inf_strategy",
                            help="identity = gradient dot products (no curvature), for contrast")
    damping = c2.text_input("Damping λ", value="auto", key="inf_damping", help="auto: 0.1 × mean eigenvalue per layer")
    top = c3.number_input("Examples shown", 1, 200, value=10, key="inf_top")
    divide = c4.checkbox("Divide by N", value=False, key="inf_divide_by_n",
                         help="the paper's scale: scores divided by the number of training examples")
    return dict(model=lm.id, strategy=strategy, damping=damping, top=int(top), divide_by_n=divide)


def token_html(tokens, scores) -> str:
    """A training sequence with each token's influence as its background (blue helpful, red harmful)."""
    scores = np.asarray(list(scores), dtype=float)
    lim = float(np.abs(scores).max()) or 1.0
    spans = []
    for t, s in zip(tokens, scores):
        a = min(1.0, abs(s) / lim)
        colour = f"rgba(33,102,172,{a:.2f})" if s > 0 else f"rgba(178,24,43,{a:.2f})"
        spans.append(f'<span title="{s:.4g}" style="background:{colour};white-space:pre-wrap">'
                     f"{widgets.literal(t)}</span>")
    return '<div style="font-family:monospace;font-size:0.85em;line-height:1.6">' + "".join(spans) + "</div>"


def sequences(table, label: str, key: str) -> None:
    st.subheader(label)
    for row in table.itertuples():
        with st.expander(f"#{row.rank} · score {row.score:.4g} · training row {row.row}", expanded=row.rank <= 2):
            st.markdown(token_html(list(row.tokens), list(row.token_scores)), unsafe_allow_html=True)
            try:
                st.markdown(f"[Open this sequence on the Models page]"
                            f"({urlstate.spec_link(wb, '', PromptSpec(model=lm.id, prompt=row.text))})")
            except Exception:  # noqa: BLE001 - a sequence the prompt view cannot take: no link
                pass


if lm.kind == "lm":
    st.session_state.setdefault("inf_prompt", "def __init__(self")
    st.session_state.setdefault("inf_completion", ", name):")
    measure = st.radio("Measurement", ["completion", "feature"], key="inf_measure", horizontal=True,
                       format_func={"completion": "log p(completion | prompt)",
                                    "feature": "an SAE feature's activation at a prompt token"}.get)
    st.text_area("Prompt", key="inf_prompt", height=100)
    measured = {}
    if measure == "completion":
        st.text_input("Completion (its log-probability after the prompt is the measurement; one token works too)",
                      key="inf_completion")
        measured = dict(completion=st.session_state.inf_completion)
    else:
        f1, f2, f3 = st.columns([3, 1, 1])
        sae = f1.text_input("SAE of this model (a workbench SAE run hash, or a SAELens folder)", key="inf_sae")
        feature = f2.number_input("Feature", 0, 10_000_000, value=0, key="inf_feature")
        position = f3.number_input("Token (0 = BOS, -1 = last)", -4096, 4096, value=-1, key="inf_position")
        measured = dict(measure="feature", sae=sae.strip(), feature=int(feature), position=int(position), completion="")
    t1, t2, t3, t4, t5 = st.columns(5)
    train = t1.text_input("Training set", value="corpus", key="inf_train",
                          help="corpus: the zoo LM's own training split; or text:PATH on the server (documents "
                               "separated by lines holding only <|endoftext|>)")
    modules = t2.selectbox("Layers", ["mlp", "mlp+attn"], key="inf_modules")
    max_seq = t3.number_input("Training sequences", 10, 200_000, value=1000, key="inf_max_sequences",
                              help="taken evenly across the training set")
    tfidf_k = t4.number_input("TF-IDF pre-filter k (0: off)", 0, 1_000_000, value=0, key="inf_tfidf_k")
    rank = t5.number_input("Query rank (0: full)", 0, 4096, value=0, key="inf_rank",
                           help="query batching: a rank-r approximation of the preconditioned query gradient")
    spec = widgets.valid_spec(lambda: urlstate.with_opened_settings(InfluenceLMSpec(
        **options(), train=train, modules=modules, max_sequences=int(max_seq), prompt=st.session_state.inf_prompt,
        tfidf_k=int(tfidf_k), rank=int(rank), **measured), shown=LM_SHOWN))
    res = widgets.job_result(wb, spec, f"inf-{spec.hash}", "Find the influential training sequences (background job)")
    if res is not None:
        s = res.summary
        widgets.metric_row([("training sequences scored", f"{s['scored']:,}"),
                            ("share of |influence| in the top 1%", f"{s['top_1pct_share_of_abs_influence']:.1%}"),
                            *[(k.replace("_", " "), f"{v:.3f}") for k, v in s.get("checks", {}).items()]])
        st.caption(f"Measured: {s['measurement']}" + (f" = {s['activation']:.4g} here" if "activation" in s else ""))
        st.caption(s["sign_and_scale"] + f" · {s['training_set']} · timing (s): {s['timing']}")
        sequences(res.tables["helpful"], "Most helpful training sequences", "helpful")
        sequences(res.tables["harmful"], "Most harmful training sequences", "harmful")
        widgets.show_result(res, spec.hash, f"inf-{spec.hash}", urlstate.share_link("influence", a=spec.hash, model=lm.id),
                            last=("modules", "blocks"))
else:
    view = st.radio("Query", ["query", "self"], key="inf_view", horizontal=True,
                    format_func={"query": "An image and its label", "self": "Self-influence and flipped labels"}.get)
    if view == "query":
        c1, c2 = st.columns(2)
        image = c1.text_input("Image (digits:N of the held-out split)", value="digits:0", key="inf_image")
        label = c2.number_input("Label (-1: the true label)", -1, 1000, value=-1, key="inf_label")
        spec = widgets.valid_spec(lambda: urlstate.with_opened_settings(
            InfluenceImageSpec(**options(), image=image, label=int(label)), shown=IMAGE_SHOWN))
        res = widgets.job_result(wb, spec, f"inf-{spec.hash}", "Find the influential training digits (background job)")
        if res is not None:
            s = res.summary
            widgets.metric_row([("label", str(s["label"])), ("prediction", str(s["prediction"])),
                                ("helpful with the same label", f"{s['helpful_share_same_label']:.0%}"),
                                ("harmful with the same label", f"{s['harmful_share_same_label']:.0%}")])
            st.caption(s["sign_and_scale"])
            widgets.show_result(res, spec.hash, f"inf-{spec.hash}", urlstate.share_link("influence", a=spec.hash, model=lm.id),
                                first=("helpful", "harmful"))
    else:
        c1, c2 = st.columns(2)
        flip = c1.number_input("Share of labels flipped (a copy is retrained)", 0.0, 0.5, value=0.05, step=0.01,
                               key="inf_flip_share")
        epochs = c2.number_input("Retraining epochs", 1, 500, value=60, key="inf_epochs")
        spec = widgets.valid_spec(lambda: urlstate.with_opened_settings(
            InfluenceSelfSpec(**options(), flip_share=float(flip), epochs=int(epochs)), shown=SELF_SHOWN))
        res = widgets.job_result(wb, spec, f"inf-{spec.hash}", "Compute self-influence (background job)")
        if res is not None:
            s = res.summary
            if s.get("found_in_top_10pct") is not None:
                widgets.metric_row([("flipped labels", f"{s['flipped_labels']:,}"),
                                    ("found in the top 10% of self-influence", f"{s['found_in_top_10pct']:.0%}")])
                st.caption(s["reference"])
            widgets.show_result(res, spec.hash, f"inf-{spec.hash}", urlstate.share_link("influence", a=spec.hash, model=lm.id),
                                first=("top", "detection"))
