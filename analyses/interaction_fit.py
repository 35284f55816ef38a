"""One basis (LIB, IB or PCA) of a model's node layers as a fitted artifact: built once per (model, node
layers, data, sources, threshold), its C, C⁺, W, Λ and Gram spectrum per layer saved with safetensors in its
own folder (`Workbench.artifact_folder`), and read back by every later analysis that names it in
`depends_on()` (the Interaction bases page's edges, ablations and labels; later analyses on the same bases).

The shared setup of a build (the model's chain, the sections between the chosen node layers, the task's
data, the first node layer's activations) is `prepare`, used by the fit and by the analysis alike.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from compute.errors import BadInput

from .base import FitSpec, Result, added, bounded
from .registry import register

MAX_BACKWARD_PASSES = 200_000  # per basis: more would run for hours on a CPU; use stochastic sources


@dataclass(frozen=True)
class InteractionBasisSpec(FitSpec, kind="interaction_basis", title="Interaction basis (fit)",
                           page="interaction_bases"):
    ARTIFACT = "interaction_bases"
    basis: str = "lib"
    node_layers: tuple[str, ...] = ()
    last_pos_from: str = ""
    truncation_threshold: float = 1e-15
    position_sources: int = bounded(0, 0, 1000)
    hidden_sources: int = bounded(0, 0, 1000)
    sequences: int = bounded(16, 1, 4096)
    seq_len: int = bounded(64, 2, 4096)
    seed: int = 0
    pca_whiten: bool = added(False, legacy=False)

    def validate(self) -> None:
        super().validate()
        from interaction.build import BASIS_KINDS

        if self.basis not in BASIS_KINDS:
            raise BadInput(f"basis is one of {', '.join(BASIS_KINDS)}, not {self.basis!r}")
        if len(self.node_layers) < 2:
            raise BadInput("give at least two node layers, the last of them the logits")

    def describe(self) -> str:
        return f"{self.basis} basis of {self.model} ({len(self.node_layers)} node layers)"


@dataclass
class Prepared:
    chain: Any
    sections: list
    data: Any  # analyses.interaction_data.InteractionData
    first_acts: Callable  # model inputs -> the first node layer's activations (the cut applied)


def prepare(lm, spec) -> Prepared:
    """The chain, sections and data of a spec holding node_layers, last_pos_from, sequences and seq_len."""
    from interaction.chain import build_sections
    from interaction.models import chain_for

    from .interaction_data import interaction_data

    chain = chain_for(lm)
    sections = build_sections(chain, list(spec.node_layers), spec.last_pos_from or None)
    data = interaction_data(lm, spec)
    cut = chain.order.index(chain.canonical(spec.last_pos_from)) if spec.last_pos_from else None
    first = chain.canonical(spec.node_layers[0])

    def first_acts(inputs):
        f = chain.activations_at(inputs, first)
        return f[:, -1:] if cut is not None and chain.order.index(first) >= cut else f

    return Prepared(chain, sections, data, first_acts)


def check_sizes(acts, sections, sources) -> None:
    """Enough data for every node layer's dimension, and a bounded number of backward passes."""
    for layer, f in acts.by_layer.items():
        rows = f.shape[0] * f.shape[1]
        if rows < f.shape[-1]:
            raise BadInput(f"{layer} has {f.shape[-1] - 1} dimensions but the data gives only {rows} activation "
                           f"vectors ({f.shape[0]} examples × {f.shape[1]} positions): the Gram matrix would be "
                           f"singular in most directions. Use more data (sequences) or later node layers.")
    for s in sections:
        p, n_out = acts.shapes[s.end][1], acts.shapes[s.end][-1]
        passes = sources.n_passes(p, n_out)
        if passes > MAX_BACKWARD_PASSES:
            raise BadInput(f"{s.start} -> {s.end} needs {passes:,} backward passes per basis ({p} positions × "
                           f"{n_out} directions): set position_sources (rib uses 1 for language models) and/or "
                           f"hidden_sources")


def train_activations(prepared: Prepared, lm):
    from interaction.build import collect_activations

    big_output = lm.kind == "lm" and prepared.data.metric == "loss"  # an LM's logits: N·P·vocab, not kept
    return collect_activations(prepared.first_acts(prepared.data.train), prepared.sections, keep_output=not big_output)


def sources_of(spec):
    from interaction.build import Sources

    return Sources(spec.position_sources or None, spec.hidden_sources or None, spec.seed)


def save_bases(folder: Path, bases: dict) -> None:
    """C, C⁺, W, Λ, the Gram spectrum per node layer (safetensors) and the layers' order and dimensions;
    written beside the folder, then moved in whole, so a crash never leaves half a basis."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors, meta = {}, []
    for i, (layer, b) in enumerate(bases.items()):
        meta.append({"node_layer": layer, "orig_dim": b.orig_dim})
        for name in ("C", "C_pinv", "W", "Lambda", "gram_eigenvalues"):
            value = getattr(b, name)
            if value is not None:
                tensors[f"{i}.{name}"] = value.clone().contiguous()  # C and W may be one tensor (PCA)
    save_file(tensors, str(tmp / "bases.safetensors"))
    (tmp / "layers.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def load_bases(folder: Path) -> dict:
    from safetensors.torch import load_file

    from interaction.linalg import Basis

    try:
        meta = json.loads((Path(folder) / "layers.json").read_text())
        tensors = load_file(str(Path(folder) / "bases.safetensors"))
    except Exception as e:  # noqa: BLE001 - a missing or corrupt artifact
        raise BadInput(f"the fitted bases in {folder} cannot be read ({type(e).__name__}); run the build again "
                       f"with force") from None
    out = {}
    for i, m in enumerate(meta):
        get = lambda name, i=i: tensors.get(f"{i}.{name}")  # noqa: E731
        out[m["node_layer"]] = Basis(get("C"), get("C_pinv"), orig_dim=m["orig_dim"], W=get("W"),
                                     Lambda=get("Lambda"), gram_eigenvalues=get("gram_eigenvalues"))
    return out


@register(InteractionBasisSpec, long=True)
def fit_interaction_basis(spec: InteractionBasisSpec, ctx) -> Result:
    from interaction.build import build_bases

    lm = ctx.model(spec.model)
    prepared = prepare(lm, spec)
    ctx.progress(0.02, "activations")
    acts = train_activations(prepared, lm)
    sources = sources_of(spec)
    check_sizes(acts, prepared.sections, sources)
    built = build_bases(spec.basis, prepared.sections, acts, spec.truncation_threshold,
                        progress=lambda f, m: ctx.progress(0.05 + 0.9 * f, m),
                        variance_layers=prepared.chain.variance_layers, sources=sources, pca_whiten=spec.pca_whiten)
    folder = ctx.workbench.artifact_folder(spec)
    save_bases(folder, built.bases)
    ctx.progress(1.0, "saved")
    return Result(InteractionBasisSpec.KIND, {
        "folder": str(folder), "basis": spec.basis, "node_layers": list(built.bases),
        "kept_dims": {k: b.kept_dim for k, b in built.bases.items()}, "train_examples": int(len(prepared.data.train))})
