"""What the interaction bases are built on and measured with, per task (compute/tasks/): the inputs of the
train split (the Gram, M and C, as rib builds them), those of the test split (the ablations), and the
measurement of the output: accuracy for modular addition and the digits, the next-token loss for a language
model (N corpus rows of the zoo corpus, the held-out rows for the ablations)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from compute.errors import BadInput


@dataclass
class InteractionData:
    train: torch.Tensor  # model inputs
    test: torch.Tensor
    measure: Callable[[torch.Tensor], float]  # the output node layer's activations on `test` -> a number
    metric: str  # "accuracy" (higher is better) or "loss"
    grid: np.ndarray | None = None  # modular addition: the (a, b) pair of each row of `everything`
    everything: torch.Tensor | None = None  # modular addition: all p² inputs, a-major (for Fourier labels)
    p: int | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


def _accuracy(labels: torch.Tensor) -> Callable[[torch.Tensor], float]:
    def measure(logits: torch.Tensor) -> float:  # rib's: the argmax over every logit at the last position
        return float((logits[:, -1].argmax(-1).cpu() == labels).double().mean())
    return measure


def _next_token_loss(ids: torch.Tensor) -> Callable[[torch.Tensor], float]:
    def measure(logits: torch.Tensor) -> float:
        return float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                       ids[:, 1:].reshape(-1).to(logits.device)))
    return measure


def interaction_data(lm, spec) -> InteractionData:
    from compute.tasks import task_for
    from compute.tasks.digits import Digits
    from compute.tasks.language_modeling import LanguageModelling
    from compute.tasks.modular_addition import ModularAddition

    task = task_for(lm)
    if isinstance(task, ModularAddition):
        train, test = task.data(lm, "train"), task.data(lm, "test")
        p = task.p
        grid = np.array([(a, b) for a in range(p) for b in range(p)])
        return InteractionData(train["input_ids"], test["input_ids"], _accuracy(test["labels"]), "accuracy",
                               grid, task.batch(grid, lm.tokenizer)["input_ids"], p)
    if isinstance(task, Digits):
        (x_train, _), (x_test, y_test) = task.data(lm, "train"), task.data(lm, "test")
        return InteractionData(x_train, x_test, _accuracy(y_test), "accuracy")
    if isinstance(task, LanguageModelling):
        if spec.last_pos_from:
            raise BadInput("a language model is measured by its next-token loss at every position: leave "
                           "'only the last position from' empty")
        if lm.tokenizer is None:
            raise BadInput(f"{lm.id} has no tokenizer, so the corpus cannot be read for it")
        train = task.data(lm, "train", spec.sequences, spec.seq_len)
        test = task.data(lm, "test", spec.sequences, spec.seq_len)
        return InteractionData(train, test, _next_token_loss(test), "loss")
    raise BadInput(f"interaction bases need a task with a measurement (modular addition, the digits, language "
                   f"modelling); {lm.id} has {task.name}")
