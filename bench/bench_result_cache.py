"""Re-opening an analysis (share link / second look) vs computing it, on the same spec, in one run.

The peer here is the same analysis computed from scratch with the model already loaded: what a
tool without a result cache pays on every visit. Usage:
    .venv/bin/python bench/bench_result_cache.py [--repeats 5]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    wb = fresh_workbench("wb-bench-")
    from analyses.prompt import PromptSpec

    wb.models.get("zoo-lm")  # load once: both sides measure the analysis, not the model load
    prompt = "\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(8))
    compute, reopen = [], []
    for r in range(args.repeats):
        spec = PromptSpec(model="zoo-lm", prompt=prompt + f"\n# run {r}\n")
        t = time.perf_counter()
        first = wb.run(spec)
        compute.append(time.perf_counter() - t)
        t = time.perf_counter()
        again = wb.run(spec)
        reopen.append(time.perf_counter() - t)
        assert not first.cached and again.cached
    n_tokens = first.result.summary["n_tokens"]
    out = {"tokens": n_tokens, "compute_s_median": statistics.median(compute),
           "reopen_s_median": statistics.median(reopen),
           "speedup": statistics.median(compute) / statistics.median(reopen), "repeats": args.repeats}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
