"""Train TopK, Feature Choice and Mutual Choice SAEs on cached activations.

One recipe for all three, so that they differ only in the selection rule (Gao et al. 2024):
- decoder rows initialised to unit norm and the encoder to the decoder's transpose (SAELens with
  decoder_init_norm=1); decoder rows re-normalised after every step, with the gradient component
  parallel to each row removed before the step; b_dec initialised to the geometric median of a sample;
- Adam (eps 6.25e-10), optional linear warm-up, gradient clipping at norm 1;
- a latent is dead when it has not fired for `dead_tokens` training tokens; the aux loss sees that mask.
TopK is SAELens's own `TopKTrainingSAE`; Feature and Mutual Choice are ours (`sae.architectures`).

Progress is reported through a callback (which also carries cancellation); the run keeps a
checkpoint (weights, optimiser, step, history) so that a cancelled or crashed run resumes.

With a `collective` (sae.distributed, under torchrun) each process trains on its share of every batch and the run
equals the one-process run on the combined batch; the first process alone writes the checkpoint and the curves.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from sae_lens.saes.sae import TrainStepInput, TrainingSAE

from .registry import OPTION_CHOICES, architecture
CHECKPOINT = "checkpoint.pt"
CALIBRATION_TOKENS = 65_536
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "topk"
    k: float = 16
    d_sae: int = 1536
    n_tokens: int = 2_000_000
    batch_size: int = 4096
    lr: float = 1e-3
    warmup_steps: int = 50
    aux_loss: str = "aux_k"  # for Feature/Mutual Choice; TopK uses SAELens's aux_k
    aux_coefficient: float = 1 / 32
    capacity: str = "uniform"  # Feature Choice only
    zipf_exponent: float = 1.0
    dead_tokens: int = 1_000_000
    log_every: int = 20
    checkpoint_every: int = 200
    seed: int = 0

    @property
    def n_steps(self) -> int:
        return max(1, self.n_tokens // self.batch_size)

    def validate(self) -> None:
        arch = architecture(self.arch)
        if self.d_sae < 1:
            raise ValueError("d_sae must be positive")
        if not (0 < self.k <= self.d_sae):
            raise ValueError(f"k must be in (0, d_sae]; got k = {self.k} with d_sae = {self.d_sae}")
        if arch.integer_k and float(self.k) != int(self.k):
            raise ValueError(f"{arch.label} needs an integer k")
        if self.n_tokens < self.batch_size:
            raise ValueError(f"n_tokens ({self.n_tokens}) must be at least one batch ({self.batch_size})")
        for option, choices in OPTION_CHOICES.items():
            if getattr(self, option) not in choices:
                raise ValueError(f"{option} must be one of {', '.join(choices)}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ValueError("lr must be positive")


def build_sae(cfg: TrainConfig, d_in: int, metadata: dict | None = None, device: str = "cpu") -> TrainingSAE:
    common = dict(d_in=d_in, d_sae=cfg.d_sae, decoder_init_norm=1.0, rescale_acts_by_decoder_norm=False,
                  aux_loss_coefficient=cfg.aux_coefficient, device=device)
    arch = architecture(cfg.arch)
    options = {name: getattr(cfg, name) for name in arch.options}
    k = int(cfg.k) if arch.integer_k else float(cfg.k)
    sae = arch.training_cls(arch.config_cls(k=k, **options, **common))
    for key, value in (metadata or {}).items():
        sae.cfg.metadata[key] = value
    return sae


@torch.no_grad()
def geometric_median(x: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of distances (robust centre for b_dec)."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - m).norm(dim=-1).clamp_min(1e-6)
        m = (w[:, None] * x).sum(0) / w.sum()
    return m


@torch.no_grad()
def remove_parallel_gradient(sae: TrainingSAE) -> None:
    if sae.W_dec.grad is None:
        return
    w = sae.W_dec.data / sae.W_dec.data.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    sae.W_dec.grad -= (sae.W_dec.grad * w).sum(-1, keepdim=True) * w


@torch.no_grad()
def normalise_decoder(sae: TrainingSAE) -> None:
    sae.W_dec.data /= sae.W_dec.data.norm(dim=-1, keepdim=True).clamp_min(1e-8)


class TrainingStopped(Exception):
    """A data-parallel run asked to stop: every process left at the same step, the checkpoint saved there."""


class SAETrainer:
    def __init__(self, cfg: TrainConfig, acts: torch.Tensor, out_dir: Path, metadata: dict | None = None,
                 progress: Callable[[float, str], None] | None = None, device: str = "cpu", collective=None,
                 stop_requested: Callable[[], bool] | None = None):
        cfg.validate()
        if acts.ndim != 2:
            raise ValueError(f"activations must be [tokens, d_in], got shape {tuple(acts.shape)}")
        if collective is not None and cfg.batch_size % collective.world:
            raise ValueError(f"batch_size ({cfg.batch_size}) must split evenly over {collective.world} processes")
        self.cfg = cfg
        self.collective = collective
        self.stop_requested = stop_requested  # data-parallel runs: the first process's view, shared at each step
        self.lead = collective is None or collective.rank == 0  # writes the checkpoint, the curves, the progress
        self.acts = acts
        self.device = device
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress or (lambda f, m="": None)
        torch.manual_seed(cfg.seed)
        self.sae = build_sae(cfg, acts.shape[1], metadata, device)
        if hasattr(self.sae, "collective"):
            self.sae.collective = collective
        self.mean = acts[: min(len(acts), 65536)].mean(0).to(device)
        with torch.no_grad():
            self.sae.b_dec.data = geometric_median(acts[: min(len(acts), 8192)].to(device))
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=cfg.lr, eps=6.25e-10)
        self.steps_since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=device)
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0

    # --- checkpoints ---
    def save_checkpoint(self) -> None:
        if not self.lead:
            return
        state = {"sae": self.sae.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                 "steps_since_fired": self.steps_since_fired, "seconds": self.seconds,
                 "rng": torch.get_rng_state()}
        tmp = self.out_dir / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.out_dir / CHECKPOINT)

    def try_resume(self) -> bool:
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle objects
        self.sae.load_state_dict(state["sae"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.steps_since_fired = state["steps_since_fired"].to(self.device)
        self.seconds = float(state["seconds"])
        torch.set_rng_state(state["rng"])
        hist = self.out_dir / HISTORY
        if hist.exists():
            self.history = [json.loads(line) for line in hist.read_text().splitlines() if line.strip()]
            self.history = [h for h in self.history if h["step"] <= self.step]
            if self.lead:
                hist.write_text("".join(json.dumps(h) + "\n" for h in self.history))
        return True

    # --- the loop ---
    def _batch(self, step: int) -> torch.Tensor:
        n = len(self.acts)
        per_epoch = max(1, n // self.cfg.batch_size)
        epoch, i = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        # a fresh permutation per epoch; slicing it is cheap, and step -> batch is deterministic (resume)
        if getattr(self, "_perm_epoch", None) != epoch:
            self._perm = torch.randperm(n, generator=g)
            self._perm_epoch = epoch
        idx = self._perm[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]
        if self.collective is not None:  # this process's equal share of the batch
            share = len(idx) // self.collective.world
            idx = idx[self.collective.rank * share : (self.collective.rank + 1) * share]
        return self.acts[idx].to(self.device, non_blocking=True)

    def _global_metrics(self, x, out, dead) -> dict:
        """The logged numbers of the whole batch (the mean of the processes' equal shares, NMSE from summed parts)."""
        loss, mse = out.loss.detach(), out.losses["mse_loss"].detach()
        aux = out.losses.get("auxiliary_reconstruction_loss", torch.tensor(0.0)).detach()
        err = (out.sae_out - x).pow(2).sum().detach()
        var = (x - self.mean).pow(2).sum()
        l0 = (out.feature_acts != 0).float().sum(-1).mean()
        parts = torch.stack([loss, mse, aux, err, var, l0]).double().cpu()
        if self.collective is not None:
            parts = self.collective.reduce(parts.to(self.device)).cpu()
            parts[[0, 1, 2, 5]] /= self.collective.world
        loss, mse, aux, err, var, l0 = parts.tolist()
        return {"loss": loss, "mse": mse, "aux": aux, "nmse": err / max(var, 1e-12), "l0": l0,
                "dead_fraction": float(dead.float().mean())}

    def train(self) -> list[dict]:
        cfg = self.cfg
        n_steps = cfg.n_steps
        dead_steps = max(1, cfg.dead_tokens // cfg.batch_size)
        self.sae.train()
        hist_fh = open(self.out_dir / HISTORY, "a") if self.lead else None
        try:
            while self.step < n_steps:
                t0 = time.perf_counter()
                x = self._batch(self.step)
                lr_scale = min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * lr_scale
                dead = self.steps_since_fired >= dead_steps
                out = self.sae.training_forward_pass(TrainStepInput(
                    sae_in=x, coefficients={}, dead_neuron_mask=dead, n_training_steps=self.step,
                    is_logging_step=False))
                self.opt.zero_grad(set_to_none=True)
                out.loss.backward()
                if self.collective is not None:  # the combined batch's gradient
                    self.collective.average_gradients(self.sae.parameters())
                remove_parallel_gradient(self.sae)
                torch.nn.utils.clip_grad_norm_(self.sae.parameters(), 1.0)
                self.opt.step()
                normalise_decoder(self.sae)
                with torch.no_grad():
                    fired = (out.feature_acts != 0).any(0)
                    if self.collective is not None:
                        fired = self.collective.reduce(fired.to(torch.uint8), "max").bool()
                    self.steps_since_fired += 1
                    self.steps_since_fired[fired] = 0
                self.step += 1
                self.seconds += time.perf_counter() - t0
                if self.step % cfg.log_every == 0 or self.step == n_steps:
                    rec = {"step": self.step, "tokens": self.step * cfg.batch_size,
                           **self._global_metrics(x, out, dead), "seconds": round(self.seconds, 3)}
                    self.history.append(rec)
                    if hist_fh is not None:
                        hist_fh.write(json.dumps(rec) + "\n")
                        hist_fh.flush()
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.collective is not None and self.stop_requested is not None:
                    asked = torch.tensor([float(self.lead and self.stop_requested())], device=self.device)
                    if float(self.collective.reduce(asked, "max")) > 0:
                        self.save_checkpoint()
                        raise TrainingStopped(f"stopped at step {self.step}")
                try:
                    if self.lead:
                        self.progress(self.step / n_steps, f"step {self.step}/{n_steps}")
                except BaseException:
                    self.save_checkpoint()  # cancelled: keep what we have, so the run can resume
                    raise
        finally:
            if hist_fh is not None:
                hist_fh.close()
        self.save_checkpoint()
        self.sae.eval()
        return self.history

    def dead_mask(self) -> torch.Tensor:
        return self.steps_since_fired >= max(1, self.cfg.dead_tokens // self.cfg.batch_size)

    def calibrate(self, acts: torch.Tensor | None = None, source: str = "training activations") -> dict | None:
        """Feature / Mutual Choice: inference thresholds from the final weights (see the SAE's `calibrate`) on
        `acts` (default: the first CALIBRATION_TOKENS training activations); recorded in cfg.json's metadata."""
        if not hasattr(self.sae, "calibrate"):
            return None  # TopK keeps exactly k per token at inference as in training
        if acts is None:  # a random sample of the whole training set: documents differ in how much fires, and a
            # regular stride would over-sample positions (BOS at every row start) that fire very differently
            g = torch.Generator().manual_seed(self.cfg.seed)
            idx = torch.randperm(len(self.acts), generator=g)[:CALIBRATION_TOKENS].sort().values
            acts = self.acts[idx]
            source = f"{len(idx):,} random tokens of the {len(self.acts):,} training activations"
        self.sae.eval()
        info = {**self.sae.calibrate(acts, self.cfg.batch_size), "on": source}
        self.sae.cfg.metadata["threshold_calibration"] = info
        return info

    def save_inference(self, folder: Path) -> Path:
        """The SAE in SAELens's inference format (Feature / Mutual Choice: calibrated first, if not yet)."""
        if hasattr(self.sae, "calibrate") and "threshold_calibration" not in self.sae.cfg.metadata:
            self.calibrate()
        self.sae.save_inference_model(folder)
        return Path(folder)
