"""Load SAEs the workbench did not train: any SAELens-format folder, or a SAELens release when reachable."""
from __future__ import annotations

import json
import struct
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


def check_sae_source(source: str) -> None:
    """What can be told without loading: the folder holds a cfg.json that is a JSON object and weights whose
    safetensors header is whole and whose file is as long as the header says; a release names a release and an
    SAE SAELens knows. A job is submitted only for an SAE that passes, so a typo fails in the page, not in a
    worker minutes later. SAELoadError says what is wrong."""
    source = (source or "").strip()
    if not source:
        raise SAELoadError("no SAE given: a SAELens-format folder, or release:sae_id")
    path = Path(source).expanduser()
    if path.is_dir():
        _check_folder(path)
        return
    if ":" in source and not source.startswith(("/", ".", "~")):
        _check_release(*source.split(":", 1))
        return
    raise SAELoadError(f"no SAE folder at {source} (and it is not of the form release:sae_id)")


def _check_folder(path: Path) -> None:
    cfg = path / "cfg.json"
    if not cfg.exists():
        raise SAELoadError(f"{path} is not a SAELens SAE folder: it has no cfg.json")
    try:
        parsed = json.loads(cfg.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SAELoadError(f"{cfg} is not valid JSON ({e}); it is the SAE's config, so the SAE cannot be "
                           f"loaded") from None
    if not isinstance(parsed, dict):
        raise SAELoadError(f"{cfg} holds a {type(parsed).__name__}, not the SAE's settings (a JSON object)")
    weights = path / "sae_weights.safetensors"
    if not weights.exists():
        raise SAELoadError(f"{path} has no sae_weights.safetensors")
    _check_safetensors(weights)


def _check_safetensors(weights: Path) -> None:
    """The format: 8 bytes (little-endian u64) giving the header's length, the JSON header with every tensor's
    byte range in the data that follows, then the data."""
    size = weights.stat().st_size
    broken = f"{weights.name} in {weights.parent} is damaged or cut short"
    with weights.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SAELoadError(f"{broken}: it has only {size} bytes")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise SAELoadError(f"{broken}: its header claims {n:,} bytes but the file has {size:,}")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SAELoadError(f"{broken}: its header is not readable") from None
    if not isinstance(header, dict):
        raise SAELoadError(f"{broken}: its header is not a table of tensors")
    ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    needed = 8 + n + max(ends, default=0)
    if needed > size:
        raise SAELoadError(f"{broken}: its tensors need {needed:,} bytes but the file has {size:,}")


def _check_release(release: str, sae_id: str) -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    known = get_pretrained_saes_directory()
    if release not in known:
        close = sorted(r for r in known if release.lower() in r.lower())[:5]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise SAELoadError(f"SAELens knows no release '{release}'{hint}")
    ids = known[release].saes_map
    if sae_id not in ids:
        some = ", ".join(list(ids)[:4])
        raise SAELoadError(f"release '{release}' has no SAE '{sae_id}'; its SAEs are named like {some}")
    if _hub_offline():
        from huggingface_hub import constants

        repo = known[release].repo_id
        if not (Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}").is_dir():
            raise SAELoadError(f"the hub is unreachable here (offline mode) and release '{release}' ({repo}) is not in "
                               f"the local Hugging Face cache: copy it in, or save the SAE as a folder and give that")


def _hub_offline() -> bool:
    import os

    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def flat_input(sae):
    """The workbench feeds every SAE flat vectors ([..., n_heads * d_head] for hook_z, as its activation caches
    store them); an SAE saved with `reshape_activations="hook_z"` (SAELens's attention SAEs) would flatten its
    input again and misread it, so its own reshaping is turned off."""
    if getattr(sae, "hook_z_reshaping_mode", False):
        sae.turn_off_forward_pass_hook_z_reshaping()
    return sae
