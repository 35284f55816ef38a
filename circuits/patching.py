"""Which heads matter for a task, by intervention: per-head activation patching (the negative run's z of one
head patched into the positive run), mean ablation (the head's z replaced by its mean over the task's prompts,
position by position) and attribution patching (the first-order estimate of patching: the gradient of the
logit difference with respect to z, dotted with z_negative − z_positive; Nanda 2023, Syed et al. 2023).

A head's score is the share of the positive run's logit difference (over the negative run's) that the
intervention removes: 1 = the head carries all of it, 0 = none; mean over the task's pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .tasks import TaskTokens


def z_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def head_list(model) -> list[tuple[int, int]]:
    return [(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def head_name(layer: int, h: int) -> str:
    return f"L{layer}H{h}"


def logit_diff(last: torch.Tensor, ans: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """[n]: logit(answer) − logit(wrong) at the last position (the answer's logit alone where wrong is -1)."""
    idx = torch.arange(len(ans))
    other = torch.where(wrong >= 0, last[idx, wrong.clamp_min(0)], torch.zeros_like(last[idx, ans]))
    return last[idx, ans] - other


@dataclass
class Counter:
    forward: int = 0
    backward: int = 0
    seconds: dict = field(default_factory=dict)


@torch.no_grad()
def run_z(model, tokens: torch.Tensor, counter: Counter) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(last-position logits [n, vocab], {layer: z [n, T, heads, d_head]})."""
    names = {z_hook(layer) for layer in range(model.cfg.n_layers)}
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    counter.forward += 1
    return logits[:, -1].float(), {layer: cache[z_hook(layer)].clone() for layer in range(model.cfg.n_layers)}


@torch.no_grad()
def with_head(model, tokens: torch.Tensor, layer: int, h: int, value: torch.Tensor, counter: Counter) -> torch.Tensor:
    """Last-position logits with head (layer, h)'s z replaced by `value` [n, T, d_head]."""
    def put(act, hook):
        act[:, :, h, :] = value.to(act.dtype)
        return act

    counter.forward += 1
    return model.run_with_hooks(tokens, fwd_hooks=[(z_hook(layer), put)])[:, -1].float()


@dataclass
class Baseline:
    """Per pair: logit differences of the positive and negative runs, and whether each predicts the answer."""
    clean: torch.Tensor
    corrupt: torch.Tensor
    positive_correct: torch.Tensor
    negative_correct: torch.Tensor


def _gap(base: Baseline) -> float:
    return float(base.clean.mean() - base.corrupt.mean())


def patching_scores(model, task: TaskTokens, counter: Counter) -> tuple[Baseline, dict[str, dict]]:
    """(baseline, {head: {"patching": score, "mean_ablation": score}})."""
    heads = head_list(model)
    sums = {head_name(*h): {"patching": 0.0, "mean_ablation": 0.0} for h in heads}
    clean, corrupt, pos_ok, neg_ok = [], [], [], []
    dev = next(model.parameters()).device
    for pos, neg, ans, wrong in task.groups:
        pos, neg = pos.to(dev), neg.to(dev)
        lp, zp = run_z(model, pos, counter)
        ln, zn = run_z(model, neg, counter)
        ans, wrong = ans.to(lp.device), wrong.to(lp.device)
        clean.append(logit_diff(lp, ans, wrong).cpu())
        corrupt.append(logit_diff(ln, ans, wrong).cpu())
        pos_ok.append((lp.argmax(-1) == ans).cpu())
        neg_ok.append((ln.argmax(-1) == ans).cpu())
        for layer, h in heads:
            name = head_name(layer, h)
            sums[name]["patching"] += float(logit_diff(with_head(model, pos, layer, h, zn[layer][:, :, h], counter),
                                                       ans, wrong).sum())
            mean = torch.cat([zp[layer][:, :, h], zn[layer][:, :, h]]).mean(0, keepdim=True).expand_as(zp[layer][:, :, h])
            sums[name]["mean_ablation"] += float(logit_diff(with_head(model, pos, layer, h, mean, counter),
                                                            ans, wrong).sum())
    base = Baseline(torch.cat(clean), torch.cat(corrupt), torch.cat(pos_ok), torch.cat(neg_ok))
    n, gap = len(base.clean), _gap(base)
    clean_mean = float(base.clean.mean())
    scores = {name: {k: (clean_mean - v / n) / gap if abs(gap) > 1e-9 else float("nan") for k, v in s.items()}
              for name, s in sums.items()}
    return base, scores


def attribution_patching_scores(model, task: TaskTokens, base: Baseline, counter: Counter) -> dict[str, float]:
    """The first-order estimate of each head's patching score, from one forward and backward pass per group."""
    heads = head_list(model)
    est = {head_name(*h): 0.0 for h in heads}
    dev = next(model.parameters()).device
    for pos, neg, ans, wrong in task.groups:
        pos, neg = pos.to(dev), neg.to(dev)
        _, zn = run_z(model, neg, counter)
        kept: dict[int, torch.Tensor] = {}

        def keep(act, hook):
            act.retain_grad()
            kept[int(hook.name.split(".")[1])] = act
            return act

        with torch.enable_grad():
            logits = model.run_with_hooks(pos, fwd_hooks=[(z_hook(layer), keep) for layer in range(model.cfg.n_layers)])
            ld = logit_diff(logits[:, -1].float(), ans.to(logits.device), wrong.to(logits.device))
            ld.sum().backward()
        counter.forward += 1
        counter.backward += 1
        for layer, h in heads:
            z = kept[layer]
            delta = (zn[layer][:, :, h] - z.detach()[:, :, h]) * z.grad[:, :, h]
            est[head_name(layer, h)] += float(delta.sum())
        model.zero_grad(set_to_none=True)
    n, gap = len(base.clean), _gap(base)
    return {k: -v / n / gap if abs(gap) > 1e-9 else float("nan") for k, v in est.items()}
