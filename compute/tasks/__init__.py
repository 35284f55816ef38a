"""Tasks: what a model was trained to do, one module each: its data and splits, its training loss, its
measurement and its evaluation (the quality check). The algorithms that need a model's loss (influence
functions, LIB's ablation curves, the quality check in analyses/model_check.py) ask the task for it
instead of knowing the model (kronfluence's Task idea).

A model folder's `task.json` names its task (`{"task": "modular_addition", "p": 113, ...}`); a language
model without one has the language-modelling task.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInput
from .base import Task, TaskReport, register_task, TASKS
from . import digits, language_modeling, modular_addition  # noqa: F401  (each registers its task)

__all__ = ["TASKS", "Task", "TaskReport", "register_task", "task_config", "task_for"]


def task_config(info) -> dict:
    """The task.json of a model's folder; {"task": "language_modeling"} for a language model without one."""
    path = Path(info.path) / "task.json" if info.path else None
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadInput(f"{path} is not valid JSON: {e}") from None
    if info.path:
        from ..tl_format import task_config_of

        declared = task_config_of(Path(info.path))
        if declared is not None:
            return declared
    return {"task": "language_modeling" if info.kind == "lm" else "unknown"}


def task_for(lm) -> Task:
    """The task of a loaded model (LoadedModel), configured from its task.json."""
    config = task_config(lm.info)
    name = config.get("task")
    if name not in TASKS:
        raise BadInput(f"{lm.id} has task '{name}', which this workbench does not know "
                       f"(known: {', '.join(TASKS)})")
    return TASKS[name](config)
