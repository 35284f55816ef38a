"""Interaction bases: seconds per stage and peak memory, on rib's mod-add model (full batch, rib's settings),
on the zoo LM (rib's stochastic sources) and on the digits MLP (with edge ablation), each in a fresh
workbench; beside rib's own build times recorded in its results (calc_grams_time, calc_C_time,
calc_edges_time of rib_scripts/rib_build/sample_configs_modadd/out/modular_arithmetic_{rib,pca}_seed0_rib_graph.pt,
on the authors' machine, so a ratio across machines is indicative only).

    .venv/bin/python bench/bench_interaction.py [--only modadd,modadd_edges,lm,mlp] [--out bench/results_interaction.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fresh import fresh_workbench  # noqa: E402

# rib's recorded times in seconds (its results store minutes), seed 0, float32 on the authors' GPU
RIB_SECONDS = {"lib": {"grams": 0.0005677739779154459 * 60, "bases": 0.00962690512339274 * 60,
                       "edges": 0.005935347080230713 * 60},
               "pca": {"grams": 0.0005807558695475261 * 60, "bases": 0.0021726489067077637 * 60,
                       "edges": 0.010863280296325684 * 60}}


# rib's edge ablation on the same checkpoint (…_{rib,pca}_seed0_edge_ablation_results.json): the fewest
# edges within 0.001 of the unablated test accuracy, per section by its first node layer
RIB_EDGES_NEEDED = {"lib": {"ln1.0": 133, "ln2.0": 82, "unembed": 633},
                    "pca": {"ln1.0": 167, "ln2.0": 114, "unembed": 682}}


def cases():
    from analyses.interaction_bases import InteractionBasesSpec

    return {
        "modadd": InteractionBasesSpec(model="rib-modadd", bases=("lib", "pca")),
        # the bases at ln2.0 and unembed depend only on the layers after them, so these are rib's full build's
        "modadd_edges": InteractionBasesSpec(model="rib-modadd", node_layers=("blocks.0.hook_resid_mid",
                                                                              "blocks.0.hook_resid_post", "logits"),
                                             bases=("lib", "pca"), node_ablation=False, edge_ablation=True),
        "lm": InteractionBasesSpec(model="zoo-lm", node_layers=("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                                                                "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid",
                                                                "blocks.1.hook_resid_post", "logits"),
                                   last_pos_from="", bases=("lib", "pca"), position_sources=1, hidden_sources=16,
                                   edge_sources=1, edges=False, sequences=16, seq_len=64),
        "mlp": InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                         "layers.4.hook_out", "logits"),
                                    last_pos_from="", bases=("lib", "ib", "pca"), edge_ablation=True),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="modadd,modadd_edges,lm,mlp")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_interaction.json")))
    args = ap.parse_args(argv)
    names = args.only.split(",")
    if len(names) > 1:  # each case in its own process: its own peak memory, its own fresh workbench
        import subprocess
        import tempfile

        out = {"rib_recorded_seconds": RIB_SECONDS, "rib_edges_needed": RIB_EDGES_NEEDED, "cases": {}}
        for name in names:
            part = Path(tempfile.mkdtemp()) / f"{name}.json"
            subprocess.run([sys.executable, __file__, "--only", name, "--out", str(part)], check=True)
            out["cases"].update(json.loads(part.read_text())["cases"])
        Path(args.out).write_text(json.dumps(out, indent=1))
        return
    wb = fresh_workbench("bench-interaction-")
    out = {"rib_recorded_seconds": RIB_SECONDS, "rib_edges_needed": RIB_EDGES_NEEDED, "cases": {}}
    for name in names:
        spec = cases()[name]
        wb.models.get(spec.model)  # loading is not a stage
        start = time.perf_counter()
        fit_seconds = {fit.basis: round(wb.run(fit).seconds, 2) for fit in spec.fits()}  # Gram, M and C per basis
        res = wb.run(spec).result
        s = res.summary
        out["cases"][name] = {"spec": spec.to_dict(), "seconds": round(time.perf_counter() - start, 2),
                              "stages": {**{f"{k}: grams and bases": v for k, v in fit_seconds.items()},
                                         **{k: v for k, v in s["timing"].items() if "(fits)" not in k}},
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "train_examples": s["train_examples"], "metric": s["metric"],
                              "unablated": s[f"unablated_{s['metric']}"],
                              "kept_dims": {f"{r.basis} {r.node_layer}": int(r.kept_dim)
                                            for r in res.tables["node_layers"].itertuples()},
                              "edges_needed": s.get("edges_needed")}
        print(json.dumps({name: out["cases"][name]["stages"], "seconds": out["cases"][name]["seconds"]}), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
