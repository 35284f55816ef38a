"""Interaction bases page: LIB, the Interaction Basis and PCA of a model's node layers (Bushnaq et al. 2024),
built as a background job: kept dimensions and spectra, the edges between layers, node-ablation curves."""
from __future__ import annotations

import streamlit as st

from analyses.interaction_bases import DEFAULT_NODE_LAYERS, InteractionBasesSpec
from app import urlstate, widgets
from app.services import workbench
from compute.tl_format import read_config

BASIS_LABELS = {"lib": "LIB (local, from the next layer's LIB)", "ib": "Interaction Basis (from the logits)",
                "pca": "PCA (centred, the baseline)"}

wb = workbench()
st.title("Interaction bases")
st.caption("The Local Interaction Basis (Bushnaq et al. 2024): PCA, whitening, then a rotation to the singular "
           "vectors of the Jacobian to the next layer's basis, each direction scaled by its importance Λ. Beside "
           "it the global Interaction Basis and PCA, with the squared-attribution edges between layers and the "
           "test accuracy when only the top k directions of a layer are kept. Checked against rib's own numbers "
           "on its modular-addition model (`rib-modadd`).")

taken = urlstate.take_shared(wb, InteractionBasesSpec)
if taken is not None:
    st.session_state.update(ib_layers=list(taken.node_layers), ib_bases=list(taken.bases),
                            ib_last_pos=taken.last_pos_from, ib_edges=taken.edges, ib_ablation=taken.node_ablation)
lm = widgets.require_lm(wb, "Interaction bases")
if not (lm.info.path and read_config(lm.info.path) is not None):
    st.info(f"Interaction bases run on TransformerLens-format checkpoints without LayerNorm that declare a task, "
            f"such as `rib-modadd`; {lm.id} is not one yet. Pick rib-modadd in the sidebar.")
    st.stop()

from interaction.sections import node_layer_order  # noqa: E402

order = node_layer_order(lm.model)
st.session_state.setdefault("ib_layers", [x for x in DEFAULT_NODE_LAYERS if x in order] or order)
st.session_state.setdefault("ib_bases", ["lib", "pca"])
st.session_state.setdefault("ib_last_pos", "blocks.0.hook_resid_mid" if "blocks.0.hook_resid_mid" in order else "")
c1, c2, c3 = st.columns([3, 2, 2])
layers = c1.multiselect("Node layers (in forward order, the logits last)", order, key="ib_layers")
bases = c2.multiselect("Bases", list(BASIS_LABELS), key="ib_bases", format_func=BASIS_LABELS.get)
last_pos = c3.selectbox("Only the last position from", [""] + order, key="ib_last_pos",
                        format_func=lambda x: x or "(every position)",
                        help="rib's last_pos_module_type: modular addition reads only the answer position")
d1, d2 = st.columns(2)
edges = d1.checkbox("Edges between consecutive layers", value=True, key="ib_edges")
ablation = d2.checkbox("Node-ablation curves (test split)", value=True, key="ib_ablation")
try:
    layers_in_order = tuple(sorted(layers, key=order.index))
    spec = urlstate.with_opened_settings(
        InteractionBasesSpec(model=lm.id, node_layers=layers_in_order, bases=tuple(bases), last_pos_from=last_pos,
                             edges=edges, node_ablation=ablation),
        shown=("node_layers", "bases", "last_pos_from", "edges", "node_ablation"))
    spec.validate()
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()

res = widgets.job_result(wb, spec, f"ib-{spec.hash}", "Build the bases (background job)")
if res is not None:
    s = res.summary
    widgets.metric_row([("test accuracy, nothing ablated", f"{s['unablated_accuracy']:.4f}"),
                        ("train examples (bases built on)", f"{s['train_examples']:,}"),
                        ("test examples (ablations)", f"{s['test_examples']:,}")])
    widgets.show_result(res, spec.hash, f"ib-{spec.hash}",
                        urlstate.share_link("interaction_bases", a=spec.hash, model=lm.id),
                        first=tuple(n for n in ("node_layers", "edges") if n in res.tables),
                        last=tuple(n for n in ("node_ablation", "top_edges", "lambda", "gram") if n in res.tables))
