"""Interaction bases page: LIB, the Interaction Basis and PCA of a model's node layers (Bushnaq et al. 2024),
built as a background job: kept dimensions and spectra, the edges between layers and their graph (top-N
slider), node- and edge-ablation curves, and the directions' Fourier labels on modular addition."""
from __future__ import annotations

import streamlit as st

from analyses.interaction_bases import InteractionBasesSpec, default_settings, graph_inputs, interaction_graph
from app import urlstate, widgets
from app.services import workbench

BASIS_LABELS = {"lib": "LIB (local, from the next layer's LIB)", "ib": "Interaction Basis (from the logits)",
                "pca": "PCA (centred, the baseline)"}
SHOWN = ("node_layers", "bases", "last_pos_from", "edges", "node_ablation", "edge_ablation", "edge_intervals",
         "position_sources", "hidden_sources", "edge_sources", "sequences", "seq_len", "pca_whiten")

wb = workbench()
st.title("Interaction bases")
st.caption("The Local Interaction Basis (Bushnaq et al. 2024): PCA, whitening, then a rotation to the singular "
           "vectors of the Jacobian to the next layer's basis, each direction scaled by its importance Λ. Beside "
           "it the global Interaction Basis and PCA, with the squared-attribution edges between layers and the "
           "measurement when only the top k directions of a layer, or the N strongest edges, are kept. Checked "
           "against rib's own numbers on its modular-addition model (`rib-modadd`); also the zoo's models "
           "(`zoo-modadd`, `zoo-digits-mlp`, `zoo-lm` with stochastic sources).")

taken = urlstate.take_shared(wb, InteractionBasesSpec)
if taken is not None:
    st.session_state.update({f"ib_{name}": getattr(taken, name) for name in SHOWN})
    st.session_state.update(ib_node_layers=list(taken.node_layers), ib_bases=list(taken.bases))
lm = widgets.require_model(wb)  # language models, task transformers and MLPs alike

from compute.errors import BadInput  # noqa: E402
from interaction.models import chain_for  # noqa: E402

try:
    chain = chain_for(lm)
except BadInput as e:
    widgets.show_error(e)
    st.info("Interaction bases read TransformerLens models (such as `rib-modadd`), the zoo's GPT-NeoX LMs "
            "(`zoo-modadd`, `zoo-lm`) and MLPs (`zoo-digits-mlp`).")
    st.stop()
order = chain.order
defaults = default_settings(lm, chain)
is_lm = defaults["language_model"]  # stochastic sources and corpus rows, no last-position cut
if st.session_state.get("ib_model") != lm.id:  # the defaults of this model
    st.session_state.ib_model = lm.id
    if taken is None:
        for name in SHOWN:
            st.session_state.pop(f"ib_{name}", None)
st.session_state.setdefault("ib_node_layers", list(defaults["node_layers"]))
st.session_state.setdefault("ib_bases", ["lib", "pca"])
st.session_state.setdefault("ib_last_pos_from", defaults["last_pos_from"])
st.session_state.setdefault("ib_position_sources", defaults["position_sources"])
st.session_state.setdefault("ib_hidden_sources", 0)
st.session_state.setdefault("ib_edge_sources", defaults["edge_sources"])

c1, c2, c3 = st.columns([3, 2, 2])
layers = c1.multiselect("Node layers (in forward order, the output last)", order, key="ib_node_layers")
bases = c2.multiselect("Bases", list(BASIS_LABELS), key="ib_bases", format_func=BASIS_LABELS.get)
last_pos = c3.selectbox("Only the last position from", [""] + order, key="ib_last_pos_from",
                        format_func=lambda x: x or "(every position)",
                        help="rib's last_pos_module_type: modular addition reads only the answer position")
d1, d2, d3, d4 = st.columns(4)
edges = d1.checkbox("Edges between consecutive layers", value=True, key="ib_edges")
ablation = d2.checkbox("Node-ablation curves (test split)", value=True, key="ib_node_ablation")
edge_ablation = d3.checkbox("Edge ablation (bisect N)", value=False, key="ib_edge_ablation",
                            help="the smallest number of a section's strongest edges within 0.001 of the unablated "
                                 "measurement; one forward pass per output direction and probe: minutes on a "
                                 "transformer's attention section")
intervals = d4.number_input("Edge IG intervals (0: α = 1)", 0, 100, value=0, key="ib_edge_intervals")
whiten = st.checkbox("Whitened PCA (each direction at unit variance)", value=False, key="ib_pca_whiten",
                     help="rib's PCA baseline is not whitened (C = W); whitened: C = W D^-1/2")
with st.expander("Stochastic sources and data (language models)", expanded=is_lm):
    e1, e2, e3, e4, e5 = st.columns(5)
    pos_sources = e1.number_input("Sources over positions (0: exact)", 0, 1000, key="ib_position_sources")
    hidden_sources = e2.number_input("Sources over directions (0: exact)", 0, 1000, key="ib_hidden_sources")
    edge_sources = e3.number_input("Edge sources (0: exact)", 0, 1000, key="ib_edge_sources")
    sequences = e4.number_input("Corpus rows per split", 1, 4096, value=16, key="ib_sequences")
    seq_len = e5.number_input("Tokens per row", 2, 4096, value=64, key="ib_seq_len")
try:
    layers_in_order = tuple(sorted(layers, key=order.index))
    spec = urlstate.with_opened_settings(
        InteractionBasesSpec(model=lm.id, node_layers=layers_in_order, bases=tuple(bases), last_pos_from=last_pos,
                             edges=edges, node_ablation=ablation, edge_ablation=edge_ablation,
                             edge_intervals=int(intervals), position_sources=int(pos_sources),
                             hidden_sources=int(hidden_sources), edge_sources=int(edge_sources),
                             sequences=int(sequences), seq_len=int(seq_len), pca_whiten=whiten),
        shown=SHOWN)
    spec.validate()
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()

res = widgets.job_result(wb, spec, f"ib-{spec.hash}", "Build the bases (background job)")
if res is not None:
    s = res.summary
    metric = s.get("metric", "accuracy")
    widgets.metric_row([(f"test {metric}, nothing ablated", f"{s[f'unablated_{metric}']:.4f}"),
                        ("train examples (bases built on)", f"{s['train_examples']:,}"),
                        ("test examples (ablations)", f"{s['test_examples']:,}")])
    if "top_edges" in res.tables:
        top = res.tables["top_edges"]
        most = int(top.groupby(["basis", "edge"]).size().max())
        n = st.slider("Edges drawn per pair of layers (the strongest)", 1, most, min(50, most), key=f"ib_topn_{spec.hash}")
        layer_names = list(dict.fromkeys(res.tables["node_layers"].node_layer))
        for kind, part in top.groupby("basis", sort=False):
            part = part.groupby("edge", sort=False).head(n)
            st.plotly_chart(interaction_graph(part, layer_names, kind, *graph_inputs(res.tables, kind)),
                            key=f"ib_graph_{kind}_{spec.hash}_{n}")
    widgets.show_result(res, spec.hash, f"ib-{spec.hash}",
                        urlstate.share_link("interaction_bases", a=spec.hash, model=lm.id),
                        drawn=tuple(f for f in res.figures if f.startswith("graph_")),
                        first=tuple(n for n in ("node_layers", "edges", "directions") if n in res.tables),
                        last=tuple(n for n in ("node_ablation", "edge_ablation", "top_edges", "lambda", "gram")
                                   if n in res.tables))
