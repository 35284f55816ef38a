"""TransformerLens-format checkpoint folders: how people save toy models trained with TransformerLens
(the grokking models are such). `config.json` = {"format": "transformer_lens", "config": {HookedTransformerConfig
fields}, optionally "task": {...}}, `model.safetensors` = the state dict. Loaded as a HookedTransformer
(weights through safetensors only, never pickle); such models have no tokenizer.

A folder may declare its task (`task.kind`): "modular_addition" with `modulus`, inputs "a b <modulus>" and
`split.method` "torch_random_split" (frac_train, seed); it becomes the workbench task of that name
(compute/tasks/modular_addition.py)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import BadInput, ModelLoadError

FORMAT = "transformer_lens"


def read_config(folder: Path) -> dict | None:
    """The folder's config when it is a TransformerLens-format folder, else None."""
    try:
        data = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def load_hooked_transformer(folder: Path, device: str, dtype: torch.dtype):
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    data = read_config(folder)
    if data is None or not isinstance(data.get("config"), dict):
        raise ModelLoadError(f"{folder}/config.json is not a TransformerLens-format config")
    try:
        cfg = HookedTransformerConfig(**data["config"], dtype=dtype, device=device)
    except (TypeError, ValueError, AssertionError) as e:
        raise ModelLoadError(f"{folder}: the TransformerLens config is invalid: {e}") from None
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{folder} has no model.safetensors")
    try:
        state = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - a corrupt file
        raise ModelLoadError(f"cannot read {weights}: {type(e).__name__}") from None
    import contextlib
    import io
    import warnings

    # TransformerLens 3 deprecates HookedTransformer (a warning) and prints its device moves (to stdout,
    # which the CLI's JSON owns)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, move_to_device=False)
        missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
        missing = [k for k in missing if not k.endswith(("mask", "IGNORE"))]
        if missing or unexpected:
            raise ModelLoadError(f"{weights} does not fit its config: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
        return model.to(device).eval()


def task_config_of(folder: Path) -> dict | None:
    """The task block of a TransformerLens-format config as a workbench task config (compute/tasks/), or None."""
    task = (read_config(folder) or {}).get("task")
    if not isinstance(task, dict):
        return None
    if task.get("kind") != "modular_addition":
        raise BadInput(f"{folder} declares a task the workbench does not know: {task.get('kind')!r}")
    how = task.get("split", {})
    if how.get("method") != "torch_random_split":
        raise BadInput(f"unknown split method {how.get('method')!r} in {folder}/config.json")
    return {"task": "modular_addition", "p": int(task["modulus"]), "split": "torch_random_split",
            "train_fraction": float(how["frac_train"]), "split_seed": int(how["seed"])}
