"""Attribution comparison cost on the zoo LM (CPU): seconds and model calls per method for a 32-token
prompt, the whole six-method comparison (ReAGent, SHAP, IG, Input×Gradient, saliency, occlusion;
target <= 10 s; the target is the model's own greedy next token, as ReAGent explains it) and
re-opening it from the result cache (target <= 0.2 s).

The first comparison in a process also pays shap's numba compilation (shap compiles its kernels on
first use, without an on-disk cache); it is reported separately from the steady state.

    .venv/bin/python bench/bench_attribution.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from fresh import fresh_workbench  # noqa: E402  (bench/fresh.py)

PROMPT = ("import os\nimport sys\n\n\ndef read_config(path):\n    with open(path) as fh:\n"
          "        return fh.read().split(os.")
SIX = ("reagent", "shap", "integrated_gradients", "input_x_gradient", "saliency", "occlusion")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    wb = fresh_workbench("wb-bench-attr-")
    from analyses.attribution_text import AttributionTextSpec

    lm = wb.models.get("zoo-lm")
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"][:32]  # exactly 32 prompt tokens
    prompt = lm.tokenizer.decode(ids)
    n_tokens = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    runs = []
    for r in range(args.rounds + 1):  # round 0: first in the process (numba compile), then steady state
        spec = AttributionTextSpec(model="zoo-lm", prompt=prompt, target="", methods=SIX, seed=r)
        t0 = time.perf_counter()
        out = wb.run(spec)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = wb.run(spec)
        reopen = time.perf_counter() - t0
        assert again.cached
        m = out.result.tables["methods"].set_index("method")
        runs.append({"total_s": total, "reopen_s": reopen, "methods": m[["seconds", "forward_passes",
                                                                         "backward_passes", "sequences"]]})
    steady = runs[1:]
    per_method = {k: {"seconds": round(statistics.median(r["methods"].loc[k, "seconds"] for r in steady), 3),
                      **{c: int(steady[0]["methods"].loc[k, c]) for c in ("forward_passes", "backward_passes",
                                                                          "sequences")}} for k in SIX}
    report = {"prompt_tokens": n_tokens, "rounds": args.rounds,
              "first_in_process_total_s": round(runs[0]["total_s"], 2),
              "steady_total_s_median": round(statistics.median(r["total_s"] for r in steady), 2),
              "reopen_s_median": round(statistics.median(r["reopen_s"] for r in steady), 3),
              "per_method": per_method}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
