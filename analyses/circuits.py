"""Circuits: which attention heads matter for a task, by exact patching (the ground truth), mean ablation,
attribution patching and the discrete-SAE-code method (O'Neill & Bui 2024), with each method scored against
the patching ground truth (ROC-AUC, precision, recall, where it ranks the circuit's heads) and timed.

The task is built in (circuits/tasks.py) or a researcher's JSON/CSV, kept verbatim in the spec (`task_text`),
so a share link restores it exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from compute.errors import BadInput

from .base import Result, Spec, bounded
from .circuit_figures import head_graph, head_heatmap, method_scatter
from .registry import register

METHODS = ("patching", "attribution_patching", "codes")
MAX_TASK_CHARS = 500_000


@dataclass(frozen=True)
class CircuitsSpec(Spec, kind="circuits", title="Circuit heads", page="circuits"):
    task: str = "induction"
    task_text: str = ""  # a user's task (JSON or CSV); overrides `task`
    methods: tuple[str, ...] = METHODS
    n_pairs: int = bounded(32, 2, 2048)  # pairs drawn from a built-in task
    seed: int = 0
    ground_truth: float = bounded(0.1, 0.0, 10.0)  # a head is in the circuit when patching removes this share
    select_fraction: float = bounded(0.5, 0.0, 1.0)  # a method selects heads scoring ≥ this share of its top
    sae_examples: int = bounded(10, 1, 2048)  # positive (and as many negative) prompts the codes SAE trains on
    sae_latents: int = bounded(200, 2, 100_000)
    sae_l1: float = bounded(0.02, 0.0, 100.0)
    sae_epochs: int = bounded(500, 1, 100_000)
    sae_lr: float = bounded(1e-3, 1e-7, 1.0)

    def validate(self) -> None:
        super().validate()
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise BadInput(f"unknown method(s) {', '.join(bad) or '(none given)'}; use {', '.join(METHODS)}")
        if len(self.task_text) > MAX_TASK_CHARS:
            raise BadInput(f"the task file is {len(self.task_text):,} characters; at most {MAX_TASK_CHARS:,}")
        if self.task_text.strip():
            from circuits.tasks import parse_task

            parse_task(self.task_text)

    def describe(self) -> str:
        return f"circuit heads of {self.model} on {'a user task' if self.task_text.strip() else self.task}"


def _evaluate(scores: dict, truth: set, fraction: float) -> dict:
    from circuits.scoring import precision_recall, roc_auc

    p, r = precision_recall(scores, truth, fraction)
    return {"roc_auc": roc_auc(scores, truth), "precision": p, "recall": r}


@register(CircuitsSpec, long=True)
def run_circuits(spec: CircuitsSpec, ctx) -> Result:
    from circuits.codes import codes_method
    from circuits.patching import Counter, attribution_patching_scores, head_list, head_name, patching_scores
    from circuits.scoring import pearson, ranks
    from circuits.tasks import task_tokens

    lm = ctx.model(spec.model)
    if lm.kind != "lm":
        raise BadInput(f"{lm.id} is an image model; circuits here are attention heads of a language model")
    name, description, task = task_tokens(lm, spec.task, spec.task_text, spec.n_pairs, spec.seed)
    model = lm.model
    heads = [head_name(*h) for h in head_list(model)]
    warnings = []
    # patching is the ground truth every method is scored against, so it always runs
    ctx.progress(0.05, "patching every head")
    counters = {m: Counter() for m in METHODS}
    t = time.perf_counter()
    base, patch = patching_scores(model, task, counters["patching"])
    seconds = {"patching": time.perf_counter() - t}
    pos_acc, neg_acc = float(base.positive_correct.float().mean()), float(base.negative_correct.float().mean())
    if pos_acc < 0.5:
        warnings.append(f"the model predicts the answer on only {pos_acc:.0%} of the positive prompts: the task may "
                        f"not be one it can do, and its circuit may not exist")
    scores = {"patching": {h: patch[h]["patching"] for h in heads}}
    mean_ablation = {h: patch[h]["mean_ablation"] for h in heads}
    truth = {h for h, v in scores["patching"].items() if v >= spec.ground_truth}
    if not truth:
        warnings.append(f"no head reaches the ground-truth threshold ({spec.ground_truth:.0%} of the logit difference)")
    if "attribution_patching" in spec.methods:
        ctx.progress(0.5, "attribution patching")
        t = time.perf_counter()
        scores["attribution_patching"] = attribution_patching_scores(model, task, base,
                                                                     counters["attribution_patching"])
        seconds["attribution_patching"] = time.perf_counter() - t
    codes = None
    if "codes" in spec.methods:
        ctx.progress(0.6, "discrete SAE codes")
        t = time.perf_counter()
        codes = codes_method(model, task, spec.sae_examples, spec.sae_latents, spec.sae_l1, spec.sae_epochs,
                             spec.sae_lr, spec.seed, counters["codes"])
        seconds["codes"] = time.perf_counter() - t
        scores["codes"] = codes["nodes"]
    ctx.progress(0.9, "scoring")
    methods = [m for m in METHODS if m in scores and (m in spec.methods or m == "patching")]
    rank = {m: ranks(scores[m]) for m in methods}
    table = pd.DataFrame({"head": heads, "layer": [h[0] for h in head_list(model)],
                          "in_circuit": [h in truth for h in heads],
                          **{m: [scores[m][h] for h in heads] for m in methods},
                          "mean_ablation": [mean_ablation[h] for h in heads],
                          **{f"{m}_rank": [rank[m][h] for h in heads] for m in methods}})
    if codes is not None:
        ev = pd.DataFrame([{"head": h, **codes["evidence"][h]} for h in heads])
        table = table.merge(ev, on="head")
    per_method = []
    for m in methods:
        per_method.append({"method": m, **_evaluate(scores[m], truth, spec.select_fraction),
                           "seconds": seconds[m], "forward_passes": counters[m].forward,
                           "backward_passes": counters[m].backward,
                           "pearson_with_patching": pearson(scores[m], scores["patching"]),
                           "circuit_ranks": ", ".join(f"{h}: {rank[m][h]}" for h in sorted(truth))})
    methods_table = pd.DataFrame(per_method)
    tables = {"heads": table, "methods": methods_table}
    edge_summary = None
    if codes is not None:
        truth_edges = {(a, b) for a in truth for b in truth if int(a[1:a.index("H")]) < int(b[1:b.index("H")])}
        edges = pd.DataFrame([{"from": a, "to": b, "score": s, "in_circuit": (a, b) in truth_edges}
                              for (a, b), s in codes["edges"].items()]).sort_values("score", ascending=False)
        tables["edges"] = edges.reset_index(drop=True)
        edge_summary = _evaluate(dict(codes["edges"]), truth_edges, spec.select_fraction)
    summary = {"model": spec.model, "task": name, "task_description": description, "pairs": task.n_pairs,
               "pairs_dropped_unequal_length": task.dropped, "positive_accuracy": pos_acc,
               "negative_accuracy": neg_acc, "logit_diff_positive": float(base.clean.mean()),
               "logit_diff_negative": float(base.corrupt.mean()), "ground_truth_heads": sorted(truth),
               "ground_truth_rule": f"patching removes ≥ {spec.ground_truth:.0%} of the logit difference",
               "selection_rule": f"a method selects heads scoring ≥ {spec.select_fraction:.0%} of its top score",
               "seconds": {m: round(v, 3) for m, v in seconds.items()}, "warnings": warnings}
    if codes is not None:
        summary.update(codes_sae_mse=codes["sae_mse"], codes_sae_examples=codes["sae_examples"],
                       codes_edges=edge_summary)
        missed = [h for h in truth if rank["codes"][h] > len(truth)]
        if missed:
            ev = codes["evidence"]
            summary["codes_missed"] = {
                h: (f"ranked {rank['codes'][h]}: {ev[h]['codes_only_positive']} of its "
                    f"{ev[h]['codes_positive']} codes on positives are never seen on negatives; its mean write "
                    f"differs by {ev[h]['write_change']:.0%} between them") for h in missed}
    figures = {"patching": head_heatmap(table, "patching", f"Activation patching on {name}: share of the logit "
                                                          f"difference removed"),
               "mean_ablation": head_heatmap(table, "mean_ablation", f"Mean ablation on {name}")}
    for m in methods[1:]:
        figures[m] = head_heatmap(table, m, f"{m.replace('_', ' ').capitalize()} on {name}")
        figures[f"{m}_vs_patching"] = method_scatter(table, m)
    if codes is not None:
        figures["head_graph"] = head_graph(table, tables["edges"], "codes", f"Head graph from SAE codes ({name})")
    ctx.progress(1.0, "done")
    return Result(CircuitsSpec.KIND, summary, tables, figures)


def circuits_report(result: Result) -> dict:
    """The CLI's JSON: per method {"heads": {head: score}, "roc_auc", "seconds"} (larger score = more important)."""
    heads = result.tables["heads"]
    out = {}
    for row in result.tables["methods"].itertuples():
        out[row.method] = {"heads": {h: float(v) for h, v in zip(heads["head"], heads[row.method])},
                           "roc_auc": None if np.isnan(row.roc_auc) else float(row.roc_auc),
                           "seconds": float(row.seconds), "precision": None if np.isnan(row.precision) else
                           float(row.precision), "recall": None if np.isnan(row.recall) else float(row.recall)}
    if "patching" in out:
        out["patching"]["mean_ablation"] = {h: float(v) for h, v in zip(heads["head"], heads["mean_ablation"])}
    return out
