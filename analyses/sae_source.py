"""Which SAE an analysis means, and loading it for a model with the checks that give clear messages.

An SAE is named by a string that goes into specs and links:
- a workbench training run's hash (16 hex digits): the SAE that run saved;
- a SAELens-format folder on the server (cfg.json + sae_weights.safetensors);
- `release:sae_id`, a SAELens pretrained SAE (needs the hub, or its files already in the local cache).
Results depend on the SAE's weights: a spec about an SAE depends on it (`SAERef`), so the SAE's
fingerprint joins the model's in the result-cache key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from compute.errors import BadInput
from compute.models import LoadedModel, hash_files

from .base import FitSpec, Spec

RUN_HASH = re.compile(r"^[0-9a-f]{16}$")
_fingerprints: dict[tuple, str] = {}


NO_SAE = "no SAE given: a workbench SAE run, a SAELens-format folder, or release:sae_id"


SAE_ARTIFACT = "saes"  # the fit folder kind of SAE training runs; the SAE itself is its sae/ sub-folder


@dataclass(frozen=True)
class SAERef:
    """An SAE as a dependency of an analysis: its fingerprint is its weights' identity."""
    source: str

    def fingerprint(self, wb) -> str:
        return sae_fingerprint(wb, self.source)

    def check_access(self, wb) -> None:
        sae_location(wb, self.source)  # confines a folder to the roots (a run hash or a release passes)

    def check_ready(self, wb) -> None:
        """Before a job: the SAE exists and its files are whole (see sae.loading.check_sae_source)."""
        from sae.loading import SAELoadError, check_sae_source

        try:
            check_sae_source(sae_location(wb, self.source))
        except SAELoadError as e:
            raise BadInput(str(e)) from None


@dataclass(frozen=True)
class SAESpec(Spec):
    """A spec about one SAE of the model: `sae` names it (above); `hook` overrides the SAE's own hook."""
    sae: str = ""
    hook: str = ""

    def validate(self) -> None:
        super().validate()
        if not self.sae.strip():
            raise BadInput(NO_SAE)

    def depends_on(self) -> tuple[SAERef, ...]:
        return (SAERef(self.sae),)

    def check_ready(self, wb) -> None:
        super().check_ready(wb)
        hook = self.hook.strip()
        if hook:
            lm = wb.models.get(self.model)  # loaded already where a page submits
            if lm.kind == "lm" and hook not in lm.model.hook_dict:
                kind = hook.rsplit(".", 1)[-1]
                alike = [h for h in lm.model.hook_dict if h.endswith(kind)] or list(lm.model.hook_dict)
                raise BadInput(f"the hook '{hook}' does not exist in {lm.id}; it has {', '.join(alike[:4])}"
                               f"{', …' if len(alike) > 4 else ''}")


def sae_location(wb, source: str) -> str:
    """The folder or release:id behind an SAE name."""
    source = (source or "").strip()
    if not source:
        raise BadInput(NO_SAE)
    if not RUN_HASH.match(source):
        if wb.settings.path_roots is not None and _is_path(source):
            from compute.paths import confined

            return str(confined(wb.settings, source, "SAE folders"))
        return source
    if wb.store.get_spec(source) is None:
        raise BadInput(f"no SAE run is stored under '{source}' on this server")
    spec = wb.load_shared(source)
    if isinstance(spec, FitSpec) and spec.ARTIFACT == SAE_ARTIFACT:
        folder = wb.artifact_folder(spec) / "sae"
        if not (folder / "cfg.json").exists():
            raise BadInput(f"SAE run {source} has not finished training yet")
        return str(folder)
    if isinstance(spec, SAESpec):  # an evaluation of an SAE from elsewhere: that SAE
        return sae_location(wb, spec.sae)
    raise BadInput(f"'{source}' is a {spec.KIND} analysis, not an SAE")


def _is_path(source: str) -> bool:
    """A folder, as opposed to a SAELens `release:sae_id` (which load_sae tries only when no folder exists)."""
    return source.startswith(("/", "~", ".")) or ":" not in source or Path(source).expanduser().is_dir()


def sae_fingerprint(wb, source: str) -> str:
    """The identity of the SAE's weights (file contents for a folder; the name for a release)."""
    try:
        loc = sae_location(wb, source)
    except BadInput:
        return "unavailable"
    path = Path(loc).expanduser()
    if not path.is_dir():
        return f"release:{loc}"
    files = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()))
    key = (str(path.resolve()), files)
    if key not in _fingerprints:
        _fingerprints[key] = hash_files(path)
    return _fingerprints[key]


def _same_model(wb, trained_on: str | None, lm: LoadedModel) -> bool:
    if not trained_on or trained_on == lm.id:
        return True
    try:
        return wb.models.resolve(trained_on).id == lm.id
    except Exception:  # noqa: BLE001 - a name we cannot resolve offline: compare as written
        return False


def load_for_model(wb, source: str, lm: LoadedModel, hook: str = ""):
    """(sae, hook) for this model, or BadInput saying what does not fit."""
    from sae.loading import SAELoadError, load_sae

    if lm.kind != "lm":
        raise BadInput(f"{lm.id} is an image model; SAEs here are on language-model hooks")
    loc = sae_location(wb, source)
    try:
        sae = load_sae(loc, device=lm.device)
    except SAELoadError as e:
        raise BadInput(str(e)) from None
    meta = sae.cfg.metadata
    trained_on = getattr(meta, "model_name", None) if meta is not None else None
    if not _same_model(wb, trained_on, lm):
        raise BadInput(f"this SAE was trained on {trained_on}, not on {lm.id}: pick {trained_on} in the sidebar "
                       f"or an SAE of {lm.id}")
    hook = (hook or "").strip() or (getattr(meta, "hook_name", None) if meta is not None else None) or ""
    if not hook:
        raise BadInput("the SAE does not name its hook; give one")
    if hook not in lm.model.hook_dict:
        raise BadInput(f"the SAE's hook '{hook}' does not exist in {lm.id}")
    return sae, hook


def check_width(sae, d: int, hook: str, lm: LoadedModel) -> None:
    if d != sae.cfg.d_in:
        raise BadInput(f"the SAE reads {sae.cfg.d_in}-dimensional activations but {hook} of {lm.id} has {d} "
                       f"dimensions: it belongs to another model or hook")
