"""All-feature dashboard data for one SAE over the same tokens: ours vs sae-dashboard, in one run.

The SAE: a TopK SAE (d_sae 1536 = 8 x d_model, k 8) trained here on the zoo LM's layer-0 residual
stream. The tokens: the same rows of the zoo corpus for both. Ours = the `sae_dashboards` analysis
from tokens to stored tables, timed cold (activation cache empty: includes the model's forward pass)
and warm (activations already cached, as on a second SAE of the same hook). Peer = sae-dashboard
0.8.0's SaeVisRunner.run for every feature, in its own venv (`make bench-env`: it pins
transformer-lens 2.x), with the same torch and thread count. Runs alternate, `--rounds` times.

    .venv/bin/python bench/bench_dashboards.py --peer-python .bench-venvs/sae-dashboard/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from fresh import fresh_workbench  # noqa: E402  (bench/fresh.py)
HOOK = "blocks.0.hook_resid_post"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", default=str(ROOT / ".bench-venvs/sae-dashboard/bin/python"))
    ap.add_argument("--tokens", type=int, default=65_536)
    ap.add_argument("--d-sae", type=int, default=1536)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ["WORKBENCH_THREADS"] = str(args.threads)
    wb = fresh_workbench("wb-bench-dash-")
    home = str(wb.settings.home)

    import torch
    from safetensors.torch import save_file

    from analyses.sae_dashboard import SAEDashboardSpec
    from analyses.sae_runs import SAETrainSpec
    from compute.models import ZOO

    run = SAETrainSpec(model="zoo-lm", hook=HOOK, arch="topk", k=8, d_sae=args.d_sae, n_tokens=262_144,
                       batch_size=2048, lr=2e-3, eval_tokens=4096)
    wb.run(run)
    sae_folder = wb.artifact_folder(run) / "sae"
    spec = SAEDashboardSpec(model="zoo-lm", sae=run.hash, n_tokens=args.tokens)
    lm = wb.models.get("zoo-lm")
    aset = wb.activations.get_or_build(lm, spec.dataset, HOOK, args.tokens, seq_len=spec.seq_len)
    rows = aset.tokens()[: args.tokens // spec.seq_len]
    tok_file = Path(home) / "tokens.safetensors"
    save_file({"tokens": rows.contiguous()}, tok_file)
    ref_file = Path(home) / "reference.safetensors"
    with torch.no_grad():
        save_file({"tokens": rows[:4].contiguous(), "logits": lm.model(rows[:4]).float().contiguous()}, ref_file)

    ours_cold, ours_warm, peer, peer_out, result = [], [], [], None, None
    for _ in range(args.rounds):
        shutil.rmtree(wb.settings.activations_dir, ignore_errors=True)
        wb.settings.activations_dir.mkdir()
        t0 = time.perf_counter()
        result = wb.run(spec, force=True).result
        ours_cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        wb.run(spec, force=True)
        ours_warm.append(time.perf_counter() - t0)
        out = subprocess.run([args.peer_python, str(ROOT / "bench" / "peer_sae_dashboard.py"),
                              "--model-folder", ZOO["zoo-lm"].path, "--sae-folder", str(sae_folder),
                              "--tokens", str(tok_file), "--reference", str(ref_file), "--threads", str(args.threads)],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode != 0:
            raise SystemExit("peer failed:\n" + out.stderr[-3000:])
        peer_out = json.loads(out.stdout.strip().splitlines()[-1])
        peer.append(peer_out["seconds"])

    # cross-check the top activations: sae-dashboard only picks "bold" tokens at positions 6 .. seq-5 of each row
    # (it needs a buffer of context around them), so compare with our SAE's maxima over those positions
    from analyses.sae_source import load_for_model

    sae, _ = load_for_model(wb, run.hash, lm)
    acts = wb.activations.get_or_build(lm, spec.dataset, HOOK, args.tokens, seq_len=spec.seq_len).load(rows.numel())
    with torch.no_grad():
        z = sae.encode(acts).reshape(rows.shape[0], rows.shape[1], -1)[:, 6 : rows.shape[1] - 5]
    ours_max = z.amax(dim=(0, 1))
    diffs = {int(f): (float(ours_max[int(f)]), v) for f, v in peer_out["max_acts"].items() if v > 0}
    worst = max(diffs.items(), key=lambda kv: abs(kv[1][0] - kv[1][1]), default=(None, (0.0, 0.0)))
    mismatch = abs(worst[1][0] - worst[1][1])
    print("worst feature (ours, peer):", worst, file=sys.stderr)
    med = statistics.median
    report = {
        "tokens": int(rows.numel()), "d_sae": args.d_sae, "threads": args.threads, "rounds": args.rounds,
        "torch": torch.__version__,
        "ours_cold_s": [round(x, 2) for x in ours_cold], "ours_warm_s": [round(x, 2) for x in ours_warm],
        "peer_s": [round(x, 2) for x in peer],
        "speedup_cold": round(med(peer) / med(ours_cold), 1), "speedup_warm": round(med(peer) / med(ours_warm), 1),
        "ours_stage_seconds": result.summary["seconds"],
        "max_activation_max_abs_diff_vs_peer": float(mismatch),
        "peer_model_conversion_max_logit_diff": peer_out["logit_check_max_diff"],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
