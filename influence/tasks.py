"""kronfluence Tasks: the training loss (summed, with labels sampled from the model for the true Fisher) and
the measurement f whose influence is asked for.

Sign convention (kronfluence, Grosse et al. Eq. 5 without the minus sign): score = ∇f ᵀ (G + λI)⁻¹ ∇L(z_m).
With f = the query's loss, a positive score means upweighting z_m lowers that loss: the example *helped*.
So every measurement here is written as something to lower: −log p(completion | prompt), the cross-entropy
of an image's label, or −activation for a feature (positive = the example made the feature fire more).
"""
from __future__ import annotations

import re

import torch
from torch import nn
from kronfluence.task import Task

from .fisher import FISHER_U, sample_labels

IGNORE = -100


class CausalLMTask(Task):
    """Batches are {"input_ids": [B, T], "labels": [B, T]}; labels are the tokens to predict at each position
    (already shifted: labels[t] is predicted from input_ids[:t+1]), IGNORE where nothing is scored."""

    def __init__(self, modules: list[str], feature=None):
        self.modules = modules
        self.feature = feature  # None, or a measurement f(model, batch) to raise (influence.measurements)

    def _logits(self, model, batch):
        return model(input_ids=batch["input_ids"]).logits

    def compute_train_loss(self, batch, model, sample: bool = False) -> torch.Tensor:
        logits = self._logits(model, batch)
        labels = batch["labels"]
        if sample:  # the true Fisher: labels drawn from the model (per example: influence.fisher)
            labels = torch.where(labels == IGNORE, labels, sample_labels(logits, batch.get(FISHER_U)))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                           ignore_index=IGNORE, reduction="sum")

    def compute_measurement(self, batch, model) -> torch.Tensor:
        if self.feature is not None:
            return -self.feature(model, batch)
        return self.compute_train_loss(batch, model, sample=False)  # −log p(completion | prompt), summed

    def get_influence_tracked_modules(self):
        return self.modules

    def get_attention_mask(self, batch):
        return None  # training sequences are cut to one length: no padding


class ClassifierTask(Task):
    """Batches are (images, labels); the measurement is the cross-entropy of the query's label."""

    def __init__(self, modules: list[str] | None = None):
        self.modules = modules

    def compute_train_loss(self, batch, model, sample: bool = False) -> torch.Tensor:
        x, y, *drawn = batch  # (x, y) or, for fitting factors, (x, y, u): influence.fisher
        logits = model(x)
        if sample:
            y = sample_labels(logits, drawn[0] if drawn else None)
        return nn.functional.cross_entropy(logits, y, reduction="sum")

    def compute_measurement(self, batch, model) -> torch.Tensor:
        x, y, *_ = batch
        return nn.functional.cross_entropy(model(x), y, reduction="sum")

    def get_influence_tracked_modules(self):
        return self.modules


MODULE_SETS = ("mlp", "mlp+attn")
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


def display_name(name: str) -> str:
    """gpt_neox.layers.0._original_component.mlp._original_component.dense_h_to_4h._original_component ->
    gpt_neox.layers.0.mlp.dense_h_to_4h (the bridge wraps each HF module in a component of its own)."""
    return name.replace("._original_component", "").replace("_original_component.", "")


def layer_of(name: str) -> int | None:
    m = _LAYER.search(display_name(name))
    return int(m.group(1)) if m else None


def block_of(name: str) -> str:
    """'mlp', 'attention' or 'other' from a module's name."""
    short = display_name(name).lower()
    if re.search(r"(^|\.)(mlp|ffn|feed_forward|fc\d?)(\.|$)", short):
        return "mlp"
    if re.search(r"(^|\.)(attention|attn|self_attn)(\.|$)", short):
        return "attention"
    return "other"


def lm_modules(hf_model: nn.Module, which: str) -> list[str]:
    """The nn.Linear modules of the transformer blocks that a forward pass calls: MLP only (Grosse et al.) or
    MLP and attention projections (Quad). Embeddings and the unembedding are left out, as in both papers."""
    from compute.errors import BadInput

    if which not in MODULE_SETS:
        raise BadInput(f"modules must be one of {', '.join(MODULE_SETS)}, not '{which}'")
    called: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: called.append(n))
             for n, m in hf_model.named_modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            hf_model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=next(hf_model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    keep = {"mlp"} if which == "mlp" else {"mlp", "attention"}
    chosen = [n for n in dict.fromkeys(called) if layer_of(n) is not None and block_of(n) in keep]
    if not chosen:
        blocks = sorted({display_name(n) for n, m in hf_model.named_modules() if len(list(m.children())) == 0
                         and layer_of(n) is not None})[:12]
        raise BadInput("the influence engine tracks nn.Linear and nn.Conv2d layers only, and this model's "
                       f"{which} blocks call none (its block layers: {', '.join(blocks) or 'none found'}); "
                       "GPT-2-style Conv1D projections would need converting first")
    return chosen
