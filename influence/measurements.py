"""Measurements beyond the completion's log-probability: an SAE feature's activation at a prompt position.

The registry's language models are TransformerLens bridges around the Hugging Face model, and the bridge's hook
points fire when the HF model itself runs (checked in tests/influence/test_feature_influence.py against
`run_with_cache`). So the measurement reads the SAE's hook while kronfluence runs the tracked HF model, and the
gradient of the feature's activation flows back through every tracked layer before the hook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compute.errors import BadInput
from compute.hooks import merge_heads


@dataclass
class FeatureActivation:
    """f(batch) = the SAE feature's activation at `position` of the query's tokens, summed over the batch.
    The SAE encodes every position of the prompt, as the SAE browser's prompt view does."""
    hook_point: torch.nn.Module
    sae: object
    feature: int
    position: int

    def activations(self, model, batch) -> torch.Tensor:
        """[batch, pos, d_sae] feature activations of the query tokens (differentiable in the model)."""
        z, _ = self._run(model, batch)
        return z

    def _run(self, model, batch):
        seen: list[torch.Tensor] = []
        handle = self.hook_point.register_forward_hook(lambda mod, inp, out: seen.append(out))
        try:
            logits = model(input_ids=batch["input_ids"]).logits
        finally:
            handle.remove()
        if not seen:
            raise RuntimeError("the SAE's hook point did not fire during the forward pass")
        x = merge_heads(seen[0])
        if x.shape[-1] != self.sae.cfg.d_in:
            raise BadInput(f"the SAE reads {self.sae.cfg.d_in}-dimensional activations but its hook gives "
                           f"{x.shape[-1]}: it belongs to another model")
        return self.sae.encode(x.to(self.sae.W_enc.dtype)), logits

    def __call__(self, model, batch) -> torch.Tensor:
        z, logits = self._run(model, batch)
        # + 0·logits: the layers after the hook get an exact zero gradient instead of none (kronfluence needs a
        # gradient at every tracked layer; they cannot move the feature, and their scores come out 0)
        return z[:, self.position, self.feature].sum() + 0.0 * logits.sum()
