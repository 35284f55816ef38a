"""Circuit heads: the discrete-SAE-code method vs exact activation patching vs attribution patching on the same
tasks of the zoo LM (seconds, forward and backward passes, ROC-AUC against the patching ground truth, where each
ranks the circuit's heads), each task in a fresh workbench so nothing is cached.

    PYTHONPATH=. .venv/bin/python bench/bench_circuits.py [--tasks induction,init_assign,close_bracket] [--pairs 32]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fresh import fresh_workbench  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="induction,init_assign,close_bracket")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_circuits.json")))
    args = ap.parse_args(argv)
    from analyses.circuits import CircuitsSpec

    out = {}
    for task in args.tasks.split(","):
        wb = fresh_workbench("bench-circuits-")
        wb.models.get("zoo-lm")  # loading is not a stage
        res = wb.run(CircuitsSpec(model="zoo-lm", task=task, n_pairs=args.pairs)).result
        s = res.summary
        out[task] = {"pairs": s["pairs"], "positive_accuracy": s["positive_accuracy"],
                     "negative_accuracy": s["negative_accuracy"], "ground_truth": s["ground_truth_heads"],
                     "methods": res.tables["methods"].drop(columns=["pearson_with_patching"]).to_dict(orient="records"),
                     "codes_edges": s.get("codes_edges")}
        print(json.dumps({task: out[task]}), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
