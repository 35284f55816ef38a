"""scikit-learn's 8×8 digits: images scaled to [0, 1] with one channel, split once into train and test
(task.json: split_seed, test_fraction; stratified). Trained with the cross-entropy over the 10 classes
(assets/scripts/train_digits.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import Progress, Task, TaskReport, register_task


@register_task
class Digits(Task):
    name = "sklearn_digits"

    def split_arrays(self):
        """(x_train, x_test, y_train, y_test) as numpy arrays; x is [n, 1, 8, 8] float32."""
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[:, None]
        return train_test_split(x, d.target, test_size=self.config["test_fraction"],
                                random_state=int(self.config["split_seed"]), stratify=d.target)

    def data(self, lm, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x_tr, x_te, y_tr, y_te = self.split_arrays()
        x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
        x, y = (x[:n], y[:n]) if n else (x, y)
        return torch.from_numpy(x), torch.from_numpy(y).long()

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        logits = model(x.to(next(model.parameters()).device))
        return torch.nn.functional.cross_entropy(logits, y.to(logits.device))

    def evaluate(self, lm, progress: Progress, **_) -> TaskReport:
        x_test, y_test = self.data(lm, "test")
        with torch.no_grad():
            pred = lm.model(x_test.to(lm.device)).argmax(-1).cpu().numpy()
        y_test = y_test.numpy()
        acc = float((pred == y_test).mean())
        cm = pd.crosstab(pd.Series(y_test, name="true"), pd.Series(pred, name="predicted")).reindex(
            index=range(10), columns=range(10), fill_value=0)
        table = cm.reset_index().melt(id_vars="true", var_name="predicted", value_name="count")
        summary = {"task": self.name, "test_accuracy": acc, "n_test": int(len(y_test))}
        return TaskReport(summary, {"confusion": table})
