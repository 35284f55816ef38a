"""Quality figures of a model: what `workbench zoo-check` reports and the Models page can run as a job.

- Language models: the induction test (Olsson et al. 2022): sequences of uniformly random tokens
  repeated twice. A model with induction heads predicts the second copy far better than the first.
  Per-head induction score = mean attention from each token of the second copy to the token that
  followed its previous occurrence (TransformerLens's definition, offset seq_len - 1). Per-head
  previous-token score = mean attention from each token to the one just before it: an induction head
  reads what a previous-token head in an earlier layer wrote, so a model without one cannot have
  induction heads, and the table says where that part of the circuit is missing. Plus the loss on
  held-out text (the zoo corpus's held-out files).
- A folder's task.json can name a task with its own check: modular addition (accuracy on the
  held-out pairs) and scikit-learn digits (held-out accuracy, confusion matrix).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from compute.datasets import token_rows
from compute.errors import BadInput

from .base import Result, Spec, register


@dataclass(frozen=True)
class ModelCheckSpec(Spec):
    KIND = "model_check"
    TITLE = "Model check: induction, held-out loss, task accuracy"
    RESULT_VERSION = 2  # 2: previous-token scores per head
    n_sequences: int = 32
    repeat_len: int = 64
    eval_tokens: int = 16384
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.n_sequences <= 1024:
            raise BadInput("n_sequences must be between 1 and 1024")
        if not 4 <= self.repeat_len <= 4096:
            raise BadInput("repeat_len must be between 4 and 4096")
        if not 0 <= self.eval_tokens <= 10_000_000:
            raise BadInput("eval_tokens must be between 0 and 10,000,000")


def task_of(lm) -> dict:
    if lm.info.path and (Path(lm.info.path) / "task.json").exists():
        return json.loads((Path(lm.info.path) / "task.json").read_text())
    return {"task": "language_modeling" if lm.kind == "lm" else "unknown"}


def repeated_random_tokens(n_seq: int, half: int, vocab: int, exclude: set[int], seed: int, bos: int | None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([i for i in range(vocab) if i not in exclude])
    rnd = allowed[torch.randint(0, len(allowed), (n_seq, half), generator=g)]
    parts = ([torch.full((n_seq, 1), bos)] if bos is not None else []) + [rnd, rnd]
    return torch.cat(parts, dim=1)


def induction_test(lm, n_seq: int, half: int, seed: int) -> dict:
    bridge, tok = lm.model, lm.tokenizer
    n_ctx = lm.n_ctx
    offset = 1 if tok.bos_token_id is not None else 0
    half = min(half, (n_ctx - offset) // 2)
    special = set(tok.all_special_ids)
    x = repeated_random_tokens(n_seq, half, bridge.cfg.d_vocab, special, seed, tok.bos_token_id).to(lm.device)
    names = {f"blocks.{l}.attn.hook_pattern" for l in range(bridge.cfg.n_layers)}
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(x, names_filter=lambda n: n in names)
        per_tok = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), x[:, 1:].flatten(),
                                                    reduction="none").view(n_seq, -1).cpu()
    # per_tok[:, j] is the loss of predicting position j+1. First copy: positions offset+1 .. offset+half-1
    # (its first token has no context); second copy: positions offset+half+1 .. offset+2*half-1
    # (the second copy's first token follows the first copy's last one, which is random too).
    first = per_tok[:, offset : offset + half - 1]
    second = per_tok[:, offset + half : offset + 2 * half - 1]
    patterns = [cache[f"blocks.{l}.attn.hook_pattern"] for l in range(bridge.cfg.n_layers)]
    scores, previous = head_scores(patterns, offset, half)
    return {"half": half, "per_position_loss": per_tok.mean(0).numpy(), "first": float(first.mean()),
            "second": float(second.mean()), "scores": scores, "previous": previous, "offset": offset}


def head_scores(patterns: list[torch.Tensor], offset: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """(induction, previous-token) score per layer and head from attention patterns [batch, head, query, key]
    of `offset` leading tokens followed by two copies of `half` random tokens. Induction: attention from each
    second-copy token to the token after its first occurrence. Previous token: attention from every token
    after the first random one to the token just before it."""
    induction = np.zeros((len(patterns), patterns[0].shape[1]))
    previous = np.zeros_like(induction)
    q = torch.arange(offset + half, offset + 2 * half)
    qp = torch.arange(offset + 1, offset + 2 * half)
    for l, pat in enumerate(patterns):
        pat = pat.float()
        induction[l] = pat[:, :, q, q - half + 1].mean(dim=(0, 2)).cpu().numpy()
        previous[l] = pat[:, :, qp, qp - 1].mean(dim=(0, 2)).cpu().numpy()
    return induction, previous


def held_out_loss(lm, n_tokens: int, seq_len: int = 128) -> float | None:
    if n_tokens <= 0:
        return None
    tok = lm.tokenizer
    seq_len = min(seq_len, lm.n_ctx)
    rows = token_rows(tok, "zoo-stdlib-heldout", seq_len, max(1, n_tokens // seq_len), tok.bos_token_id)
    losses = []
    with torch.no_grad():
        for i in range(0, len(rows), 16):
            b = rows[i : i + 16].to(lm.device)
            logits = lm.model(b)
            losses.append(torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), b[:, 1:].flatten(),
                                                            reduction="none").cpu())
    return float(torch.cat(losses).mean())


def head_heatmap(scores: np.ndarray, colorscale: str, title: str) -> go.Figure:
    """A [layer, head] score in [0, 1] as a labelled heatmap."""
    L, H = scores.shape
    fig = go.Figure(go.Heatmap(z=scores, x=[f"H{h}" for h in range(H)], y=[f"L{l}" for l in range(L)],
                               colorscale=colorscale, zmin=0, zmax=1, texttemplate="%{z:.2f}",
                               hovertemplate="%{y}%{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=160 + 50 * L)
    return fig


def _check_lm(spec: ModelCheckSpec, lm, ctx) -> Result:
    ctx.progress(0.1, "induction test")
    ind = induction_test(lm, spec.n_sequences, spec.repeat_len, spec.seed)
    ctx.progress(0.5, "held-out loss")
    hol = held_out_loss(lm, spec.eval_tokens)
    L, H = ind["scores"].shape
    heads = pd.DataFrame([{"layer": l, "head": h, "head_name": f"L{l}H{h}", "induction_score": float(ind["scores"][l, h]),
                           "previous_token_score": float(ind["previous"][l, h])}
                          for l in range(L) for h in range(H)])
    best = heads.sort_values("induction_score", ascending=False).iloc[0]
    best_prev = heads.sort_values("previous_token_score", ascending=False).iloc[0]
    pos = pd.DataFrame({"position": np.arange(1, len(ind["per_position_loss"]) + 1),
                        "loss": ind["per_position_loss"]})
    pos["copy"] = np.where(pos.position <= ind["offset"] + ind["half"], "first", "second")
    fig_scores = head_heatmap(ind["scores"], "Reds",
                              "Induction score per head (attention to the token after the previous occurrence)")
    fig_previous = head_heatmap(ind["previous"], "Blues",
                                "Previous-token score per head (attention to the token just before)")
    fig_loss = go.Figure(go.Scatter(x=pos.position, y=pos.loss, mode="lines", name="loss"))
    fig_loss.add_vline(x=ind["offset"] + ind["half"] + 0.5, line_dash="dash", annotation_text="second copy starts")
    fig_loss.update_layout(title=f"Loss per position on random tokens repeated twice (n={spec.n_sequences})",
                           xaxis_title="position", yaxis_title="cross-entropy (nats)")
    summary = {"model": spec.model, "task": "language_modeling", "repeat_first_loss": ind["first"],
               "repeat_second_loss": ind["second"], "induction_loss_drop": ind["first"] - ind["second"],
               "repeat_len": ind["half"], "top_induction_head": best["head_name"],
               "top_induction_score": float(best["induction_score"]),
               "top_previous_token_head": best_prev["head_name"],
               "top_previous_token_score": float(best_prev["previous_token_score"]),
               "heads_above_0.3": int((heads.induction_score > 0.3).sum()), "held_out_loss": hol,
               "uniform_loss": float(np.log(lm.model.cfg.d_vocab))}
    ctx.progress(1.0, "done")
    return Result(ModelCheckSpec.KIND, summary, {"induction_heads": heads, "repeat_loss_by_position": pos},
                  {"induction_scores": fig_scores, "previous_token_scores": fig_previous, "repeat_loss": fig_loss})


def modadd_pairs(task: dict) -> tuple[np.ndarray, np.ndarray]:
    """(train pairs, test pairs) of the modular-addition split recorded in task.json."""
    p = int(task["p"])
    pairs = np.array([(a, b) for a in range(p) for b in range(p)])
    perm = np.random.default_rng(int(task["split_seed"])).permutation(len(pairs))
    n_train = int(round(task["train_fraction"] * len(pairs)))
    return pairs[perm[:n_train]], pairs[perm[n_train:]]


def _check_modadd(spec: ModelCheckSpec, lm, task: dict) -> Result:
    p = int(task["p"])
    tok = lm.tokenizer
    num_ids = tok.convert_tokens_to_ids([str(i) for i in range(p)])
    eq = tok.convert_tokens_to_ids("=")
    rows = []
    for split, pairs in zip(("train", "test"), modadd_pairs(task)):
        x = torch.tensor([[num_ids[a], num_ids[b], eq] for a, b in pairs], device=lm.device)
        with torch.no_grad():
            logits = torch.cat([lm.model(x[i : i + 4096])[:, -1] for i in range(0, len(x), 4096)]).float()
        num_logits = logits[:, num_ids]
        pred = num_logits.argmax(-1).cpu().numpy()
        target = (pairs[:, 0] + pairs[:, 1]) % p
        loss = torch.nn.functional.cross_entropy(num_logits.cpu(), torch.tensor(target)).item()
        rows.append({"split": split, "n": len(pairs), "accuracy": float((pred == target).mean()), "loss": loss})
    df = pd.DataFrame(rows)
    fig = go.Figure(go.Bar(x=df.split, y=df.accuracy, text=[f"{a:.2%}" for a in df.accuracy], textposition="auto"))
    fig.update_layout(title=f"(a + b) mod {p}: accuracy", yaxis_range=[0, 1.05])
    test = df[df.split == "test"].iloc[0]
    summary = {"model": spec.model, "task": "modular_addition", "p": p, "test_accuracy": float(test.accuracy),
               "train_accuracy": float(df[df.split == "train"].iloc[0].accuracy), "test_loss": float(test.loss)}
    return Result(ModelCheckSpec.KIND, summary, {"accuracy": df}, {"accuracy": fig})


def digits_split(task: dict):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, d.target, test_size=task["test_fraction"], random_state=int(task["split_seed"]),
                            stratify=d.target)


def _check_digits(spec: ModelCheckSpec, lm, task: dict) -> Result:
    _, x_test, _, y_test = digits_split(task)
    with torch.no_grad():
        pred = lm.model(torch.from_numpy(x_test).to(lm.device)).argmax(-1).cpu().numpy()
    acc = float((pred == y_test).mean())
    cm = pd.crosstab(pd.Series(y_test, name="true"), pd.Series(pred, name="predicted")).reindex(
        index=range(10), columns=range(10), fill_value=0)
    fig = go.Figure(go.Heatmap(z=cm.values, x=[str(c) for c in cm.columns], y=[str(i) for i in cm.index],
                               colorscale="Blues", texttemplate="%{z}"))
    fig.update_layout(title=f"Held-out confusion matrix (accuracy {acc:.2%})", xaxis_title="predicted",
                      yaxis_title="true")
    fig.update_yaxes(autorange="reversed")
    table = cm.reset_index().melt(id_vars="true", var_name="predicted", value_name="count")
    summary = {"model": spec.model, "task": "sklearn_digits", "test_accuracy": acc, "n_test": int(len(y_test))}
    return Result(ModelCheckSpec.KIND, summary, {"confusion": table}, {"confusion": fig})


@register(ModelCheckSpec, long=True)
def run_model_check(spec: ModelCheckSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    task = task_of(lm)
    if task["task"] == "modular_addition":
        return _check_modadd(spec, lm, task)
    if task["task"] == "sklearn_digits":
        return _check_digits(spec, lm, task)
    if lm.kind == "lm":
        return _check_lm(spec, lm, ctx)
    raise BadInput(f"no quality check is defined for {spec.model} (task {task['task']})")
