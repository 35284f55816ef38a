"""The SAE architectures the workbench trains, each entry carrying what the trainer, the page and the CLI
need: its label, its SAELens training class and config dataclass, the training options it reads, and its
selection cost. Callers look an architecture up here instead of branching on its name (SAELens's
registry idea)."""
from __future__ import annotations

from dataclasses import dataclass

from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

from .architectures import (AUX_LOSSES, CAPACITIES, FeatureChoiceTrainingSAE, FeatureChoiceTrainingSAEConfig,
                            MutualChoiceTrainingSAE, MutualChoiceTrainingSAEConfig)


@dataclass(frozen=True)
class Architecture:
    name: str
    label: str
    training_cls: type
    config_cls: type  # the SAELens config dataclass the training class takes
    options: tuple[str, ...]  # the TrainConfig fields (beyond k) its config reads
    integer_k: bool  # k features per token exactly (TopK) or on average over a batch (FC, MC)
    cost: str  # what its selection costs per batch of B tokens x F features


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("topk", "TopK", TopKTrainingSAE, TopKTrainingSAEConfig, (), True,
                 "top-k of each token's F pre-activations"),
    Architecture("feature_choice", "Feature Choice", FeatureChoiceTrainingSAE, FeatureChoiceTrainingSAEConfig,
                 ("aux_loss", "capacity", "zipf_exponent"), False, "top-m of each feature's B pre-activations"),
    Architecture("mutual_choice", "Mutual Choice", MutualChoiceTrainingSAE, MutualChoiceTrainingSAEConfig,
                 ("aux_loss",), False, "top-kB entries of the whole B x F matrix"),
)}
# The choices of the options above (TopK uses SAELens's own aux_k).
OPTION_CHOICES: dict[str, tuple[str, ...]] = {"aux_loss": AUX_LOSSES, "capacity": CAPACITIES}


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{name}'; use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def label(name: str) -> str:
    return ARCHITECTURES[name].label if name in ARCHITECTURES else name
