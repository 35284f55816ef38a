"""Interaction bases of a model's node layers: LIB, the Interaction Basis and PCA side by side (interaction/),
with each layer's kept dimensions, Λ and Gram spectra, the squared-attribution edges between consecutive
layers (α = 1 or integrated gradients over n intervals), node- and edge-ablation curves on the task's test
split (accuracy, or the next-token loss of a language model), and for modular addition each direction's
dominant Fourier frequency as its label.

Runs on TransformerLens models (TransformerLens-format folders, such as rib's modular-addition model), the
zoo's GPT-NeoX LMs and the zoo's MLPs (interaction/models.py); the Gram, M and C come from the task's train
split, as rib builds them (analyses/interaction_data.py). Language models use rib's stochastic sources.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from compute.errors import BadInput

from .base import Result, Spec, added
from .registry import register

TOP_EDGES = 200  # per pair of layers, kept for the graph and its table
GRAPH_NODES = 20  # directions per layer drawn (the first: C's columns are sorted by Λ, the constant first)
LABELLED_DIRECTIONS = 40  # per layer and basis, in the directions table
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
    edge_intervals: int = added(0, legacy=0, lo=0, hi=1000)  # 0: α = 1 (gradient × activation); n: IG
    position_sources: int = added(0, legacy=0, lo=0, hi=1000)  # rib's n_stochastic_sources_basis_pos; 0 = exact
    hidden_sources: int = added(0, legacy=0, lo=0, hi=1000)  # rib's n_stochastic_sources_basis_hidden; 0 = exact
    edge_sources: int = added(0, legacy=0, lo=0, hi=1000)  # rib's n_stochastic_sources_edges (positions); 0 = exact
    edge_ablation: bool = added(False, legacy=False)
    sequences: int = added(16, legacy=16, lo=1, hi=4096)  # language models: corpus rows per split
    seq_len: int = added(64, legacy=64, lo=2, hi=4096)
    seed: int = added(0, legacy=0)  # the stochastic sources' draws
    dtype: str = added("float64", legacy="float64", choices=("float64", "float32"))
    pca_whiten: bool = added(False, legacy=False)  # PCA scaled to unit variance per direction (rib's whitened baseline)

    def fits(self):
        """The fitted bases this analysis reads (analyses/interaction_fit.py), one per basis kind."""
        from .interaction_fit import InteractionBasisSpec

        return tuple(InteractionBasisSpec(model=self.model, basis=kind, node_layers=self.node_layers,
                                          last_pos_from=self.last_pos_from,
                                          truncation_threshold=self.truncation_threshold,
                                          position_sources=self.position_sources, hidden_sources=self.hidden_sources,
                                          sequences=self.sequences, seq_len=self.seq_len, seed=self.seed,
                                          pca_whiten=self.pca_whiten and kind == "pca")
                     for kind in self.bases)

    def depends_on(self):
        return self.fits()

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


def default_settings(lm, chain) -> dict:
    """The node layers, last-position cut and stochastic sources a model starts with: rib's mod-add layers
    and cut on a 1-layer transformer task; every residual stream of a language model (no cut: the
    next-token loss reads every position) with one source over positions for M and for the edges, as
    rib's LM configs; the input, each ReLU and the output of an MLP. The page and the CLI start from these."""
    from compute.tasks import task_for
    from compute.tasks.language_modeling import LanguageModelling

    order = chain.order
    exact = {"position_sources": 0, "edge_sources": 0, "language_model": False}
    if lm.kind == "image":
        return {"node_layers": tuple(n for n in order if n == order[0] or n == order[-1] or
                                     order.index(n) % 2 == 0), "last_pos_from": "", **exact}
    if isinstance(task_for(lm), LanguageModelling):
        return {"node_layers": tuple(n for n in order if "hook_resid" in n) + (order[-1],), "last_pos_from": "",
                "position_sources": 1, "edge_sources": 1, "language_model": True}
    layers = tuple(n for n in DEFAULT_NODE_LAYERS if n in order)
    return {"node_layers": layers if len(layers) >= 2 else (order[0], order[-1]),
            "last_pos_from": "blocks.0.hook_resid_mid" if "blocks.0.hook_resid_mid" in order else "", **exact}


@register(InteractionBasesSpec, long=True)
def run_interaction_bases(spec: InteractionBasesSpec, ctx) -> Result:
    import torch

    from interaction.ablation import edge_ablation_bisect, exponential_schedule, node_ablation_curve
    from interaction.build import collect_activations, squared_edges
    from interaction.fourier import dominant_frequencies

    from .interaction_fit import load_bases, prepare, train_activations

    lm = ctx.model(spec.model)
    prepared = prepare(lm, spec)
    sections, data, first_acts = prepared.sections, prepared.data, prepared.first_acts
    if spec.dtype == "float32":
        warnings.warn("float32 requested: the bases are computed in float64 all the same, because the "
                      "truncation threshold (1e-15 of rib's configs) is below float32's rounding (1e-7) and "
                      "would keep noise directions", stacklevel=1)
    timing: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:  # seconds per stage, summed over layers, into the summary
        now = time.perf_counter()
        timing[stage] = timing.get(stage, 0.0) + now - clock[0]
        clock[0] = now

    n = len(spec.bases)
    fitted = {}
    for b, fit in enumerate(spec.fits()):  # each basis once per model, data and settings: cached artifacts
        done = ctx.require(fit, share=(0.02 + 0.5 * b / n, 0.02 + 0.5 * (b + 1) / n))
        fitted[fit.basis] = load_bases(Path(done.summary["folder"]))
    lap("grams and bases (fits)")
    ctx.progress(0.55, "activations")
    acts = train_activations(prepared, lm) if spec.edges or spec.edge_ablation else None
    test_acts = collect_activations(first_acts(data.test), sections, keep_output=False)

    def run_from(i: int, f):
        with torch.no_grad():
            for s in sections[i:]:
                f = s.run(f)
        return f

    baseline = data.measure(run_from(0, test_acts.by_layer[sections[0].start]))
    grid_acts = (collect_activations(first_acts(data.everything), sections, keep_output=False)
                 if data.everything is not None else None)
    lap("activations")

    rows, spectra, gram_rows, edge_rows, ablation_rows, top_rows, edge_ablation_rows, labels = ([] for _ in range(8))
    for b, kind in enumerate(spec.bases):
        share = lambda f, m="", b=b: ctx.progress(0.6 + 0.4 * (b + f) / n, m)  # noqa: E731
        bases = fitted[kind]
        for layer, basis in bases.items():
            rows.append({"basis": kind, "node_layer": layer, "orig_dim": basis.orig_dim, "kept_dim": basis.kept_dim,
                         "rotated": basis.C is not None})
            if basis.Lambda is not None:
                spectra += [{"basis": kind, "node_layer": layer, "index": i, "lambda": float(v)}
                            for i, v in enumerate(basis.Lambda)]
            if b == 0 and basis.gram_eigenvalues is not None:
                gram_rows += [{"node_layer": layer, "index": i, "eigenvalue": float(v)}
                              for i, v in enumerate(basis.gram_eigenvalues)]
            if grid_acts is not None and basis.C is not None:
                f = grid_acts.by_layer[layer]  # every position the layer keeps
                values = (f @ basis.C[:, :LABELLED_DIRECTIONS]).numpy()
                labels += [{"basis": kind, "node_layer": layer, "direction": k, **lab}
                           for k, lab in enumerate(dominant_frequencies(values, data.p))]
        lap(f"{kind}: labels")
        for i, s in enumerate(sections):
            a, c = bases[s.start], bases[s.end]
            E = None
            if spec.edges or spec.edge_ablation:
                share(0.3 * i / len(sections), f"{kind}: edges {s.start} -> {s.end}")
                E = squared_edges(s, acts.by_layer[s.start], a.C, a.C_pinv, c.C, n_intervals=spec.edge_intervals,
                                  sources=spec.edge_sources or None, seed=spec.seed)
                lap(f"{kind}: edges")
            if spec.edges:
                flat = E.flatten().sort(descending=True).values
                top = torch.topk(E.flatten(), min(TOP_EDGES, E.numel()))
                top_rows += [{"basis": kind, "edge": f"{s.start} -> {s.end}", "source_layer": s.start, "target_layer": s.end,
                              "in_index": int(j % E.shape[1]), "out_index": int(j // E.shape[1]), "value": float(v)}
                             for v, j in zip(top.values, top.indices)]
                edge_rows.append({"basis": kind, "edge": f"{s.start} -> {s.end}", "out_dim": E.shape[0],
                                  "in_dim": E.shape[1], "total": float(E.sum()), "max": float(E.max()),
                                  "top50_share": float(flat[:50].sum() / flat.sum()) if float(flat.sum()) else None})
            if spec.node_ablation:
                share(0.3 + 0.3 * i / len(sections), f"{kind}: ablating {s.start}")
                curve = node_ablation_curve(sections, test_acts.by_layer[s.start], i, a.C, a.C_pinv, data.measure,
                                            exponential_schedule(a.orig_dim))
                ablation_rows += [{"basis": kind, "node_layer": s.start, "kept": k, data.metric: v}
                                  for k, v in curve.items()]
                lap(f"{kind}: node ablation")
            if spec.edge_ablation:
                share(0.6 + 0.4 * i / len(sections), f"{kind}: edge ablation {s.start} -> {s.end}")
                found = edge_ablation_bisect(sections, test_acts.by_layer[s.start], i, E, a.C, a.C_pinv, c.C,
                                             c.C_pinv, data.measure, baseline, data.higher_is_better)
                edge_ablation_rows += [{"basis": kind, "edge": f"{s.start} -> {s.end}", "kept_edges": k,
                                        "total_edges": found["total_edges"], data.metric: v,
                                        "smallest_within_0.001": found["n_edges"]}
                                       for k, v in sorted(found["probes"].items())]
                lap(f"{kind}: edge ablation")
    tables = {"node_layers": pd.DataFrame(rows), "lambda": pd.DataFrame(spectra), "gram": pd.DataFrame(gram_rows)}
    if edge_rows:
        tables["edges"] = pd.DataFrame(edge_rows)
        tables["top_edges"] = pd.DataFrame(top_rows)
    if ablation_rows:
        tables["node_ablation"] = pd.DataFrame(ablation_rows)
    if edge_ablation_rows:
        tables["edge_ablation"] = pd.DataFrame(edge_ablation_rows)
    if labels:
        tables["directions"] = pd.DataFrame(labels)
    summary = {"model": spec.model, "bases": list(spec.bases), "node_layers": list(spec.node_layers),
               "train_examples": int(len(data.train)), "test_examples": int(len(data.test)), "metric": data.metric,
               "basis_folders": {f.basis: str(ctx.workbench.artifact_folder(f)) for f in spec.fits()},
               f"unablated_{data.metric}": baseline,
               "sources": {"positions": spec.position_sources, "hidden": spec.hidden_sources,
                           "edges": spec.edge_sources},
               "edge_intervals": spec.edge_intervals, "timing": {k: round(v, 3) for k, v in timing.items()}}
    if edge_ablation_rows:
        ea = tables["edge_ablation"].drop_duplicates(["basis", "edge"])
        summary["edges_needed"] = {f"{basis}: {edge}": (None if pd.isna(v) else int(v)) for basis, edge, v in
                                   zip(ea.basis, ea.edge, ea["smallest_within_0.001"])}
    ctx.progress(1.0, "done")
    return Result(InteractionBasesSpec.KIND, summary, tables, _figures(tables, data.metric))


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
            metric = result.summary.get("metric", "accuracy")
            entry["node_ablation"] = {layer: {str(int(k)): float(a) for k, a in zip(g.kept, g[metric])}
                                      for layer, g in ab.groupby("node_layer", sort=False)}
        if "edge_ablation" in t:
            ea = t["edge_ablation"].query("basis == @kind").drop_duplicates("edge")
            entry["edge_ablation"] = {r.edge: {"n_edges": None if pd.isna(r["smallest_within_0.001"]) else
                                               int(r["smallest_within_0.001"]), "total_edges": int(r.total_edges)}
                                      for _, r in ea.iterrows()}
        out[kind] = entry
    return out


def node_importance(tables: dict, kind: str) -> dict:
    """{(layer, direction): importance}: LIB/IB's Λ (C's columns follow its order), PCA's Gram eigenvalue."""
    if kind == "pca" or "lambda" not in tables or not len(tables["lambda"]):
        g = tables["gram"]
        return {(layer, int(i)): float(v) for layer, i, v in zip(g.node_layer, g["index"], g.eigenvalue)}
    lam = tables["lambda"][tables["lambda"].basis == kind]
    return {(layer, int(i)): float(v) for layer, i, v in zip(lam.node_layer, lam["index"], lam["lambda"])}


def interaction_graph(top: pd.DataFrame, layers: list[str], kind: str, importance: dict | None = None,
                      labels: dict | None = None) -> go.Figure:
    """Nodes: the first GRAPH_NODES directions of each layer (column = layer, row = rank by Λ), sized by their
    importance (Λ, or the Gram eigenvalue for PCA; per layer, by the square root) and named by their labels
    (Fourier frequencies on modular addition); edges: the strongest edges between them, width by strength;
    node colour: the graph's communities (networkx's greedy modularity on the edge weights)."""
    import networkx as nx

    importance, labels = importance or {}, labels or {}
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
    biggest = {}
    for n in nodes:
        biggest[n[0]] = max(biggest.get(n[0], 0.0), abs(importance.get(n, 0.0)))
    sizes = [6 + 16 * (abs(importance.get(n, 0.0)) / biggest[n[0]]) ** 0.5 if biggest[n[0]] else 9 for n in nodes]
    fig.add_trace(go.Scatter(x=[layers.index(n[0]) for n in nodes], y=[n[1] for n in nodes], mode="markers",
                             marker={"size": sizes, "color": [community.get(n, -1) for n in nodes], "colorscale": "Turbo"},
                             text=[f"{n[0]} #{n[1]}" + (f" · {labels[n]}" if n in labels else "") +
                                   (f" · importance {importance[n]:.3g}" if n in importance else "") +
                                   f" · community {community.get(n, '-')}" for n in nodes],
                             hoverinfo="text", showlegend=False))
    fig.update_layout(title=f"{kind}: interaction graph (the strongest edges among the first {GRAPH_NODES} "
                            f"directions per layer)", xaxis={"tickvals": list(range(len(layers))), "ticktext": layers},
                      yaxis={"title": "direction (rank)", "autorange": "reversed"}, height=520)
    return fig


def graph_inputs(tables: dict, kind: str) -> tuple[dict, dict]:
    """The importance and labels of the nodes of one basis's graph."""
    labels = {}
    if "directions" in tables:
        d = tables["directions"]
        labels = {(r.node_layer, int(r.direction)): r.label for r in d[d.basis == kind].itertuples()}
    return node_importance(tables, kind), labels


def _figures(tables: dict, metric: str = "accuracy") -> dict[str, go.Figure]:
    figs = {}
    if "top_edges" in tables:
        top = tables["top_edges"]
        layers = list(dict.fromkeys(tables["node_layers"].node_layer))  # forward order
        for kind, part in top.groupby("basis", sort=False):
            figs[f"graph_{kind}"] = interaction_graph(part, layers, kind, *graph_inputs(tables, kind))
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
            fig.add_trace(go.Scatter(x=g.kept, y=g[metric], mode="lines+markers", name=f"{kind} · {layer}",
                                     line={"dash": {"lib": "solid", "ib": "dot"}.get(kind, "dash")}))
        what = "test accuracy" if metric == "accuracy" else "held-out next-token loss"
        fig.update_layout(title=f"Node ablation: {what} keeping the top k directions", xaxis_title="k kept",
                          yaxis_title=metric, xaxis_type="log")
        figs["node_ablation"] = fig
    if "edge_ablation" in tables:
        ea = tables["edge_ablation"]
        fig = go.Figure()
        for (kind, edge), g in ea.groupby(["basis", "edge"], sort=False):
            fig.add_trace(go.Scatter(x=g.kept_edges, y=g[metric], mode="markers", name=f"{kind} · {edge}"))
        fig.update_layout(title=f"Edge ablation: {metric} keeping the N strongest edges of one pair of layers "
                                f"(the bisection's probes)", xaxis_title="N edges kept", yaxis_title=metric,
                          xaxis_type="log")
        figs["edge_ablation"] = fig
    return figs
