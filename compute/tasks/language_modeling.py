"""Language modelling: next-token prediction on the zoo corpus (`zoo-stdlib`, held out: `zoo-stdlib-heldout`),
rows of `seq_len` tokens starting with BOS (compute/datasets.py); its loss is the next-token loss
(compute/tasks/next_token.py)."""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import token_rows
from .base import Progress, Task, TaskReport, register_task
from .next_token import mean_next_token_loss, next_token_loss  # noqa: F401  (next_token_loss: re-exported)

DATASETS = {"train": "zoo-stdlib", "test": "zoo-stdlib-heldout"}


@register_task
class LanguageModelling(Task):
    name = "language_modeling"

    def data(self, lm, split: str, n: int | None = None, seq_len: int = 128) -> torch.Tensor:
        """Rows of seq_len tokens (n rows; default 64)."""
        tok = lm.tokenizer
        seq_len = min(seq_len, lm.n_ctx or seq_len)
        return token_rows(tok, DATASETS[split], seq_len, n or 64, tok.bos_token_id)

    def loss(self, model, batch: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model(batch), batch)

    def held_out_loss(self, lm, n_tokens: int, seq_len: int = 128) -> float | None:
        if n_tokens <= 0:
            return None
        seq_len = min(seq_len, lm.n_ctx)
        return mean_next_token_loss(lm.model, self.data(lm, "test", max(1, n_tokens // seq_len), seq_len), batch=16)

    def evaluate(self, lm, progress: Progress, n_sequences: int = 32, repeat_len: int = 64, eval_tokens: int = 16384,
                 seed: int = 0, **_) -> TaskReport:
        """The induction test (compute/tasks/induction.py) and the loss on held-out text."""
        import pandas as pd

        from .induction import induction_test

        progress(0.1, "induction test")
        ind = induction_test(lm, n_sequences, repeat_len, seed)
        progress(0.5, "held-out loss")
        hol = self.held_out_loss(lm, eval_tokens)
        L, H = ind["scores"].shape
        heads = pd.DataFrame([{"layer": l, "head": h, "head_name": f"L{l}H{h}",
                               "induction_score": float(ind["scores"][l, h]),
                               "previous_token_score": float(ind["previous"][l, h])}
                              for l in range(L) for h in range(H)])
        best = heads.sort_values("induction_score", ascending=False).iloc[0]
        best_prev = heads.sort_values("previous_token_score", ascending=False).iloc[0]
        pos = pd.DataFrame({"position": np.arange(1, len(ind["per_position_loss"]) + 1),
                            "loss": ind["per_position_loss"]})
        pos["copy"] = np.where(pos.position <= ind["offset"] + ind["half"], "first", "second")
        summary = {"task": self.name, "repeat_first_loss": ind["first"], "repeat_second_loss": ind["second"],
                   "induction_loss_drop": ind["first"] - ind["second"], "repeat_len": ind["half"],
                   "top_induction_head": best["head_name"],
                   "top_induction_score": float(best["induction_score"]),
                   "top_previous_token_head": best_prev["head_name"],
                   "top_previous_token_score": float(best_prev["previous_token_score"]),
                   "heads_above_0.3": int((heads.induction_score > 0.3).sum()), "held_out_loss": hol,
                   "uniform_loss": float(np.log(lm.model.cfg.d_vocab))}
        return TaskReport(summary, {"induction_heads": heads, "repeat_loss_by_position": pos})
