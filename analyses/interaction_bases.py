"""Interaction bases of a model's node layers: LIB, the Interaction Basis and PCA side by side (interaction/),
with each layer's kept dimensions, Λ and Gram spectra, the squared-attribution edges between consecutive
layers, and node-ablation curves on the task's test split (accuracy, rib's exponential schedule).

Runs on TransformerLens-format checkpoints without LayerNorm that declare a task (compute/tl_format.py),
such as rib's modular-addition model; the Gram, M and C come from the task's train split, as rib builds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from compute.errors import BadInput

from .base import Result, Spec, counted
from .registry import register

TOP_EDGES = 200  # per pair of layers, kept for the graph and its table
GRAPH_NODES = 20  # directions per layer drawn (the first: C's columns are sorted by Λ, the constant first)
DEFAULT_NODE_LAYERS = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post", "logits")


@dataclass(frozen=True)
class InteractionBasesSpec(Spec, kind="interaction_bases", title="Interaction bases (LIB, IB, PCA)",
                           page="interaction_bases"):
    node_layers: tuple[str, ...] = DEFAULT_NODE_LAYERS
    bases: tuple[str, ...] = ("lib", "pca")
    last_pos_from: str = "blocks.0.hook_resid_mid"  # rib's last_pos_module_type (add_resid1); "" = every position
    truncation_threshold: float = 1e-15
    edges: bool = True
    node_ablation: bool = True

    def validate(self) -> None:
        super().validate()
        from interaction.build import BASIS_KINDS

        if len(self.node_layers) < 2:
            raise BadInput("give at least two node layers, the last of them the logits")
        bad = [b for b in self.bases if b not in BASIS_KINDS]
        if bad or not self.bases:
            raise BadInput(f"bases are {', '.join(BASIS_KINDS)}; got {', '.join(bad) or 'none'}")
        if not 0 < self.truncation_threshold < 1:
            raise BadInput("truncation_threshold must be in (0, 1)")

    def describe(self) -> str:
        return f"interaction bases ({', '.join(self.bases)}) of {self.model}"


def _model_and_data(ctx, spec):
    from compute.tasks import task_for
    from compute.tasks.modular_addition import ModularAddition
    from compute.tl_format import read_config

    lm = ctx.model(spec.model)
    folder = Path(lm.info.path) if lm.info.path else None
    if lm.kind != "lm" or folder is None or read_config(folder) is None:
        raise BadInput(f"interaction bases run on TransformerLens-format checkpoint folders without LayerNorm so "
                       f"far (config.json with \"format\": \"transformer_lens\"); {spec.model} is not one")
    task = task_for(lm)
    if not isinstance(task, ModularAddition):
        raise BadInput(f"{spec.model} declares no task with an accuracy (modular addition) to build and ablate on")
    return lm, task.data(lm, "train"), task.data(lm, "test")


def _first_activations(model, ids, first: str):
    import torch

    from interaction.sections import canonical

    hook = canonical(first, model)
    with torch.no_grad():
        _, cache = model.run_with_cache(ids.to(model.cfg.device), names_filter=[hook])
    a = cache[hook].double()
    return torch.cat([a, torch.ones(*a.shape[:-1], 1, dtype=a.dtype)], dim=-1)


@register(InteractionBasesSpec, long=True)
def run_interaction_bases(spec: InteractionBasesSpec, ctx) -> Result:
    import torch

    from interaction.ablation import exponential_schedule, node_ablation_curve
    from interaction.build import build_bases, collect_activations, squared_edges
    from interaction.sections import build_sections

    lm, train, test = _model_and_data(ctx, spec)
    model = lm.model
    sections = build_sections(model, list(spec.node_layers), spec.last_pos_from or None)
    ctx.progress(0.05, "activations")
    acts = collect_activations(_first_activations(model, train["input_ids"], spec.node_layers[0]), sections)
    test_acts = collect_activations(_first_activations(model, test["input_ids"], spec.node_layers[0]), sections)
    labels = test["labels"]

    def accuracy(logits) -> float:  # rib's: the argmax over every logit at the last position
        return float((logits[:, -1].argmax(-1).cpu() == labels).double().mean())

    rows, spectra, gram_rows, edge_rows, ablation_rows, top_rows = [], [], [], [], [], []
    n = len(spec.bases)
    for b, kind in enumerate(spec.bases):
        share = lambda f, m="", b=b: ctx.progress(0.1 + 0.85 * (b + f) / n, m)  # noqa: E731
        built = build_bases(kind, sections, acts, spec.truncation_threshold, progress=lambda f, m: share(0.4 * f, m))
        for layer, basis in built.bases.items():
            rows.append({"basis": kind, "node_layer": layer, "orig_dim": basis.orig_dim, "kept_dim": basis.kept_dim,
                         "rotated": basis.C is not None})
            if basis.Lambda is not None:
                spectra += [{"basis": kind, "node_layer": layer, "index": i, "lambda": float(v)}
                            for i, v in enumerate(basis.Lambda)]
            if b == 0 and basis.gram_eigenvalues is not None:
                gram_rows += [{"node_layer": layer, "index": i, "eigenvalue": float(v)}
                              for i, v in enumerate(basis.gram_eigenvalues)]
        for i, s in enumerate(sections):
            a, c = built.bases[s.start], built.bases[s.end]
            if spec.edges:
                share(0.4 + 0.4 * i / len(sections), f"{kind}: edges {s.start} -> {s.end}")
                E = squared_edges(s, acts.by_layer[s.start], a.C, a.C_pinv, c.C)
                flat = E.flatten().sort(descending=True).values
                top = torch.topk(E.flatten(), min(TOP_EDGES, E.numel()))
                top_rows += [{"basis": kind, "edge": f"{s.start} -> {s.end}", "source_layer": s.start, "target_layer": s.end,
                              "in_index": int(j % E.shape[1]), "out_index": int(j // E.shape[1]), "value": float(v)}
                             for v, j in zip(top.values, top.indices)]
                edge_rows.append({"basis": kind, "edge": f"{s.start} -> {s.end}", "out_dim": E.shape[0],
                                  "in_dim": E.shape[1], "total": float(E.sum()), "max": float(E.max()),
                                  "top50_share": float(flat[:50].sum() / flat.sum()) if float(flat.sum()) else None})
            if spec.node_ablation:
                share(0.8 + 0.2 * i / len(sections), f"{kind}: ablating {s.start}")
                curve = node_ablation_curve(sections, test_acts.by_layer[s.start], i, a.C, a.C_pinv, accuracy,
                                            exponential_schedule(a.orig_dim))
                ablation_rows += [{"basis": kind, "node_layer": s.start, "kept": k, "accuracy": v}
                                  for k, v in curve.items()]
    tables = {"node_layers": pd.DataFrame(rows), "lambda": pd.DataFrame(spectra), "gram": pd.DataFrame(gram_rows)}
    if edge_rows:
        tables["edges"] = pd.DataFrame(edge_rows)
        tables["top_edges"] = pd.DataFrame(top_rows)
    if ablation_rows:
        tables["node_ablation"] = pd.DataFrame(ablation_rows)
    summary = {"model": spec.model, "bases": list(spec.bases), "node_layers": list(spec.node_layers),
               "train_examples": int(len(train["labels"])), "test_examples": int(len(labels)),
               "unablated_accuracy": accuracy(test_acts.by_layer[sections[-1].end])}
    ctx.progress(1.0, "done")
    return Result(InteractionBasesSpec.KIND, summary, tables, _figures(tables))


def lib_report(result: Result) -> dict:
    """The CLI's JSON: per basis, {"node_layers": {HOOK: {"kept_dim", "lambda", "gram_eigenvalues"}},
    "edges": {"A -> B": {"total"}}, "node_ablation": {HOOK: {"K": accuracy}}}."""
    t = result.tables
    out = {}
    for kind in result.summary["bases"]:
        layers = {}
        for _, row in t["node_layers"].query("basis == @kind").iterrows():
            lam = t["lambda"]
            lam = lam[(lam.basis == kind) & (lam.node_layer == row.node_layer)].sort_values("index")
            gram = t["gram"][t["gram"].node_layer == row.node_layer].sort_values("index")
            layers[row.node_layer] = {"kept_dim": int(row.kept_dim), "lambda": lam["lambda"].tolist(),
                                      "gram_eigenvalues": gram.eigenvalue.tolist()}
        entry = {"node_layers": layers}
        if "edges" in t:
            entry["edges"] = {r.edge: {"total": r.total} for r in t["edges"].query("basis == @kind").itertuples()}
        if "node_ablation" in t:
            ab = t["node_ablation"].query("basis == @kind")
            entry["node_ablation"] = {layer: {str(int(k)): float(a) for k, a in zip(g.kept, g.accuracy)}
                                      for layer, g in ab.groupby("node_layer", sort=False)}
        out[kind] = entry
    return out


def interaction_graph(top: pd.DataFrame, layers: list[str], kind: str) -> go.Figure:
    """Nodes: the first GRAPH_NODES directions of each layer (column = layer, row = rank by Λ); edges: the
    strongest edges between them, width by strength; node colour: the graph's communities (networkx's
    greedy modularity on the edge weights)."""
    import networkx as nx

    top = top[(top.in_index < GRAPH_NODES) & (top.out_index < GRAPH_NODES)]
    g = nx.Graph()
    for r in top.itertuples():
        g.add_edge((r.source_layer, r.in_index), (r.target_layer, r.out_index), weight=r.value)
    community = {}
    if g.number_of_edges():
        for c, members in enumerate(nx.algorithms.community.greedy_modularity_communities(g, weight="weight")):
            community.update({m: c for m in members})
    fig = go.Figure()
    vmax = float(top.value.max()) if len(top) else 1.0
    for r in top.itertuples():
        x0, x1 = layers.index(r.source_layer), layers.index(r.target_layer)
        fig.add_trace(go.Scatter(x=[x0, x1], y=[r.in_index, r.out_index], mode="lines", hoverinfo="skip",
                                 showlegend=False, line={"width": 0.5 + 6 * r.value / vmax, "color": "rgba(80,80,160,0.35)"}))
    nodes = sorted(g.nodes, key=lambda n: (layers.index(n[0]), n[1]))
    fig.add_trace(go.Scatter(x=[layers.index(n[0]) for n in nodes], y=[n[1] for n in nodes], mode="markers",
                             marker={"size": 9, "color": [community.get(n, -1) for n in nodes], "colorscale": "Turbo"},
                             text=[f"{n[0]} #{n[1]} · community {community.get(n, '-')}" for n in nodes],
                             hoverinfo="text", showlegend=False))
    fig.update_layout(title=f"{kind}: interaction graph (the strongest edges among the first {GRAPH_NODES} "
                            f"directions per layer)", xaxis={"tickvals": list(range(len(layers))), "ticktext": layers},
                      yaxis={"title": "direction (rank)", "autorange": "reversed"}, height=520)
    return fig


def _figures(tables: dict) -> dict[str, go.Figure]:
    figs = {}
    if "top_edges" in tables:
        top = tables["top_edges"]
        layers = list(dict.fromkeys(tables["node_layers"].node_layer))  # forward order
        for kind, part in top.groupby("basis", sort=False):
            figs[f"graph_{kind}"] = interaction_graph(part, layers, kind)
    lam = tables["lambda"]
    if len(lam):
        fig = go.Figure()
        for (kind, layer), g in lam.groupby(["basis", "node_layer"], sort=False):
            v = np.sort(np.abs(g["lambda"].to_numpy()))[::-1]
            fig.add_trace(go.Scatter(y=v, mode="lines", name=f"{kind} Λ · {layer}"))
        for layer, g in tables["gram"].groupby("node_layer", sort=False):
            fig.add_trace(go.Scatter(y=g.eigenvalue, mode="lines", line={"dash": "dot"}, name=f"Gram · {layer}"))
        fig.update_layout(title="Spectra: LIB Λ and the Gram (PCA) eigenvalues per node layer", yaxis_type="log",
                          xaxis_title="direction", yaxis_title="eigenvalue")
        figs["spectra"] = fig
    if "node_ablation" in tables:
        ab = tables["node_ablation"]
        fig = go.Figure()
        for (kind, layer), g in ab.groupby(["basis", "node_layer"], sort=False):
            fig.add_trace(go.Scatter(x=g.kept, y=g.accuracy, mode="lines+markers", name=f"{kind} · {layer}",
                                     line={"dash": "solid" if kind == "lib" else "dash"}))
        fig.update_layout(title="Node ablation: test accuracy keeping the top k directions", xaxis_title="k kept",
                          yaxis_title="accuracy", xaxis_type="log")
        figs["node_ablation"] = fig
    return figs
