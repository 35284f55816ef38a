"""Attribution comparison on text: several methods on one prompt and target, side by side, with
faithfulness (soft-NS / soft-NC against random attributions; deletion and insertion curves),
agreement between methods (Kendall τ, Spearman, top-k overlap) and cost (passes and seconds).

`attribution_text`: one prompt. `attribution_text_batch` (a job): a set of prompts, one metrics
table per method averaged over them, as in the ReAGent paper's tables.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from attribution.faithfulness import DEFINITIONS as FAITHFULNESS_DEFINITIONS
from attribution.registry import REPLACEMENTS as REPLACEMENT_MODELS
from attribution.registry import TEXT_METHODS as METHOD_REGISTRY
from compute.errors import BadInput

from .attribution_figures import agreement_heatmap, cost_bars, curves_figure, faithfulness_bars, token_heatmap
from .base import Result, Spec, added, bounded, counted
from .batch_means import method_means
from .registry import register
from .lm_inputs import check_prompt_text, prompt_tokens, token_strings

TEXT_METHODS = tuple(METHOD_REGISTRY)
REPLACEMENTS = tuple(REPLACEMENT_MODELS)
MAX_FEATURES = 256
MAX_TARGET_TOKENS = 16


@dataclass(frozen=True)
class AttributionOptions(Spec):
    """The methods and their settings, shared by the single-prompt and the batch comparison."""
    methods: tuple[str, ...] = TEXT_METHODS
    replacement: str = "frequency"  # ReAGent's replacement model
    ig_steps: int = bounded(128, 4, 1024)
    shap_max_evals: int = bounded(500, 10, 20_000)
    reagent_steps: int = bounded(300, 1, 5000)
    reagent_probes: int = bounded(16, 1, 128)
    faithfulness_samples: int = bounded(10, 1, 100)
    top_k: int = 5
    seed: int = 0
    # how Soft-NS/NC, the curves and agreement are computed (attribution/faithfulness.py); specs stored
    # before the choice existed used "workbench"
    faithfulness: str = added("reagent_code", legacy="workbench", choices=tuple(FAITHFULNESS_DEFINITIONS))

    def validate(self) -> None:
        super().validate()
        validate_methods(self.methods, self.replacement)

    def result_version(self) -> int:
        # 2: SHAP's tree of spans is balanced (it was a chain that left the first tokens sharing one value);
        # ReAGent updates with the relative change of p(target) (it used the absolute change)
        return 2 if {"shap", "reagent"} & set(self.methods) else 1


@dataclass(frozen=True)
class AttributionTextSpec(AttributionOptions, kind="attribution_text",
                          title="Attribution comparison (text)", page="attribution"):
    prompt: str = ""
    target: str = ""  # a continuation; "" = the model's greedy next token
    target_id: int = -1  # or one token by id

    def validate(self) -> None:
        super().validate()
        check_prompt_text(self.prompt)

    def describe(self) -> str:
        return f"attribution of '{self.target or 'next token'}' on {self.model}"


@dataclass(frozen=True)
class AttributionBatchSpec(AttributionOptions, kind="attribution_text_batch",
                           title="Attribution comparison over a set of prompts", page="attribution"):
    prompts: tuple[str, ...] = counted(1, 500, "prompt")
    targets: tuple[str, ...] = ()  # one per prompt ("" = that prompt's greedy next token), or none at all

    def validate(self) -> None:
        super().validate()
        for p in self.prompts:
            check_prompt_text(p)
        if self.targets and len(self.targets) != len(self.prompts):
            raise BadInput(f"{len(self.targets)} targets for {len(self.prompts)} prompts: give one per prompt, or none")

    def describe(self) -> str:
        return f"attribution comparison over {len(self.prompts)} prompts on {self.model}"


def validate_methods(methods, replacement: str) -> None:
    if not methods:
        raise BadInput("pick at least one attribution method")
    unknown = [m for m in methods if m not in TEXT_METHODS]
    if unknown:
        raise BadInput(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(TEXT_METHODS)}")
    if replacement not in REPLACEMENTS:
        raise BadInput(f"unknown ReAGent replacement '{replacement}'; use one of {', '.join(REPLACEMENTS)}")


def build_task(lm, prompt: str, target: str, target_id: int):
    """The TextTask for a prompt and target, with the messages a researcher needs when they do not fit."""
    from attribution.text_task import TextTask

    if lm.kind != "lm":
        raise BadInput(f"{lm.id} is an image model; text attribution needs a language model")
    ids = prompt_tokens(lm, prompt)[0]
    first = 1 if lm.tokenizer.bos_token_id is not None and int(ids[0]) == lm.tokenizer.bos_token_id else 0
    if len(ids) - first < 2:
        raise BadInput("the prompt needs at least two tokens to compare attributions")
    if len(ids) - first > MAX_FEATURES:
        raise BadInput(f"the prompt is {len(ids) - first} tokens; attribution comparison takes at most {MAX_FEATURES}")
    vocab = lm.model.cfg.d_vocab
    if target_id >= 0:
        if target_id >= vocab:
            raise BadInput(f"target token id {target_id} is not in the vocabulary (ids 0–{vocab - 1})")
        tgt = [target_id]
    elif target:
        tgt = lm.tokenizer(target, add_special_tokens=False)["input_ids"]
        unk = lm.tokenizer.unk_token_id
        if not tgt:
            raise BadInput("the target produced no tokens")
        if unk is not None and unk in tgt and lm.tokenizer.unk_token not in target:
            raise BadInput(f"the target '{target}' is not in the model's vocabulary (it tokenizes to the unknown token)")
        if len(tgt) > MAX_TARGET_TOKENS:
            raise BadInput(f"the target is {len(tgt)} tokens; at most {MAX_TARGET_TOKENS}")
    else:
        with torch.no_grad():
            tgt = [int(lm.model(ids[None])[0, -1].argmax())]
    if lm.n_ctx and len(ids) + len(tgt) - 1 > lm.n_ctx:
        raise BadInput(f"prompt and target are longer than {lm.id}'s context of {lm.n_ctx} tokens")
    return TextTask(lm.model, ids, torch.tensor(tgt, dtype=torch.long, device=ids.device), first)


ZOO_MLM_MIN_SHARED = 0.99  # of the model's vocabulary, by token string


@functools.lru_cache(maxsize=16)
def _zoo_mlm_covers(fingerprint: str, vocab: frozenset) -> bool:
    from transformers import AutoTokenizer

    from compute.settings import ASSETS

    folder = ASSETS / "zoo" / "mlm"
    if not (folder / "model.safetensors").exists():
        return False
    try:
        mlm_vocab = AutoTokenizer.from_pretrained(str(folder)).get_vocab()
    except Exception:  # noqa: BLE001 - a broken asset folder: fall back, do not fail the page
        return False
    return len(vocab & set(mlm_vocab)) >= ZOO_MLM_MIN_SHARED * len(vocab)


def default_replacement(lm) -> str:
    """ReAGent's replacement model a page or the CLI proposes for a model: the zoo masked LM where it is
    installed and speaks the model's vocabulary (the zoo LMs), as the paper used a masked LM (RoBERTa);
    else the unigram sampler, which always works offline. The spec names the choice either way."""
    if lm.kind != "lm" or lm.tokenizer is None:
        return "frequency"
    return "zoo-mlm" if _zoo_mlm_covers(lm.fingerprint, frozenset(lm.tokenizer.get_vocab())) else "frequency"


def replacement_sampler(ctx, lm, name: str):
    """ReAGent's replacement model. The masked LMs load only when available; the frequency sampler
    always works offline."""
    from attribution.replacement import FrequencySampler, MaskedLMSampler

    if name == "frequency":
        return FrequencySampler(lm.tokenizer, cache_dir=ctx.workbench.settings.cache_dir("attribution"))
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from compute.settings import ASSETS

    source = str(ASSETS / "zoo" / "mlm") if name == "zoo-mlm" else name
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(source)
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as e:  # noqa: BLE001 - offline, or not trained
        raise BadInput(f"the replacement model '{name}' cannot be loaded ({type(e).__name__}); the 'frequency' "
                       f"replacement always works offline") from None
    label = "zoo masked LM (trained on the zoo corpus)" if name == "zoo-mlm" else f"{name} (masked LM, as in the paper)"
    try:
        return MaskedLMSampler(mlm, tok, lm.tokenizer, label, device=lm.device)
    except ValueError as e:
        raise BadInput(str(e)) from None


def attribute(ctx, lm, task, spec, progress=None) -> dict:
    """Run the chosen methods on one task; returns {method: TokenAttribution}."""
    from attribution.registry import run_method

    provide = {"sampler": lambda: replacement_sampler(ctx, lm, spec.replacement), "tokenizer": lambda: lm.tokenizer}
    out = {}
    for i, m in enumerate(spec.methods):
        if progress:
            progress(i / len(spec.methods), f"{m}")
        torch.manual_seed(spec.seed)
        try:
            out[m] = run_method(METHOD_REGISTRY[m], task, spec, provide)
        except ValueError as e:  # the method refuses this input (e.g. shap on a prompt it cannot mask)
            raise BadInput(f"{METHOD_REGISTRY[m].label}: {e}") from None
    return out


def evaluate(task, attributions: dict, samples: int, seed: int,
             definition: str = "reagent_code") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method: faithfulness, normalised against random attributions, and the two curves."""
    from attribution.faithfulness import deletion_insertion, random_metrics, ranking, soft_metrics

    rand = random_metrics(task, definition, samples, seed)
    rows, curves = [], []
    for m, a in attributions.items():
        soft = soft_metrics(task, a, definition, samples, seed)
        di = deletion_insertion(task, ranking(a, definition))
        ratio = lambda k: float(np.log(soft[k] / rand[k])) if soft[k] > 0 and rand[k] > 0 else None  # noqa: E731
        rows.append({"method": m, "soft_ns": soft["soft_ns"], "soft_nc": soft["soft_nc"],
                     "soft_ns_random": rand["soft_ns"], "soft_nc_random": rand["soft_nc"],
                     "ln_soft_ns_vs_random": ratio("soft_ns"), "ln_soft_nc_vs_random": ratio("soft_nc"),
                     "deletion_auc": di["deletion_auc"], "insertion_auc": di["insertion_auc"],
                     "seconds": a.seconds, **a.cost})
        n = len(di["deletion_curve"])
        curves.append(pd.DataFrame({"method": m, "tokens": np.arange(n), "fraction": np.arange(n) / (n - 1),
                                    "deletion_p": di["deletion_curve"], "insertion_p": di["insertion_curve"]}))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def parse_prompt_lines(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The batch format of the page and the CLI: one prompt per line, `\\n` for a newline inside it,
    optionally a TAB and its target. A line without a target explains its greedy next token (its target
    is ""); no targets at all gives `()`."""
    rows = [ln.split("\t", 1) for ln in text.splitlines() if ln.strip()]
    prompts = tuple(r[0].replace("\\n", "\n") for r in rows)
    if not any(len(r) == 2 for r in rows):
        return prompts, ()
    return prompts, tuple(r[1] if len(r) == 2 else "" for r in rows)


def faithfulness_summary(spec: AttributionOptions) -> dict:
    """Which definition the numbers follow, in the result itself (the page and exports show it)."""
    return {"faithfulness": spec.faithfulness, "faithfulness_definition": FAITHFULNESS_DEFINITIONS[spec.faithfulness]}


def compare(ctx, lm, spec: AttributionOptions, task, progress):
    """Attributions, faithfulness metrics and curves, and agreement for one task."""
    from attribution.agreement import pairwise
    from attribution.faithfulness import ranking

    attributions = attribute(ctx, lm, task, spec, lambda f, m="": progress(0.8 * f, m))
    progress(0.8, "faithfulness")
    metrics, curves = evaluate(task, attributions, spec.faithfulness_samples, spec.seed, spec.faithfulness)
    agreement = pairwise({m: ranking(a, spec.faithfulness) for m, a in attributions.items()}, k=spec.top_k)
    return attributions, metrics, curves, agreement


@register(AttributionTextSpec)
def run_attribution_text(spec: AttributionTextSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    task = build_task(lm, spec.prompt, spec.target, spec.target_id)
    attributions, metrics, curves, agreement = compare(ctx, lm, spec, task, ctx.progress)
    tokens = token_strings(lm, task.prompt_ids[task.first :].tolist())
    target = token_strings(lm, task.target_ids.tolist())
    scores = pd.concat([pd.DataFrame({"method": m, "position": np.arange(len(tokens)), "token": tokens,
                                      "score": a.scores,
                                      "normalised": a.scores / (np.abs(a.scores).max() or 1.0)})
                        for m, a in attributions.items()], ignore_index=True)
    notes = {m: a.notes for m, a in attributions.items() if a.notes}
    metrics["notes"] = [str(notes.get(m, "")) for m in metrics.method]
    tau = agreement[agreement.method_a != agreement.method_b]
    summary = {"model": spec.model, "prompt_tokens": len(tokens), "target": "".join(target),
               "target_tokens": len(target), "log_p_target": float(task.logprob_ids(task.prompt_ids[None])[0]),
               "methods": list(attributions), "total_seconds": float(metrics.seconds.sum()),
               "mean_pairwise_kendall_tau": float(tau.kendall_tau.mean()) if len(tau) else None,
               "top_token": {m: tokens[int(np.argmax(a.scores))] for m, a in attributions.items()},
               "notes": notes, **faithfulness_summary(spec)}
    figures = {"token_heatmap": token_heatmap(scores, tokens, "".join(target)),
               "faithfulness": faithfulness_bars(metrics), "deletion_insertion": curves_figure(curves),
               "agreement": agreement_heatmap(agreement), "cost": cost_bars(metrics)}
    ctx.progress(1.0, "done")
    return Result(AttributionTextSpec.KIND, summary, {"scores": scores, "methods": metrics, "agreement": agreement,
                                                      "curves": curves}, figures)


@register(AttributionBatchSpec, long=True)
def run_attribution_batch(spec: AttributionBatchSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    per_prompt, agreements = [], []
    n = len(spec.prompts)
    for i, prompt in enumerate(spec.prompts):
        target = spec.targets[i] if spec.targets else ""
        try:
            task = build_task(lm, prompt, target, -1)
        except BadInput as e:
            raise BadInput(f"prompt {i + 1}: {e}") from None
        progress = lambda f, m="", i=i: ctx.progress((i + f) / n, f"prompt {i + 1}/{n}: {m}")  # noqa: E731
        _, metrics, _, agreement = compare(ctx, lm, spec, task, progress)
        metrics.insert(0, "prompt", i)
        per_prompt.append(metrics)
        agreements.append(agreement.assign(prompt=i))
    rows = pd.concat(per_prompt, ignore_index=True)
    table, mean_agree = method_means(rows, agreements, skip=("prompt", "notes"))
    summary = {"model": spec.model, "prompts": n, "methods": list(spec.methods), **faithfulness_summary(spec),
               "best_soft_nc": str(table.sort_values("soft_nc").method.iloc[-1]),
               "best_soft_ns": str(table.sort_values("soft_ns").method.iloc[-1]),
               "total_seconds": float(rows.seconds.sum())}
    figures = {"faithfulness": faithfulness_bars(table), "agreement": agreement_heatmap(mean_agree),
               "cost": cost_bars(table)}
    ctx.progress(1.0, "done")
    return Result(AttributionBatchSpec.KIND, summary, {"per_method": table, "per_prompt": rows,
                                                       "agreement": mean_agree}, figures)
