"""Influence queries (Grosse et al. 2023): which training examples made the model do this.

Three kinds, all cached like every analysis:
- `influence_factors` (a job, an artifact): EK-FAC factors (or K-FAC / diagonal / identity) of a model on a
  training set, fitted once per (model, training set, modules, strategy) by kronfluence;
- `influence_lm`: a prompt and a completion on a language model; measurement −log p(completion | prompt);
  the most helpful and most harmful training sequences with token-wise scores, influence per layer (MLP vs
  attention), the distribution of scores, TF-IDF pre-filtering and low-rank query batching with their checks;
- `influence_image`: an image and a label on the digits models; measurement the label's cross-entropy.

Scores follow kronfluence: ∇fᵀ (G + λI)⁻¹ ∇L(z), positive = helpful (lowers the query loss), not divided by the
training-set size unless `divide_by_n`; λ is 0.1 × the mean eigenvalue of each layer unless a number is given.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import FitSpec, Result, Spec, added, bounded
from .influence_figures import module_bars
from .registry import register

MODULE_SETS = ("mlp", "mlp+attn")
STRATEGIES = ("ekfac", "kfac", "diagonal", "identity")
DIGITS_TRAIN = "digits"
MAX_QUERY_CHARS = 20_000


@dataclass(frozen=True)
class TrainingFile:
    """A `text:PATH` training set: its content joins the cache key, so an edited file is refitted."""
    path: str

    def check_access(self, wb) -> None:
        from compute.paths import confined

        confined(wb.settings, self.path, "training files")

    def check_ready(self, wb) -> None:
        """Before a job: the file exists and is UTF-8 documents within the size limit (the job reads it again)."""
        from influence.training_sets import read_documents

        read_documents(self.path)

    def fingerprint(self, wb) -> str:
        p = Path(self.path).expanduser()
        try:
            return hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        except OSError:
            return "missing"


@dataclass(frozen=True)
class InfluenceFactorsSpec(FitSpec, kind="influence_factors", title="Influence factors (EK-FAC)", page="influence"):
    ARTIFACT = "influence_factors"
    train: str = "corpus"  # LM: corpus | text:PATH; image models: digits (the training split)
    modules: str = "mlp"  # LMs: mlp (Grosse et al.) or mlp+attn (Quad); image models track every Linear and Conv2d
    strategy: str = "ekfac"
    max_sequences: int = bounded(1000, 10, 200_000)  # LM training sequences, taken evenly across the set
    fisher_samples: int = bounded(1, 1, 32)  # labels sampled per example for the true Fisher (Monte Carlo)
    seed: int = 0  # of those samples: the same spec fits the same factors
    # kronfluence's data-parallel fit under torchrun (influence.distributed): the factors equal the one-process
    # fit's within float tolerance (the Fisher's labels are drawn per example)
    processes: int = added(1, 1, lo=1, hi=64)
    # 2: the Fisher's labels drawn per example (influence.fisher), not from torch's global generator
    RESULT_VERSION = 2

    def validate(self) -> None:
        super().validate()
        if self.modules not in MODULE_SETS:
            raise BadInput(f"modules must be one of {', '.join(MODULE_SETS)}, not '{self.modules}'")
        if self.strategy not in STRATEGIES:
            raise BadInput(f"strategy must be one of {', '.join(STRATEGIES)}, not '{self.strategy}'")
        if not (self.train in ("corpus", DIGITS_TRAIN) or self.train.startswith("text:")):
            raise BadInput(f"unknown training set '{self.train}': corpus (the zoo LM's), text:PATH, or digits")

    def depends_on(self):
        return (TrainingFile(self.train[5:]),) if self.train.startswith("text:") else ()

    def factor_fields(self) -> dict:
        return {k: getattr(self, k) for k in ("model", "train", "modules", "strategy", "max_sequences",
                                               "fisher_samples", "seed", "processes")}

    def factors_spec(self) -> "InfluenceFactorsSpec":
        return InfluenceFactorsSpec(**self.factor_fields())

    def resources(self) -> dict:
        return {**super().resources(), "num_cpus": self.processes}

    def describe(self) -> str:
        across = f" over {self.processes} processes" if self.processes > 1 else ""
        return f"{self.strategy.upper()} factors of {self.model} on {self.train}{across}"


# --- the model, its task and its training set -------------------------------------------------------------

@dataclass
class Setup:
    net: torch.nn.Module  # what kronfluence wraps: the HF model inside the bridge, or the image net
    task: object
    train: torch.utils.data.Dataset
    modules: list[str]
    describe_train: str
    lock: object


def setup(ctx, spec: InfluenceFactorsSpec) -> Setup:
    from influence.tasks import ClassifierTask, CausalLMTask, lm_modules
    from influence.training_sets import lm_sequences

    lm = ctx.model(spec.model)
    lock = ctx.workbench.models.device_lock(lm.device)
    if lm.kind == "lm":
        hf = getattr(lm.model, "original_model", None)
        if hf is None:
            raise BadInput(f"{spec.model} is a TransformerLens HookedTransformer, which has no nn.Linear modules "
                           "for the influence engine to track; load it from a Hugging Face folder instead")
        if spec.train == DIGITS_TRAIN:
            raise BadInput("the digits training set belongs to the image models")
        train = lm_sequences(lm.tokenizer, spec.train, int(lm.n_ctx), spec.max_sequences,
                             is_zoo_lm=lm.info.id == "zoo-lm")
        modules = lm_modules(hf, spec.modules)
        desc = (f"{len(train):,} of {train.total_rows:,} training sequences of {train.input_ids.shape[1]} tokens "
                f"({'the zoo corpus, train split' if spec.train == 'corpus' else spec.train})")
        return Setup(hf, CausalLMTask(modules), train, modules, desc, lock)
    if lm.kind == "image":
        from compute.tasks import task_for
        from compute.tasks.digits import Digits

        task = task_for(lm)
        if spec.train != DIGITS_TRAIN or not isinstance(task, Digits):
            raise BadInput("image models are queried against the digits training split (train 'digits')")
        x, _, y, _ = task.split_arrays()
        data = torch.utils.data.TensorDataset(torch.from_numpy(x).float(), torch.from_numpy(y).long())
        modules = [n for n, m in lm.model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        return Setup(lm.model, ClassifierTask(modules), data, modules, f"{len(data):,} training digits", lock)
    raise BadInput(f"{spec.model} is a {lm.kind} model; influence queries run on language and image models")


def fisher_draws(data, spec: InfluenceFactorsSpec):
    """The training set as factors are fitted on it: repeated for several Fisher samples per example, each example
    with its own draws (influence.fisher)."""
    from influence.fisher import FisherDraws

    repeated = data if spec.fisher_samples == 1 else torch.utils.data.ConcatDataset([data] * spec.fisher_samples)
    return FisherDraws(repeated, spec.seed)


@register(InfluenceFactorsSpec, long=True)
def run_influence_factors(spec: InfluenceFactorsSpec, ctx) -> Result:
    from influence.engine import Engine, tracked
    from influence.tasks import block_of, display_name, layer_of

    s = setup(ctx, spec)
    folder = ctx.workbench.artifact_folder(spec)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "start"]

    def progress(f, msg):
        now = time.perf_counter()
        stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[:] = [now, msg]
        ctx.progress(0.98 * f, msg)

    if spec.processes > 1:  # the processes fit into tmp; the first writes the factors
        from compute.torchrun import run_torchrun

        run_torchrun("analyses.influence_ddp", {"spec": spec.to_dict(), "folder": str(tmp)}, tmp, spec.processes,
                     progress, threads_per_process=max(1, torch.get_num_threads() // spec.processes))
        for name in ("torchrun_plan.json", "progress.json", "torchrun.log"):
            (tmp / name).unlink(missing_ok=True)
    else:
        with tracked(s.net, s.task, s.lock) as net:
            Engine(net, s.task, tmp).fit(fisher_draws(s.train, spec), spec.strategy, progress)
    stages.pop("start", None)
    stages.pop("factors fitted", None)
    rows = _factor_table(tmp, spec.strategy, s.net, s.modules)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)  # the factors appear whole or not at all
    table = pd.DataFrame(rows)
    summary = {"model": spec.model, "training_set": s.describe_train, "strategy": spec.strategy,
               "modules": spec.modules if ctx.model(spec.model).kind == "lm" else "every Linear and Conv2d",
               "tracked_modules": len(s.modules), "tracked_parameters": int(table.parameters.sum()) if len(table) else 0,
               "fisher_samples": spec.fisher_samples, "engine": "kronfluence 1.0.1",
               "timing": {k: round(v, 3) for k, v in stages.items()}}
    ctx.progress(1.0, "done")
    return Result(InfluenceFactorsSpec.KIND, summary, {"modules": table}, {"eigenvalues": module_bars(
        table, "mean_eigenvalue", "mean eigenvalue (Λ, or A⊗S for K-FAC) per module")} if len(table) else {})


def _factor_table(folder: Path, strategy: str, net, modules: list[str]) -> list[dict]:
    from safetensors.torch import load_file

    from influence.engine import ANALYSIS
    from influence.tasks import block_of, display_name, layer_of

    base = folder / ANALYSIS / f"factors_{strategy}"
    named = dict(net.named_modules())
    lam = cnt = None
    if (base / "lambda_matrix.safetensors").exists():
        lam, cnt = load_file(base / "lambda_matrix.safetensors"), load_file(base / "num_lambda_processed.safetensors")
    elif (base / "activation_eigenvalues.safetensors").exists():
        ea, eg = load_file(base / "activation_eigenvalues.safetensors"), load_file(base / "gradient_eigenvalues.safetensors")
    rows = []
    for m in modules:
        mod = named[m]
        n_params = sum(p.numel() for p in mod.parameters())
        if lam is not None:
            mean = float(lam[m].double().mean() / cnt[m].double())
        elif strategy == "kfac":
            mean = float(torch.outer(eg[m].double(), ea[m].double()).mean())
        else:
            mean = float("nan")
        rows.append({"module": display_name(m), "layer": layer_of(m), "block": block_of(m) if layer_of(m) is not None
                     else type(mod).__name__, "parameters": n_params, "mean_eigenvalue": mean,
                     "damping_0.1x": 0.1 * mean})
    return rows


# --- queries ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InfluenceQuerySpec(InfluenceFactorsSpec):
    """What every query adds to its factors: how to score and what to show."""
    damping: str = "auto"  # auto: 0.1 × mean eigenvalue per layer (Grosse et al.); or a positive number
    top: int = bounded(10, 1, 200)
    divide_by_n: bool = False  # report scores / N (the paper's scale) instead of kronfluence's raw sums

    def validate(self) -> None:
        super().validate()
        self.damping_value()

    def damping_value(self) -> float | None:
        if str(self.damping).strip().lower() in ("auto", ""):
            return None
        try:
            value = float(self.damping)
        except ValueError:
            raise BadInput(f"damping is 'auto' or a positive number, not '{self.damping}'") from None
        if not value > 0 or not np.isfinite(value):
            raise BadInput(f"damping must be positive (λ is added to every eigenvalue), not {self.damping}")
        return value

    def depends_on(self):
        return (*super().depends_on(), self.factors_spec())


def factor_engine(ctx, spec: InfluenceQuerySpec, share=(0.0, 0.5)):
    """The fitted factors (a job of their own, cached) and the model set up to score against them."""
    t0 = time.perf_counter()
    ctx.require(spec.factors_spec(), share=share)
    return setup(ctx, spec), ctx.workbench.artifact_folder(spec.factors_spec()), time.perf_counter() - t0


def scale_note(spec: InfluenceQuerySpec, n_train: int) -> str:
    return ("positive = helpful (upweighting the example lowers the query's loss); "
            + (f"scores divided by the {n_train:,} training examples" if spec.divide_by_n else
               "raw sums ∇fᵀ(G+λI)⁻¹∇L, not divided by the training-set size"))


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def top_share(scores: np.ndarray, share: float = 0.01) -> float:
    """The share of total |influence| carried by the top `share` of examples (Grosse: heavy-tailed, sparse)."""
    mags = np.sort(np.abs(scores))[::-1]
    k = max(1, int(round(share * len(mags))))
    total = mags.sum()
    return float(mags[:k].sum() / total) if total > 0 else float("nan")
