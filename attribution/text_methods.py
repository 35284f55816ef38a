"""Token attributions for a TextTask: Captum's gradient and perturbation methods, attention scores,
SHAP (the shap library's Text masker), each returning one score per prompt token after BOS.

Signs: positive = the token raises the target's log-probability (attention scores are non-negative).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .text_task import TextTask

IG_STEPS = 64


@dataclass
class TokenAttribution:
    method: str
    scores: np.ndarray  # [n_features]
    cost: dict
    seconds: float
    notes: dict = field(default_factory=dict)
    # the distribution over tokens ReAGent's evaluation was fed for this method, where it is not
    # |score| normalised (see faithfulness.paper_importance); None: |score| normalised
    importance: np.ndarray | None = None


def _inputs(task: TextTask) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's embeddings [1, n, d] and the baseline: the same with every feature token zeroed
    (BOS keeps its embedding, so it is neither on the path nor attributed)."""
    x = task.embed(task.prompt_ids).detach()[None].float()
    base = x.clone()
    base[:, task.first :] = 0
    return x, base


def _timed(fn):
    def run(task: TextTask, **kw) -> TokenAttribution:
        start_forwards, start_backwards, start_rows = task.cost.forwards, task.cost.backwards, task.cost.rows
        t0 = time.perf_counter()
        method, scores, grads, notes, *own_importance = fn(task, **kw)
        seconds = time.perf_counter() - t0
        forwards = task.cost.forwards - start_forwards
        cost = {"forward_passes": forwards, "backward_passes": forwards if grads else 0,
                "sequences": task.cost.rows - start_rows}
        task.cost.backwards = start_backwards + cost["backward_passes"]
        own = np.asarray(own_importance[0], dtype=np.float64) if own_importance else None
        return TokenAttribution(method, np.asarray(scores, dtype=np.float64), cost, seconds, notes, own)
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _inseq_importance(attr: torch.Tensor, task: TextTask) -> np.ndarray:
    """inseq's default aggregation of a [1, n, d] attribution, which ReAGent's evaluation was fed: the
    L2 norm over the hidden dim, normalised to sum 1 (so a token with a large cancelling attribution
    vector counts, where the sum over the hidden dim would hide it)."""
    norm = attr[0, task.first :].detach().float().norm(dim=-1).cpu().numpy().astype(np.float64)
    return norm / norm.sum() if norm.sum() > 0 else np.full_like(norm, 1.0 / max(len(norm), 1))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(np.asarray(x, dtype=np.float64) - np.max(x))
    return e / e.sum()


@_timed
def integrated_gradients(task: TextTask, n_steps: int = IG_STEPS):
    """Captum IntegratedGradients on the prompt embeddings, zero baseline, summed over the hidden dim."""
    from captum.attr import IntegratedGradients

    x, base = _inputs(task)
    attr, delta = IntegratedGradients(task.logprob_embeds).attribute(
        x, baselines=base, n_steps=n_steps, internal_batch_size=task.batch_size, return_convergence_delta=True)
    scores = attr.sum(-1)[0, task.first :].detach().cpu().numpy()
    notes = {"n_steps": n_steps, "completeness_delta": float(delta.abs().max())}
    return "integrated_gradients", scores, True, notes, _inseq_importance(attr, task)


@_timed
def input_x_gradient(task: TextTask):
    """Captum InputXGradient on the prompt embeddings, summed over the hidden dim."""
    from captum.attr import InputXGradient

    x, _ = _inputs(task)
    attr = InputXGradient(task.logprob_embeds).attribute(x.requires_grad_(True))
    return "input_x_gradient", attr.sum(-1)[0, task.first :].detach().cpu().numpy(), True, {}, _inseq_importance(attr, task)


@_timed
def saliency(task: TextTask):
    """Gradient norm per token (Captum Saliency, then the L2 norm over the hidden dim)."""
    from captum.attr import Saliency

    x, _ = _inputs(task)
    grad = Saliency(task.logprob_embeds).attribute(x.requires_grad_(True), abs=True)
    return "saliency", grad.norm(dim=-1)[0, task.first :].detach().cpu().numpy(), True, {}


@_timed
def occlusion(task: TextTask):
    """Captum FeatureAblation: each token's embedding zeroed in turn; score = drop in log p(target)."""
    from captum.attr import FeatureAblation

    x, _ = _inputs(task)
    mask = torch.arange(task.n_prompt, device=x.device).view(1, -1, 1).expand_as(x)
    with torch.no_grad():
        attr = FeatureAblation(task.logprob_embeds).attribute(
            x, baselines=0.0, feature_mask=mask, perturbations_per_eval=task.batch_size)
    return "occlusion", attr[0, task.first :, 0].detach().cpu().numpy(), False, {"baseline": "zero embedding"}


def _patterns(task: TextTask) -> list[torch.Tensor]:
    """Attention patterns [heads, q, k] of every layer for the prompt alone."""
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(task.model.cfg.n_layers)]
    task.cost.forwards += 1
    task.cost.rows += 1
    with torch.no_grad():
        _, cache = task.model.run_with_cache(task.prompt_ids[None], names_filter=lambda n: n in names)
    return [cache[n][0].float() for n in names]


@_timed
def last_layer_attention(task: TextTask):
    """Attention of the last layer from the position that predicts the target, mean over heads."""
    pattern = _patterns(task)[-1]
    scores = pattern.mean(0)[-1, task.first :].cpu().numpy()
    # ReAGent's attention.py feeds the softmax of the attention weights to its evaluation
    return "attention_last", scores, False, {}, _softmax(scores)


@_timed
def attention_rollout(task: TextTask):
    """Abnar & Zuidema (2020): per layer Â = ½(mean-head attention) + ½I, rows renormalised, multiplied
    through the layers; the row of the predicting position."""
    roll = None
    for pattern in _patterns(task):
        a = 0.5 * pattern.mean(0) + 0.5 * torch.eye(pattern.shape[-1], device=pattern.device)
        a = a / a.sum(-1, keepdim=True)
        roll = a if roll is None else a @ roll
    scores = roll[-1, task.first :].cpu().numpy()
    return "attention_rollout", scores, False, {}, _softmax(scores)


def mask_token_id(tokenizer) -> int:
    """What a masked token becomes: the tokenizer's mask token, else '...' (shap's Text masker's choice)."""
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    return int(tokenizer("...", add_special_tokens=False)["input_ids"][0])


def adjacent_tree(n: int) -> np.ndarray:
    """A balanced binary tree over the prompt's tokens that only ever joins neighbouring spans (shap's Text
    masker's tree is balanced too), as a scipy linkage matrix: halve a span, then halve each half.

    Why balanced: shap's Partition explainer expands the tree from the root, and a node at depth d is
    expanded 2^d times (once per context of its ancestors), two model rows each. A chain (((0,1),2),3)…
    puts the first tokens at depth n-1 and needs ~2^n rows before they part; halving needs ~2n²/3."""
    rows: list[list[float]] = []

    def build(lo: int, hi: int) -> int:  # the span [lo, hi); returns its node id
        if hi - lo == 1:
            return lo
        mid = (lo + hi + 1) // 2
        left, right = build(lo, mid), build(mid, hi)
        rows.append([left, right, float(hi - lo - 1), float(hi - lo)])
        return n + len(rows) - 1

    if n > 1:
        build(0, n)
    tree = np.array(rows, dtype=np.float64).reshape(-1, 4)
    # linkage order: a node after its children, smaller spans first (scipy's is_valid_linkage wants this)
    order = np.argsort(tree[:, 3], kind="stable")
    new_id = np.arange(2 * n - 1)
    new_id[n + order] = n + np.arange(len(order))
    tree = tree[order]
    tree[:, :2] = new_id[tree[:, :2].astype(int)]
    return tree


def node_spans(tree: np.ndarray) -> list[tuple[int, int]]:
    """[first, last] token of every node of a linkage tree (leaves, then merges)."""
    n = len(tree) + 1
    spans = [(i, i) for i in range(n)]
    for left, right, _, _ in tree:
        a, b = spans[int(left)], spans[int(right)]
        spans.append((min(a[0], b[0]), max(a[1], b[1])))
    return spans


def evals_to_resolve(tree: np.ndarray) -> int:
    """The max_evals at which shap's Partition explainer expands every node of the tree (2 rows per expansion,
    2^depth expansions of a node at that depth, plus the two rows of the empty and the full coalition), so
    that every token gets its own Owen value."""
    n = len(tree) + 1
    if n < 2:
        return 2
    depth = np.zeros(2 * n - 1, dtype=np.int64)
    expansions = 0
    for node in range(2 * n - 2, n - 1, -1):  # root first
        expansions += 2 ** int(depth[node])
        depth[tree[node - n, :2].astype(int)] = depth[node] + 1
    return 2 * expansions + 1


@_timed
def shap_values(task: TextTask, tokenizer=None, max_evals: int = 500):
    """shap's Partition explainer (Owen values over a balanced tree of adjacent token spans) explaining
    log p(target | prompt); a masked token is replaced by the mask token in place, so every
    coalition keeps the prompt's length and the model calls batch.

    Below `evals_to_resolve` of the tree (about 2n²/3 for n tokens; 331 for 21, 683 for 32) some spans
    are never split in every context, and the explainer shares their remaining value equally among
    their tokens: the notes list those spans (`unresolved_spans`, first and last token, 0-based) and
    the budget that resolves every token."""
    import shap

    ids = task.prompt_ids[task.first :].cpu().numpy()
    prefix = task.prompt_ids[: task.first].cpu()
    replace = mask_token_id(tokenizer)
    calls = {"evals": 0}

    def f(x: np.ndarray) -> np.ndarray:
        rows = torch.as_tensor(np.asarray(x, dtype=np.int64))
        calls["evals"] += len(rows)
        full = torch.cat([prefix.expand(len(rows), -1), rows], dim=1).to(task.device)
        return task.logprob_ids(full).cpu().numpy()

    tree = adjacent_tree(len(ids))
    masker = shap.maskers.Partition(np.full((1, len(ids)), replace), clustering=tree)
    sv = shap.explainers.Partition(f, masker)(ids[None], max_evals=max_evals, silent=True,
                                               batch_size=task.batch_size)
    need = evals_to_resolve(tree)
    spans = unresolved_spans(tree, np.asarray(sv.hierarchical_values[0], dtype=np.float64))
    notes = {"model_calls": calls["evals"], "max_evals": max_evals,
             "mask_token": tokenizer.convert_ids_to_tokens(replace), "evals_to_resolve": need,
             "resolved": not spans, "unresolved_spans": spans}
    if spans:
        notes["ties"] = ("tokens of an unresolved span share part of their value: agreement counts equal "
                         "scores as ties (Kendall τ-b, Spearman with average ranks); deletion / insertion and "
                         "top-k break ties by position")
    return "shap", np.asarray(sv.values[0], dtype=np.float64), False, notes


def unresolved_spans(tree: np.ndarray, node_values: np.ndarray) -> list[list[int]]:
    """The largest spans whose node kept a residual (the budget ran out before it was split in some context),
    as [first, last] token; empty when every token has its own value."""
    n = len(tree) + 1
    spans = node_spans(tree)
    scale = max(float(np.abs(node_values).max()), 1e-30)
    held = [spans[i] for i in range(n, 2 * n - 1) if abs(node_values[i]) > 1e-9 * scale]
    outer = [sp for sp in held if not any(o != sp and o[0] <= sp[0] and sp[1] <= o[1] for o in held)]
    return [list(sp) for sp in sorted(outer)]

