"""The induction test (Olsson et al. 2022): sequences of uniformly random tokens repeated twice. A model with
induction heads predicts the second copy far better than the first.

Per-head induction score = mean attention from each token of the second copy to the token that followed its
previous occurrence (TransformerLens's definition, offset seq_len - 1). Per-head previous-token score = mean
attention from each token to the one just before it: an induction head reads what a previous-token head in
an earlier layer wrote, so a model without one cannot have induction heads.
"""
from __future__ import annotations

import numpy as np
import torch

from .next_token import next_token_loss


def repeated_random_tokens(n_seq: int, half: int, vocab: int, exclude: set[int], seed: int,
                           bos: int | None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([i for i in range(vocab) if i not in exclude])
    rnd = allowed[torch.randint(0, len(allowed), (n_seq, half), generator=g)]
    parts = ([torch.full((n_seq, 1), bos)] if bos is not None else []) + [rnd, rnd]
    return torch.cat(parts, dim=1)


def head_scores(patterns: list[torch.Tensor], offset: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """(induction, previous-token) score per layer and head from attention patterns [batch, head, query, key]
    of `offset` leading tokens followed by two copies of `half` random tokens. Induction: attention from each
    second-copy token to the token after its first occurrence. Previous token: attention from every token
    after the first random one to the token just before it."""
    induction = np.zeros((len(patterns), patterns[0].shape[1]))
    previous = np.zeros_like(induction)
    q = torch.arange(offset + half, offset + 2 * half)
    qp = torch.arange(offset + 1, offset + 2 * half)
    for l, pat in enumerate(patterns):
        pat = pat.float()
        induction[l] = pat[:, :, q, q - half + 1].mean(dim=(0, 2)).cpu().numpy()
        previous[l] = pat[:, :, qp, qp - 1].mean(dim=(0, 2)).cpu().numpy()
    return induction, previous


def induction_test(lm, n_seq: int, half: int, seed: int) -> dict:
    bridge, tok = lm.model, lm.tokenizer
    offset = 1 if tok.bos_token_id is not None else 0
    half = min(half, (lm.n_ctx - offset) // 2)
    x = repeated_random_tokens(n_seq, half, bridge.cfg.d_vocab, set(tok.all_special_ids), seed,
                               tok.bos_token_id).to(lm.device)
    names = {f"blocks.{l}.attn.hook_pattern" for l in range(bridge.cfg.n_layers)}
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(x, names_filter=lambda n: n in names)
        per_tok = next_token_loss(logits, x, reduction="none").cpu()
    # per_tok[:, j] is the loss of predicting position j+1. First copy: positions offset+1 .. offset+half-1
    # (its first token has no context); second copy: positions offset+half+1 .. offset+2*half-1
    # (the second copy's first token follows the first copy's last one, which is random too).
    first = per_tok[:, offset : offset + half - 1]
    second = per_tok[:, offset + half : offset + 2 * half - 1]
    patterns = [cache[f"blocks.{l}.attn.hook_pattern"] for l in range(bridge.cfg.n_layers)]
    scores, previous = head_scores(patterns, offset, half)
    return {"half": half, "per_position_loss": per_tok.mean(0).numpy(), "first": float(first.mean()),
            "second": float(second.mean()), "scores": scores, "previous": previous, "offset": offset}
