"""Feature Choice and Mutual Choice SAEs as SAELens architectures.

Training classes extend SAELens's `TopKTrainingSAE` (same encoder/decoder, AuxK machinery) and
replace the per-token TopK with the batch-level selections of `sae.selection`. Both depend on the
batch, so each learns a batch-independent inference rule while training, as BatchTopK does:
- Mutual Choice: one global threshold θ, an EMA of the smallest selected positive pre-activation.
- Feature Choice: a threshold θ_f per feature, an EMA of feature f's smallest selected positive
  pre-activation (its cut-off in the batch).
At inference a latent fires when z'_f > θ_f (a JumpReLU), so the saved SAEs are JumpReLU SAEs
registered under their own architecture names ("feature_choice", "mutual_choice") and load with
`sae_lens.SAE.load_from_disk` once this package is imported. In eval mode the training classes
apply the same threshold rule, so held-out metrics measure what inference will do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from sae_lens import register_sae_class, register_sae_training_class
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from typing_extensions import override

from . import selection
from .aux_losses import aux_k_loss, aux_zipf_loss
from .distributed import sharded_feature_choice, sharded_mutual_choice

AUX_LOSSES = ("aux_k", "aux_zipf", "none")
GUESS_MARGIN = 0.8
CAPACITIES = ("uniform", "zipf")


@dataclass
class FeatureChoiceSAEConfig(JumpReLUSAEConfig):
    @override
    @classmethod
    def architecture(cls) -> str:
        return "feature_choice"


class FeatureChoiceSAE(JumpReLUSAE):
    """Inference Feature Choice SAE: a JumpReLU with the per-feature thresholds learned in training."""


@dataclass
class MutualChoiceSAEConfig(JumpReLUSAEConfig):
    @override
    @classmethod
    def architecture(cls) -> str:
        return "mutual_choice"


class MutualChoiceSAE(JumpReLUSAE):
    """Inference Mutual Choice SAE: a JumpReLU whose threshold is the same for every feature."""


@dataclass
class AdaptiveTrainingSAEConfig(TopKTrainingSAEConfig):
    """Shared by Feature and Mutual Choice. k is the *average* number of features per token (budget k·B)."""

    k: float = 32  # type: ignore[assignment]
    aux_loss: str = "aux_k"
    threshold_lr: float = 0.01
    density_ema: float = 0.01
    rescale_acts_by_decoder_norm: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.aux_loss not in AUX_LOSSES:
            raise ValueError(f"aux_loss must be one of {AUX_LOSSES}, got {self.aux_loss!r}")
        selection.check_k(self.k, self.d_sae)


@dataclass
class FeatureChoiceTrainingSAEConfig(AdaptiveTrainingSAEConfig):
    capacity: str = "uniform"
    zipf_exponent: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.capacity not in CAPACITIES:
            raise ValueError(f"capacity must be one of {CAPACITIES}, got {self.capacity!r}")

    @override
    @classmethod
    def architecture(cls) -> str:
        return "feature_choice"


@dataclass
class MutualChoiceTrainingSAEConfig(AdaptiveTrainingSAEConfig):
    @override
    @classmethod
    def architecture(cls) -> str:
        return "mutual_choice"


class _AdaptiveTrainingSAE(TopKTrainingSAE):
    cfg: AdaptiveTrainingSAEConfig  # type: ignore[assignment]
    inference_threshold: torch.Tensor
    feature_density: torch.Tensor

    def __init__(self, cfg: AdaptiveTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)  # type: ignore[arg-type]
        dev = self.W_dec.device
        # float64 like BatchTopK's threshold: EMA updates of small numbers drift in float32
        self.register_buffer("inference_threshold", torch.zeros(cfg.d_sae, dtype=torch.double, device=dev))
        self.register_buffer("feature_density", torch.full((cfg.d_sae,), cfg.k / cfg.d_sae, device=dev))
        self.register_buffer("threshold_updates", torch.zeros(cfg.d_sae, dtype=torch.long, device=dev))
        # Feature Choice's Zipf ranking: an EMA of each feature's mean positive pre-activation, which (unlike
        # its density under the selection) does not follow from the capacities; not saved, rebuilt in a step
        self.register_buffer("activity", torch.zeros(cfg.d_sae, device=dev), persistent=False)
        self._activity_seen = False
        # Data-parallel training (sae.distributed): the processes this batch is split over; the selection, the
        # capacities and the statistics are then those of the combined batch. None: one process.
        self.collective = None

    def batch_tokens(self, local_tokens: int) -> int:
        """Tokens in the whole batch: this process's share times the processes."""
        return local_tokens * (self.collective.world if self.collective is not None else 1)

    def _threshold_rate(self, updates: torch.Tensor) -> torch.Tensor:
        """A running mean for the first 1/lr updates, then an EMA with rate lr: no bias towards the
        zero start (BatchTopK's plain EMA needs many hundred steps to forget it)."""
        return torch.maximum(torch.full_like(updates, self.cfg.threshold_lr, dtype=torch.double),
                             1.0 / (updates.double() + 1))

    # --- selection ---
    def select(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        """The batch-level selection; also leaves (fires per feature, smallest selected values) in
        self._stats for the threshold and density updates, computed from the selection alone."""
        raise NotImplementedError

    @override
    def get_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda z: self._activate(z)

    def _activate(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        shape = hidden_pre.shape
        z = hidden_pre.reshape(-1, shape[-1])
        if self.training:
            acts = self.select(z)
        else:  # the batch-independent inference rule
            acts = z.relu() * (z > self.inference_threshold.to(z.dtype))
        return acts.reshape(shape)

    # --- inference thresholds, set from the final weights ---
    @torch.no_grad()
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_hidden_pre(x.to(self.W_dec.device, self.W_dec.dtype))[1]

    def fires_per_token(self, batch_size: int) -> torch.Tensor:
        """How many of every `batch_size` tokens each feature selects on average during training [F]."""
        raise NotImplementedError

    @torch.no_grad()
    def calibrate(self, acts: torch.Tensor, batch_size: int, chunk: int = 4096) -> dict:
        """Set the inference thresholds from the final weights so that, on `acts`, the batch-independent rule
        fires as often as the training selection did: Mutual Choice (one threshold) k features per token
        on average, Feature Choice (one threshold per feature) each feature on its capacity m of every
        `batch_size` tokens. The running averages kept during training lag the weights (they average
        cut-offs of earlier weights) and left the saved SAEs at about half their trained L0."""
        raise NotImplementedError

    @staticmethod
    def _between(values: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """Per column of `values` (sorted descending), a threshold with exactly `count` values above it:
        halfway between the count-th and the next largest value; never below 0 (ReLU)."""
        n = values.shape[0]
        idx = count.clamp(1, n).long()
        upper = values.gather(0, (idx - 1)[None])[0]
        lower = torch.where(idx < n, values.gather(0, idx.clamp(max=n - 1)[None])[0], torch.zeros_like(upper))
        theta = ((upper + lower) / 2).clamp_min(0)
        return torch.where(count > 0, theta, torch.full_like(theta, torch.inf))

    # --- training state ---
    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        out = super().training_forward_pass(step_input)
        with torch.no_grad():
            counts, smallest = self._stats
            n_tokens = self.batch_tokens(out.feature_acts.reshape(-1, self.cfg.d_sae).shape[0])
            self.update_thresholds(smallest)
            rho = self.cfg.density_ema
            self.feature_density.mul_(1 - rho).add_(rho * counts.float() / n_tokens)
        out.metrics["mean_threshold"] = self.inference_threshold.mean()
        return out

    def update_thresholds(self, smallest: torch.Tensor) -> None:
        raise NotImplementedError

    @override
    def calculate_aux_loss(self, step_input, feature_acts, hidden_pre, sae_out) -> dict[str, torch.Tensor]:
        x, mask = step_input.sae_in, step_input.dead_neuron_mask
        if self.cfg.aux_loss == "aux_k":
            loss = aux_k_loss(x, sae_out, hidden_pre, self.W_dec, mask, self.cfg.aux_loss_coefficient)
        elif self.cfg.aux_loss == "aux_zipf":
            loss = aux_zipf_loss(x, sae_out, hidden_pre, self.W_dec, self.feature_density, mask,
                                 self.cfg.aux_loss_coefficient)
        else:
            loss = sae_out.new_tensor(0.0)
        return {"auxiliary_reconstruction_loss": loss}

    @override
    def process_state_dict_for_saving_inference(self, state_dict: dict[str, Any]) -> None:
        super().process_state_dict_for_saving_inference(state_dict)
        state_dict["threshold"] = state_dict.pop("inference_threshold").to(self.W_dec.dtype)
        state_dict.pop("feature_density", None)
        state_dict.pop("threshold_updates", None)


class FeatureChoiceTrainingSAE(_AdaptiveTrainingSAE):
    cfg: FeatureChoiceTrainingSAEConfig  # type: ignore[assignment]

    def fires_per_token(self, batch_size: int) -> torch.Tensor:
        return self.capacities(batch_size).double().cpu() / batch_size

    @override
    @torch.no_grad()
    def calibrate(self, acts: torch.Tensor, batch_size: int, chunk: int = 4096) -> dict:
        n = len(acts)
        count = (self.fires_per_token(batch_size) * n).round().long().to(self.W_dec.device)  # [F]
        keep = int(min(int(count.max()) + 1, n))
        top = torch.empty(0, self.cfg.d_sae, device=self.W_dec.device)
        for i in range(0, n, chunk):  # each feature's top `keep` pre-activations over the tokens so far
            z = self.pre_activations(acts[i : i + chunk])
            both = torch.cat([top, z])
            top = both.topk(min(keep, len(both)), dim=0).values
        theta = self._between(top, count)
        self.inference_threshold.copy_(theta.double())
        return {"rule": "one threshold per feature: feature f fires on capacity_f / batch_size of N calibration "
                        "tokens", "tokens": n, "batch_size": batch_size,
                "threshold_mean": float(theta[torch.isfinite(theta)].mean())}

    def capacities(self, n_tokens: int) -> torch.Tensor:
        if self.cfg.capacity == "zipf":
            return selection.zipf_capacities(self.cfg.k, n_tokens, self.activity, self.cfg.zipf_exponent)
        return selection.uniform_capacities(self.cfg.k, n_tokens, self.cfg.d_sae, device=self.W_dec.device)

    @torch.no_grad()
    def observe_activity(self, hidden_pre: torch.Tensor) -> None:
        mass = hidden_pre.relu().mean(0).to(self.activity.dtype)
        if self.collective is not None:  # the combined batch's mean (equal shares)
            mass = self.collective.reduce(mass) / self.collective.world
        rho = 1.0 if not self._activity_seen else self.cfg.density_ema
        self.activity.mul_(1 - rho).add_(rho * mass)
        self._activity_seen = True

    @override
    def select(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        if self.cfg.capacity == "zipf":
            self.observe_activity(hidden_pre)
        capacities = self.capacities(self.batch_tokens(hidden_pre.shape[0]))
        if self.collective is not None:
            acts, counts, smallest = sharded_feature_choice(hidden_pre, capacities, self.collective)
        else:
            acts, counts, smallest = selection.feature_choice(hidden_pre, capacities, return_stats=True)
        self._stats = (counts, smallest)
        return acts

    @override
    def update_thresholds(self, smallest: torch.Tensor) -> None:
        """θ_f: running average of the smallest value feature f selected (its cut-off in the batch)."""
        seen = torch.isfinite(smallest)
        rate = self._threshold_rate(self.threshold_updates)
        new = (1 - rate) * self.inference_threshold + rate * torch.where(seen, smallest, 0).double()
        self.inference_threshold.copy_(torch.where(seen, new, self.inference_threshold))
        self.threshold_updates += seen.long()


class MutualChoiceTrainingSAE(_AdaptiveTrainingSAE):
    cfg: MutualChoiceTrainingSAEConfig  # type: ignore[assignment]

    def fires_per_token(self, batch_size: int) -> torch.Tensor:
        return torch.full((self.cfg.d_sae,), float(self.cfg.k) / self.cfg.d_sae)

    @override
    @torch.no_grad()
    def calibrate(self, acts: torch.Tensor, batch_size: int, chunk: int = 4096) -> dict:
        n = len(acts)
        budget = int(round(float(self.cfg.k) * n))  # the top k·N pre-activations of the whole N x F matrix
        top = torch.empty(0, device=self.W_dec.device)
        for i in range(0, n, chunk):
            z = self.pre_activations(acts[i : i + chunk]).reshape(-1)
            top = torch.cat([top, z]).topk(min(budget + 1, len(top) + len(z))).values
        theta = self._between(top[:, None], torch.tensor([budget], device=top.device))[0]
        self.inference_threshold.fill_(float(theta))
        return {"rule": "global threshold: the k·N-th largest pre-activation of N calibration tokens",
                "tokens": n, "threshold": float(theta)}

    @override
    def select(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        # the running threshold, a little lowered, is a guess of the cut-off that makes the exact
        # selection cheap (see selection.mutual_choice_guided); the result equals mutual_choice's
        budget = selection.budget_for(self.cfg.k, self.batch_tokens(hidden_pre.shape[0]))
        guess = float(self.inference_threshold[0]) * GUESS_MARGIN if int(self.threshold_updates[0]) > 0 else None
        if self.collective is not None:
            acts, counts, smallest = sharded_mutual_choice(hidden_pre, budget, self.collective, guess)
        else:
            acts, counts, smallest = selection.mutual_choice_guided(hidden_pre, budget, guess, return_stats=True)
        self._stats = (counts, smallest)
        return acts

    @override
    def update_thresholds(self, smallest: torch.Tensor) -> None:
        """θ: running average of the smallest selected value, one threshold shared by all features."""
        if torch.isfinite(smallest):
            rate = self._threshold_rate(self.threshold_updates[:1])
            self.inference_threshold.mul_(1 - rate).add_(rate * smallest.double())
            self.threshold_updates += 1


def _register() -> None:
    for name, cls, cfg in (("feature_choice", FeatureChoiceSAE, FeatureChoiceSAEConfig),
                           ("mutual_choice", MutualChoiceSAE, MutualChoiceSAEConfig)):
        if name not in SAE_CLASS_REGISTRY:
            register_sae_class(name, cls, cfg)
    for name, cls, cfg in (("feature_choice", FeatureChoiceTrainingSAE, FeatureChoiceTrainingSAEConfig),
                           ("mutual_choice", MutualChoiceTrainingSAE, MutualChoiceTrainingSAEConfig)):
        if name not in SAE_TRAINING_CLASS_REGISTRY:
            register_sae_training_class(name, cls, cfg)


_register()
