"""TransformerLens-format checkpoint folders: how people save toy models trained with TransformerLens
(the grokking models are such). `config.json` = {"format": "transformer_lens", "config": {HookedTransformerConfig
fields}, optionally "task": {...}}, `model.safetensors` = the state dict. Loaded as a HookedTransformer
(weights through safetensors only, never pickle); such models have no tokenizer.

Tasks a folder may declare (`task.kind`): "modular_addition" with `modulus`, inputs "a b <modulus>" and
`split.method` "torch_random_split" (torch.utils.data.random_split of all (a, b) pairs, a-major, with
`frac_train` and `seed`: the first part trains)."""
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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TransformerLens 3 deprecates HookedTransformer
        model = HookedTransformer(cfg, move_to_device=False)
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith(("mask", "IGNORE"))]
    if missing or unexpected:
        raise ModelLoadError(f"{weights} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.to(device).eval()


def task_data(folder: Path, split: str) -> dict:
    """{"input_ids" [n, 3], "labels" [n]} of the folder's declared task on its train or test split."""
    data = read_config(folder) or {}
    task = data.get("task") or {}
    if task.get("kind") != "modular_addition":
        raise BadInput(f"{folder} declares no task the workbench can build data for (task.kind: {task.get('kind')})")
    p = int(task["modulus"])
    how = task.get("split", {})
    if how.get("method") != "torch_random_split":
        raise BadInput(f"unknown split method {how.get('method')!r} in {folder}/config.json")
    pairs = torch.tensor([(a, b) for a in range(p) for b in range(p)])
    n_train = int(float(how["frac_train"]) * len(pairs))
    train, test = torch.utils.data.random_split(pairs, [n_train, len(pairs) - n_train],
                                                generator=torch.Generator().manual_seed(int(how["seed"])))
    chosen = pairs[torch.tensor((train if split == "train" else test).indices)]
    ids = torch.cat([chosen, torch.full((len(chosen), 1), p)], dim=1)
    return {"input_ids": ids, "labels": (chosen[:, 0] + chosen[:, 1]) % p}
