"""Modular addition: the prompt "a b =" and the answer (a + b) mod p, over all p² pairs split once into train
and test pairs by a seeded permutation (task.json: p, split_seed, train_fraction). The model is trained with
the cross-entropy over the p number tokens at the last position (assets/scripts/train_modadd.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import Progress, Task, TaskReport, register_task


@register_task
class ModularAddition(Task):
    name = "modular_addition"

    @property
    def p(self) -> int:
        return int(self.config["p"])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(train pairs, test pairs) of the split recorded in task.json: the zoo's seeded numpy permutation,
        or ("split": "torch_random_split") torch.utils.data.random_split of the a-major pairs with
        int(train_fraction · p²) training pairs, as rib and many grokking scripts split."""
        p = self.p
        pairs = np.array([(a, b) for a in range(p) for b in range(p)])
        if self.config.get("split") == "torch_random_split":
            n_train = int(float(self.config["train_fraction"]) * len(pairs))
            train, test = torch.utils.data.random_split(
                range(len(pairs)), [n_train, len(pairs) - n_train],
                generator=torch.Generator().manual_seed(int(self.config["split_seed"])))
            return pairs[np.asarray(train.indices)], pairs[np.asarray(test.indices)]
        perm = np.random.default_rng(int(self.config["split_seed"])).permutation(len(pairs))
        n_train = int(round(self.config["train_fraction"] * len(pairs)))
        return pairs[perm[:n_train]], pairs[perm[n_train:]]

    def token_ids(self, tokenizer=None) -> tuple[list[int], int]:
        """(the ids of the number tokens 0..p-1, the id of "="); without a tokenizer, the zoo's: i and p."""
        if tokenizer is None:
            return list(range(self.p)), self.p
        return tokenizer.convert_tokens_to_ids([str(i) for i in range(self.p)]), tokenizer.convert_tokens_to_ids("=")

    def batch(self, pairs: np.ndarray, tokenizer=None) -> dict:
        numbers, eq = self.token_ids(tokenizer)
        x = torch.tensor([[numbers[a], numbers[b], eq] for a, b in pairs], dtype=torch.long)
        return {"input_ids": x, "labels": torch.tensor((pairs[:, 0] + pairs[:, 1]) % self.p),
                "number_ids": torch.tensor(numbers)}

    def data(self, lm, split: str, n: int | None = None) -> dict:
        pairs = self.pairs()[0 if split == "train" else 1]
        return self.batch(pairs[:n] if n else pairs, lm.tokenizer if lm is not None else None)

    def number_logits(self, model, batch: dict) -> torch.Tensor:
        x = batch["input_ids"].to(next(model.parameters()).device)
        logits = model(x)
        logits = getattr(logits, "logits", logits)  # a Hugging Face model's output, or a TransformerLens tensor
        return logits[:, -1][:, batch["number_ids"].to(x.device)].float()

    def loss(self, model, batch: dict) -> torch.Tensor:
        logits = self.number_logits(model, batch)
        return torch.nn.functional.cross_entropy(logits, batch["labels"].to(logits.device))

    @torch.no_grad()
    def accuracy(self, model, batch: dict, chunk: int = 4096) -> tuple[float, float]:
        """(accuracy, loss) over the batch."""
        n, correct, total = len(batch["labels"]), 0, 0.0
        for i in range(0, n, chunk):
            part = {k: (v[i : i + chunk] if k != "number_ids" else v) for k, v in batch.items()}
            logits = self.number_logits(model, part)
            y = part["labels"].to(logits.device)
            correct += int((logits.argmax(-1) == y).sum())
            total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        return correct / n, total / n

    def evaluate(self, lm, progress: Progress, **_) -> TaskReport:
        rows = []
        for split in ("train", "test"):
            batch = self.data(lm, split)
            acc, loss = self.accuracy(lm.model, batch)
            rows.append({"split": split, "n": len(batch["labels"]), "accuracy": acc, "loss": loss})
        df = pd.DataFrame(rows)
        test, train = df[df.split == "test"].iloc[0], df[df.split == "train"].iloc[0]
        summary = {"task": self.name, "p": self.p, "test_accuracy": float(test.accuracy),
                   "train_accuracy": float(train.accuracy), "test_loss": float(test.loss)}
        return TaskReport(summary, {"accuracy": df})
