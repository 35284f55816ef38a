"""What every task provides (the shape kronfluence's Task has: a training loss and a measurement on a batch,
plus the data they are computed on and an evaluation for people)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import pandas as pd
import torch

Progress = Callable[[float, str], None]
TASKS: dict[str, type["Task"]] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    TASKS[cls.name] = cls
    return cls


@dataclass
class TaskReport:
    """An evaluation: headline numbers and the tables behind them (analyses/model_check.py draws them)."""
    summary: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


class Task:
    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, config: dict | None = None):
        self.config = dict(config or {})

    def data(self, lm, split: str, n: int | None = None) -> Any:
        """A batch of the split (all of it, or its first n examples), ready for `loss` on lm's model."""
        raise NotImplementedError

    def loss(self, model, batch) -> torch.Tensor:
        """The training loss on a batch: a scalar mean, differentiable in the model's parameters."""
        raise NotImplementedError

    def measurement(self, model, batch) -> torch.Tensor:
        """What a query about a batch measures (influence functions' f): by default the loss itself."""
        return self.loss(model, batch)

    def evaluate(self, lm, progress: Progress, **options) -> TaskReport:
        """Quality figures of a trained model on this task."""
        raise NotImplementedError
