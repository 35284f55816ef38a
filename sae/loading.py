"""Load SAEs the workbench did not train: any SAELens-format folder, or a SAELens release when reachable."""
from __future__ import annotations

from pathlib import Path

import sae as _ours  # noqa: F401  (registers feature_choice / mutual_choice before any load)


class SAELoadError(ValueError):
    pass


def load_sae(source: str, device: str = "cpu"):
    """`source`: a folder with cfg.json + sae_weights.safetensors, or "release:sae_id" (SAELens pretrained)."""
    from sae_lens import SAE

    source = (source or "").strip()
    if not source:
        raise SAELoadError("no SAE given: a SAELens-format folder, or release:sae_id")
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "cfg.json").exists():
            raise SAELoadError(f"{path} is not a SAELens SAE folder: it has no cfg.json")
        try:
            return flat_input(SAE.load_from_disk(str(path), device=device))
        except Exception as e:  # noqa: BLE001 - corrupt weights, unknown architecture, ...
            raise SAELoadError(f"cannot load the SAE in {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if ":" in source and not source.startswith(("/", ".")):
        release, sae_id = source.split(":", 1)
        try:
            return flat_input(SAE.from_pretrained(release, sae_id, device=device))
        except Exception as e:  # noqa: BLE001 - unknown release, or the hub unreachable
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SAELoadError(f"cannot load SAELens release '{release}' / '{sae_id}': {msg}. Without internet only "
                               f"SAEs already on disk can be loaded.") from None
    raise SAELoadError(f"no SAE folder at {source} (and it is not of the form release:sae_id)")


def flat_input(sae):
    """The workbench feeds every SAE flat vectors ([..., n_heads * d_head] for hook_z, as its activation caches
    store them); an SAE saved with `reshape_activations="hook_z"` (SAELens's attention SAEs) would flatten its
    input again and misread it, so its own reshaping is turned off."""
    if getattr(sae, "hook_z_reshaping_mode", False):
        sae.turn_off_forward_pass_hook_z_reshaping()
    return sae
