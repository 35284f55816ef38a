"""The attribution methods, one entry each, carrying what the analyses, the pages and the CLI need: the
label a page shows, the short names the CLI accepts, which spec fields set its options, what else it needs
from its caller, and what it costs. Callers look a method up here instead of branching on its name."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import image_methods, text_methods
from .reagent import reagent


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    run: Callable  # run(task, **options, **needs) -> TokenAttribution / PixelAttribution
    cost: str  # model passes it takes, for the page's help
    aliases: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)  # keyword argument -> spec field that sets it
    needs: tuple[str, ...] = ()  # keyword arguments the caller provides (a tokenizer, a replacement model, …)
    family: str = ""  # image methods: "gradient", "perturbation" or "CAM" (the robust-CNN paper's families)


TEXT_METHODS: dict[str, Method] = {m.name: m for m in (
    Method("reagent", "ReAGent", reagent, "forward passes until probes converge (≤ steps × probes)",
           options={"max_steps": "reagent_steps", "num_probes": "reagent_probes", "seed": "seed"},
           needs=("sampler",)),
    Method("shap", "SHAP (Partition)", text_methods.shap_values, "max_evals model calls, batched",
           options={"max_evals": "shap_max_evals"}, needs=("tokenizer",)),
    Method("integrated_gradients", "Integrated Gradients", text_methods.integrated_gradients,
           "steps forward + backward passes", aliases=("ig",), options={"n_steps": "ig_steps"}),
    Method("input_x_gradient", "Input × Gradient", text_methods.input_x_gradient, "one forward + backward pass",
           aliases=("ixg",)),
    Method("saliency", "Saliency (gradient norm)", text_methods.saliency, "one forward + backward pass",
           aliases=("saliency", "gradient")),
    Method("occlusion", "Occlusion", text_methods.occlusion, "one forward pass per token",
           aliases=("occlusion", "ablation")),
    Method("attention_last", "Last-layer attention", text_methods.last_layer_attention, "one forward pass",
           aliases=("attention",)),
    Method("attention_rollout", "Attention rollout", text_methods.attention_rollout, "one forward pass",
           aliases=("rollout",)),
)}

IMAGE_METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gradcam", "GradCAM", image_methods.gradcam, "one forward + backward pass", family="CAM"),
    Method("gradcam_pp", "GradCAM++", image_methods.gradcam_pp, "one forward + backward pass",
           aliases=("gradcam++", "gradcampp"), family="CAM"),
    Method("integrated_gradients", "Integrated Gradients", image_methods.integrated_gradients,
           "steps forward + backward passes", aliases=("ig",), options={"n_steps": "ig_steps"}, family="gradient"),
    Method("occlusion", "Occlusion", image_methods.occlusion, "one forward pass per window position",
           aliases=("occlusion", "ablation"), options={"window": "occlusion_window"}, family="perturbation"),
    Method("shap", "SHAP (expected gradients)", image_methods.shap_gradient, "samples forward + backward passes",
           options={"nsamples": "shap_samples"}, needs=("background",), family="gradient"),
    Method("gradient", "Gradient (saliency)", image_methods.gradient, "one forward + backward pass",
           aliases=("saliency",), family="gradient"),
    Method("smoothgrad", "SmoothGrad", image_methods.smoothgrad, "samples forward + backward passes",
           options={"nt_samples": "smoothgrad_samples", "noise": "smoothgrad_noise"}, family="gradient"),
    Method("lime", "LIME (patches)", image_methods.lime, "samples forward passes",
           options={"n_samples": "lime_samples", "patch": "lime_patch"}, family="perturbation"),
    Method("rise", "RISE", image_methods.rise, "masks forward passes, batched",
           options={"n_masks": "rise_masks", "grid": "rise_grid", "p": "rise_p"}, family="perturbation"),
)}

# ReAGent's replacement models (attribution/replacement.py).
REPLACEMENTS: dict[str, str] = {"frequency": "corpus frequencies (always offline)", "zoo-mlm": "zoo masked LM",
                                "roberta-base": "RoBERTa (the paper's; needs its weights)"}


def canonical(names, methods: dict[str, Method]) -> tuple[str, ...]:
    """Method names as given (CLI short names allowed) -> their registry names; unknown names pass through
    (the spec's validation names them)."""
    alias = {a: m.name for m in methods.values() for a in m.aliases}
    return tuple(alias.get(n, n) for n in names)


def run_method(method: Method, task, spec, provide: dict[str, Callable[[], object]]):
    """Run one method with its options read from the spec and its needs from the caller."""
    kwargs = {arg: getattr(spec, name) for arg, name in method.options.items()}
    kwargs.update({need: provide[need]() for need in method.needs})
    return method.run(task, **kwargs)


def label(name: str) -> str:
    m = TEXT_METHODS.get(name) or IMAGE_METHODS.get(name)
    return m.label if m else name
