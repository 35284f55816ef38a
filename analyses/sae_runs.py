"""SAE training, evaluation of any SAE, and comparison of runs, as specs.

- `sae_train`: train a TopK / Feature Choice / Mutual Choice SAE on one hook of a model from the
  activation cache (a background job), then evaluate it. The run's folder keeps the live curves
  (history.jsonl), a checkpoint (cancel and resubmit resumes) and the SAE in SAELens format (sae/).
- `sae_eval`: the same evaluation for an SAE the workbench did not train (SAELens folder or release).
- `sae_compare`: reconstruction vs sparsity and dead features over runs (the paper's headline plot).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import FitSpec, Result, Spec, added, bounded, counted
from .registry import register
from .sae_figures import comparison_figures, density_histogram, l0_histogram, training_curves
from .sae_source import SAE_ARTIFACT, SAESpec, sae_location

TRAIN_DATASET = "zoo-stdlib"
EVAL_DATASET = "zoo-stdlib-heldout"
MAX_TOKENS = 200_000_000
CE_ROWS = 24
# Held-out evaluation takes every EVAL_SPREAD-th row of EVAL_SPREAD times the requested tokens: files differ a
# lot (the L0 of one SAE ranged 14.7-18.6 over consecutive 32k-token chunks of the held-out text)
EVAL_SPREAD = 4


@dataclass(frozen=True)
class SAETrainSpec(FitSpec, kind="sae_train", title="SAE training", page="sae_training"):
    """Trains one SAE; the run's folder (`Workbench.artifact_folder`) keeps its curves, checkpoint and the SAE."""
    ARTIFACT = SAE_ARTIFACT
    hook: str = "blocks.0.hook_resid_post"
    arch: str = "topk"
    k: float = 16
    d_sae: int = bounded(1536, 1, 1 << 20)
    n_tokens: int = 1_000_000
    batch_size: int = 4096
    lr: float = 1e-3
    aux_loss: str = "aux_k"
    capacity: str = "uniform"
    zipf_exponent: float = 1.0
    dataset: str = TRAIN_DATASET
    seq_len: int = 128
    eval_tokens: int = bounded(32_768, 1, 4_000_000)
    seed: int = 0
    # Data-parallel training under torchrun (sae.distributed): each process takes batch_size / processes tokens of
    # every batch; the SAE equals the one-process run's within float tolerance (Feature / Mutual Choice select over
    # the whole batch). Part of the spec: the runs differ in the last bits.
    processes: int = added(1, 1, lo=1, hi=64)

    def train_config(self):
        from sae.training import TrainConfig

        return TrainConfig(arch=self.arch, k=self.k, d_sae=self.d_sae, n_tokens=self.n_tokens,
                           batch_size=self.batch_size, lr=self.lr, aux_loss=self.aux_loss, capacity=self.capacity,
                           zipf_exponent=self.zipf_exponent, seed=self.seed,
                           dead_tokens=min(1_000_000, max(self.batch_size, self.n_tokens // 4)))

    def validate(self) -> None:
        super().validate()
        if self.n_tokens <= 0:
            raise BadInput("n_tokens must be positive: an SAE needs tokens to train on")
        if self.n_tokens > MAX_TOKENS:
            raise BadInput(f"n_tokens is capped at {MAX_TOKENS:,} per run")
        if self.k > self.d_sae:
            raise BadInput(f"k = {self.k:g} is larger than d_sae = {self.d_sae}: at most d_sae features can fire")
        try:
            self.train_config().validate()
        except ValueError as e:
            raise BadInput(str(e)) from None
        if self.batch_size % self.processes:
            raise BadInput(f"batch_size ({self.batch_size}) must split evenly over {self.processes} processes")

    def resources(self) -> dict:
        return {**super().resources(), "num_cpus": self.processes}  # on a Ray cluster: a CPU per process

    def describe(self) -> str:
        across = f" over {self.processes} processes" if self.processes > 1 else ""
        return f"{self.arch} SAE k={self.k:g} d_sae={self.d_sae} on {self.model} {self.hook}{across}"

    def result_version(self) -> int:
        # 2: evaluated on held-out rows spread over four times as much text (EVAL_SPREAD)
        return 2

    def artifact_version(self) -> int:
        # 2: Feature / Mutual Choice thresholds calibrated after training (they averaged cut-offs over the run)
        return 2 if self.arch in ("feature_choice", "mutual_choice") else 1


@dataclass(frozen=True)
class SAEEvalSpec(SAESpec, kind="sae_eval", title="SAE evaluation", page="sae_training"):
    RESULT_VERSION = 2  # 2: evaluated on held-out rows spread over four times as much text (EVAL_SPREAD)
    eval_tokens: int = bounded(32_768, 1, 4_000_000)
    seq_len: int = 128


@dataclass(frozen=True)
class SAECompareSpec(Spec, kind="sae_compare", title="SAE comparison", page="sae_training"):
    runs: tuple[str, ...] = counted(1, 100, "SAE run")


def held_out_set(ctx, lm, hook: str, n_tokens: int, seq_len: int, progress):
    """The held-out activations an evaluation draws its spread rows from (EVAL_SPREAD x n_tokens)."""
    return ctx.workbench.activations.get_or_build(lm, EVAL_DATASET, hook, EVAL_SPREAD * n_tokens, seq_len=seq_len,
                                                  progress=progress)


def spread_step(eval_set, n_tokens: int) -> int:
    """Every how many rows the evaluation takes one: EVAL_SPREAD, or fewer when the held-out text is short."""
    want = max(1, -(-n_tokens // int(eval_set.meta["seq_len"])))
    return max(1, min(EVAL_SPREAD, len(eval_set.tokens()) // want))


def spread_rows(eval_set, n_tokens: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [tokens, d], token rows) of every spread_step-th row from `offset`, about n_tokens tokens."""
    seq_len = int(eval_set.meta["seq_len"])
    rows = eval_set.tokens()
    want = max(1, -(-n_tokens // seq_len))
    pick = torch.arange(offset, len(rows), spread_step(eval_set, n_tokens))[:want]
    acts = eval_set.load(int(pick[-1] + 1) * seq_len).reshape(-1, seq_len, eval_set.meta["d"])
    return acts[pick].reshape(-1, acts.shape[-1]), rows[pick]


def _eval_result(kind: str, sae, lm, hook: str, eval_set, n_tokens: int, summary_extra: dict,
                 history: pd.DataFrame | None, label: str) -> Result:
    from sae.evaluation import evaluate

    acts, rows = spread_rows(eval_set, n_tokens)
    if acts.shape[1] != sae.cfg.d_in:
        raise BadInput(f"the SAE expects d_in = {sae.cfg.d_in} but {hook} of {lm.id} has {acts.shape[1]} dimensions")
    ev = evaluate(sae, acts, bridge=lm.model, hook_name=hook, tokens=rows[:CE_ROWS])
    summary = {**summary_extra, **ev.summary(), "eval_tokens": int(len(acts)), "d_in": int(sae.cfg.d_in),
               "d_sae": int(sae.cfg.d_sae), "hook": hook}
    features = pd.DataFrame({"feature": np.arange(len(ev.density)), "density": ev.density,
                             "dead": ev.density == 0})
    l0 = pd.DataFrame({"l0": ev.l0_per_token})
    tables = {"features": features, "l0_per_token": l0}
    figures = {"l0_histogram": l0_histogram(ev.l0_per_token, f"L0 per token on held-out text ({label})"),
               "density_histogram": density_histogram(ev.density, f"Feature density ({label})")}
    if history is not None and len(history):
        tables["history"] = history
        figures = {"training_curves": training_curves(history, f"Training curves ({label})"), **figures}
    return Result(kind, summary, tables, figures)


def live_history(wb, spec: SAETrainSpec) -> pd.DataFrame:
    """The curves logged so far by a run (running or finished)."""
    path = wb.artifact_folder(spec) / "history.jsonl"
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


@register(SAETrainSpec, long=True)
def run_sae_train(spec: SAETrainSpec, ctx) -> Result:
    from sae.training import SAETrainer

    lm = ctx.model(spec.model)
    if lm.kind != "lm":
        raise BadInput("SAE training needs a language model")
    activations = ctx.workbench.activations
    train_set = activations.get_or_build(lm, spec.dataset, spec.hook, spec.n_tokens, seq_len=spec.seq_len,
                                         progress=lambda f, m="": ctx.progress(0.15 * f, "caching training activations"))
    eval_set = held_out_set(ctx, lm, spec.hook, spec.eval_tokens, spec.seq_len,
                            lambda f, m="": ctx.progress(0.15 + 0.05 * f, "caching held-out activations"))
    acts = train_set.load()
    folder = ctx.workbench.artifact_folder(spec)
    meta = {"model_name": spec.model, "hook_name": spec.hook, "context_size": train_set.meta["seq_len"],
            "prepend_bos": True, "dataset_path": spec.dataset}
    trainer = SAETrainer(spec.train_config(), acts, folder, metadata=meta, device=lm.device,
                         progress=lambda f, m="": ctx.progress(0.2 + 0.7 * f, m))
    resumed = trainer.try_resume()
    if spec.processes > 1:  # the processes train and checkpoint; this one then reads the finished run back
        from sae.ddp_launch import train_data_parallel

        # every process reads what this trainer holds: the whole cached set (it may hold more than n_tokens)
        train_data_parallel(spec.train_config(), train_set, len(acts), folder, spec.processes, str(lm.device),
                            metadata=meta, progress=lambda f, m="": ctx.progress(0.2 + 0.7 * f, m),
                            threads_per_process=max(1, torch.get_num_threads() // spec.processes))
        trainer.try_resume()
    history = pd.DataFrame(trainer.train())
    if spread_step(eval_set, spec.eval_tokens) > 1:
        # FC/MC thresholds: calibrated on held-out rows between the evaluation rows (same files, no row shared),
        # since held-out text fires more features than the training text (a corpus-level threshold from
        # training text left the layer-1 L0 at 17 of 16)
        calibration, _ = spread_rows(eval_set, spec.eval_tokens, offset=EVAL_SPREAD // 2)
        trainer.calibrate(calibration, f"{len(calibration):,} tokens of {EVAL_DATASET} rows between the "
                                       f"evaluation rows")
    else:
        trainer.calibrate()
    sae_folder = folder / "sae"
    if sae_folder.exists():
        shutil.rmtree(sae_folder)
    trainer.save_inference(sae_folder)
    (sae_folder / "training_spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
    from sae.loading import load_sae

    saved = load_sae(str(sae_folder), device=lm.device)  # evaluate exactly what was saved
    ctx.progress(0.92, "evaluating")
    tokens_per_s = spec.n_tokens / max(trainer.seconds, 1e-9)
    extra = {"model": spec.model, "arch": spec.arch, "k": spec.k, "aux_loss": spec.aux_loss,
             "capacity": spec.capacity if spec.arch == "feature_choice" else None, "sae_path": str(sae_folder),
             "train_seconds": trainer.seconds, "train_tokens_per_s": tokens_per_s, "resumed": resumed,
             "processes": spec.processes,
             "final_train_nmse": float(history.nmse.iloc[-1]) if len(history) else None,
             "train_dead_fraction": float(trainer.dead_mask().float().mean())}
    return _eval_result(SAETrainSpec.KIND, saved, lm, spec.hook, eval_set, spec.eval_tokens, extra, history,
                        f"{spec.arch}, k={spec.k:g}")


@register(SAEEvalSpec, long=True)
def run_sae_eval(spec: SAEEvalSpec, ctx) -> Result:
    from sae.loading import SAELoadError, load_sae

    lm = ctx.model(spec.model)
    try:
        sae = load_sae(sae_location(ctx.workbench, spec.sae), device=lm.device)
    except SAELoadError as e:
        raise BadInput(str(e)) from None
    hook = spec.hook or (sae.cfg.metadata.hook_name if sae.cfg.metadata else None) or ""
    if not hook:
        raise BadInput("the SAE does not name its hook; give one")
    eval_set = held_out_set(ctx, lm, hook, spec.eval_tokens, spec.seq_len,
                            lambda f, m="": ctx.progress(0.5 * f, "caching held-out activations"))
    arch = sae.cfg.architecture()
    extra = {"model": spec.model, "arch": arch, "k": getattr(sae.cfg, "k", None), "aux_loss": None,
             "sae_path": spec.sae}
    return _eval_result(SAEEvalSpec.KIND, sae, lm, hook, eval_set, spec.eval_tokens, extra, None, arch)


def finished_sae_runs(wb, model_id: str) -> list[tuple[str, Spec]]:
    """(hash, spec) of every SAE training or evaluation run of this model that has a stored result."""
    out = []
    for kind, cls in ((SAETrainSpec.KIND, SAETrainSpec), (SAEEvalSpec.KIND, SAEEvalSpec)):
        for h, data, _ in wb.store.list_specs(kind):
            if data.get("model") != model_id:
                continue
            try:
                spec = cls.from_dict(data, stored=True)
            except BadInput:  # a spec written by an older version: skip it
                continue
            if wb.results.get(wb.result_key(spec)) is not None:
                out.append((h, spec))
    return out


def run_label(h: str, spec: Spec) -> str:
    from sae.registry import label as arch_label

    if isinstance(spec, SAETrainSpec):
        arch = arch_label(spec.arch)
        return f"{arch} k={spec.k:g} d_sae={spec.d_sae} {spec.hook} · {h}"
    return f"loaded {getattr(spec, 'sae', '')} · {h}"


def _arch_label(summary: dict) -> str:
    from sae.registry import ARCHITECTURES

    arch = summary.get("arch") or "other"
    return arch if arch in ARCHITECTURES else "other"


@register(SAECompareSpec)
def run_sae_compare(spec: SAECompareSpec, ctx) -> Result:
    rows = []
    for h in spec.runs:
        run_spec = ctx.workbench.load_shared(h)
        if run_spec.KIND not in (SAETrainSpec.KIND, SAEEvalSpec.KIND):
            raise BadInput(f"{h} is a {run_spec.KIND} analysis, not an SAE run")
        cached = ctx.workbench.cached(run_spec)
        if cached is None:
            raise BadInput(f"SAE run {h} has no result yet (still training, or never run)")
        s = cached.summary
        rows.append({"run": h, "arch": _arch_label(s), "k": s.get("k"), "d_sae": s.get("d_sae"),
                     "aux_loss": s.get("aux_loss"), "hook": s.get("hook"), "l0_mean": s["l0_mean"], "nmse": s["nmse"],
                     "explained_variance": s["explained_variance"], "ce_loss_recovered": s.get("ce_loss_recovered"),
                     "delta_lm_loss": s.get("delta_lm_loss"), "dead_fraction": s["dead_fraction"],
                     "underused_fraction": s["underused_fraction"]})
    table = pd.DataFrame(rows)
    best = table.sort_values("nmse").iloc[0]
    summary = {"model": spec.model, "runs": len(table), "best_nmse_run": best.run, "best_nmse": float(best.nmse)}
    return Result(SAECompareSpec.KIND, summary, {"runs": table}, comparison_figures(table))
