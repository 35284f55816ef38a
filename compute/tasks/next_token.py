"""The next-token loss, defined once: language modelling's training loss, and what SAE evaluation, the SAE
error analysis and the induction test measure."""
from __future__ import annotations

import torch


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of predicting tokens[:, 1:] from logits[:, :-1] ([batch, pos, vocab]); reduction "none"
    gives [batch, pos - 1]."""
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(),
                                             reduction="none" if reduction == "none" else reduction)
    return loss.view(tokens.shape[0], -1) if reduction == "none" else loss


@torch.no_grad()
def mean_next_token_loss(model, tokens: torch.Tensor, fwd_hooks=None, batch: int = 8) -> float:
    """Mean next-token loss per predicted token over rows of tokens, optionally with hooks (a spliced SAE…)."""
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for i in range(0, len(tokens), batch):
        t = tokens[i : i + batch].to(device)
        logits = model.run_with_hooks(t, fwd_hooks=list(fwd_hooks)) if fwd_hooks else model(t)
        total += next_token_loss(logits, t, reduction="sum").item()
        n += t[:, 1:].numel()
    return total / max(n, 1)
