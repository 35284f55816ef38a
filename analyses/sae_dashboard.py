"""Feature dashboards: data for all features of an SAE as one job, and one feature's dashboard from it.

- `sae_dashboards` (a job): runs the SAE over `n_tokens` tokens from the activation cache and stores
  every feature's panels (sae/dashboards.py) as tables; a second look is a disk read.
- `sae_feature`: one feature's dashboard (top contexts, quantile samples, histogram, logit effects,
  neighbours, co-firing) from those tables, plus its logit effect through the rest of the model:
  the feature is removed at each of its top contexts and the change in next-token logits averaged,
  with the loss effect on the true next token per context (sae_vis's hover numbers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import Result, bounded
from .registry import register
from .lm_inputs import token_strings
from .sae_browser_figures import (activation_histogram, contexts_heatmap, density_overview, feature_overview,
                                  logit_effects)
from .sae_source import SAESpec, check_width, load_for_model, sae_location

MAX_DASHBOARD_TOKENS = 4_000_000


@dataclass(frozen=True)
class SAEDashboardSpec(SAESpec, kind="sae_dashboards", title="SAE feature dashboards", page="sae_browser"):
    dataset: str = "zoo-stdlib"
    n_tokens: int = bounded(131_072, 1_000, MAX_DASHBOARD_TOKENS)
    seq_len: int = 128
    n_top: int = bounded(20, 1, 100)
    n_quantiles: int = bounded(5, 0, 20)
    per_quantile: int = bounded(5, 1, 20)

    def describe(self) -> str:
        return f"feature dashboards of {self.sae} on {self.model} ({self.n_tokens:,} tokens of {self.dataset})"


@dataclass(frozen=True)
class SAEFeatureSpec(SAEDashboardSpec, kind="sae_feature", title="SAE feature dashboard", page="sae_browser"):
    feature: int = 0

    def validate(self) -> None:
        super().validate()
        if self.feature < 0:
            raise BadInput(f"feature {self.feature} is out of range: feature indices start at 0")

    def dashboards(self) -> SAEDashboardSpec:
        names = {f.name for f in fields(SAEDashboardSpec)}
        return SAEDashboardSpec(**{k: v for k, v in self.to_dict().items() if k in names})

    def describe(self) -> str:
        return f"feature {self.feature} of {self.sae} on {self.model}"


def vocab_strings(lm) -> list[str]:
    return token_strings(lm, range(lm.model.cfg.d_vocab))


@register(SAEDashboardSpec, long=True)
def run_sae_dashboards(spec: SAEDashboardSpec, ctx) -> Result:
    from sae.dashboards import (activation_histograms, add_windows, cofiring, decoder_neighbours, encode_sparse,
                                example_rows, feature_stats, logit_table)
    from compute.hooks import to_residual

    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now

    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    lap("load")
    aset = ctx.workbench.activations.get_or_build(
        lm, spec.dataset, hook, spec.n_tokens, seq_len=spec.seq_len,
        progress=lambda f, m="": ctx.progress(0.3 * f, "caching activations"))
    acts = aset.load(spec.n_tokens)
    check_width(sae, acts.shape[1], hook, lm)
    seq_len = int(aset.meta["seq_len"])
    token_ids = aset.tokens().reshape(-1)[: len(acts)].numpy()
    lap("activations")
    try:
        sa = encode_sparse(sae, acts, progress=lambda f, m="": ctx.progress(0.3 + 0.3 * f, m),
                           pool=ctx.workbench.tasks, source=(sae_location(ctx.workbench, spec.sae), str(lm.device), aset))
    except ValueError as e:
        raise BadInput(str(e)) from None
    lap("encode")
    ctx.progress(0.6, "feature statistics")
    vocab = vocab_strings(lm)
    features = feature_stats(sa, token_ids, vocab)
    examples = add_windows(example_rows(sa, spec.n_top, spec.n_quantiles, spec.per_quantile), sa, token_ids,
                           seq_len, vocab)
    hist = activation_histograms(sa)
    lap("examples_and_histograms")
    ctx.progress(0.75, "decoder neighbours and co-firing")
    neighbours = decoder_neighbours(sae.W_dec.detach())
    cofire = cofiring(sa)
    lap("neighbours_and_cofiring")
    directions, logit_path = to_residual(sae.W_dec, lm.model, hook)
    tables = {"features": features, "examples": examples, "histograms": hist, "neighbours": neighbours,
              "cofiring": cofire}
    if directions is not None:
        tables["logits"] = logit_table(directions, lm.model.W_U.detach(), vocab)
    lap("logits")
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "d_sae": int(sae.cfg.d_sae),
               "d_in": int(sae.cfg.d_in), "n_tokens": int(len(acts)), "seq_len": seq_len, "dataset": spec.dataset,
               "firings": int(len(sa.token)), "dead_fraction": float(features.dead.mean()),
               "underused_fraction": float(features.underused.mean()), "mean_l0": len(sa.token) / max(len(acts), 1),
               "logit_path": logit_path if directions is not None else None, "seconds": timings}
    label = f"{spec.sae} at {hook}"
    figures = {"feature_overview": feature_overview(features, f"Features of {label}"),
               "density_histogram": density_overview(features, "Feature density")}
    ctx.progress(1.0, "done")
    return Result(SAEDashboardSpec.KIND, summary, tables, figures)


def with_labels(df: pd.DataFrame, features: pd.DataFrame, col: str = "other") -> pd.DataFrame:
    return df.merge(features[["feature", "label", "density"]].rename(columns={"feature": col, "label": f"{col}_label",
                                                                               "density": f"{col}_density"}),
                    on=col, how="left")


@torch.no_grad()
def effect_through_model(lm, sae, hook: str, feature: int, examples: pd.DataFrame, tokens: torch.Tensor,
                         seq_len: int, vocab: list[str], n: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    """Remove the feature (z_f · W_dec[f]) at each context's firing token; the mean change in the next-token
    logits there (clean − ablated: what the feature adds), and per context the loss effect on the true
    next token (ablated − clean CE: positive when the feature helps predict it)."""
    rows = torch.as_tensor(examples.token_index.to_numpy() // seq_len)
    pos = torch.as_tensor(examples.token_index.to_numpy() % seq_len)
    acts = torch.tensor(examples.activation.to_numpy(), dtype=torch.float32)
    batch = tokens[rows].to(lm.device)
    direction = sae.W_dec[feature].detach()

    def ablate(act, hook=None):
        shape = act.shape
        flat = act.reshape(shape[0], shape[1], -1).clone()
        idx = torch.arange(len(pos))
        flat[idx, pos] -= acts.to(flat.device, flat.dtype)[:, None] * direction.to(flat.device, flat.dtype)
        return flat.reshape(shape)

    clean = lm.model(batch).float()
    ablated = lm.model.run_with_hooks(batch, fwd_hooks=[(hook, ablate)]).float()
    idx = torch.arange(len(pos))
    lc, la = clean[idx, pos], ablated[idx, pos]
    delta = (lc - la).mean(0).cpu()
    nxt_pos = (pos + 1).clamp(max=seq_len - 1)
    true_next = batch[idx, nxt_pos]
    has_next = (pos + 1 < seq_len).cpu().numpy()
    ce = lambda lg: torch.nn.functional.cross_entropy(lg, true_next, reduction="none")  # noqa: E731
    loss_effect = np.where(has_next, (ce(la) - ce(lc)).cpu().numpy(), np.nan)
    out = []
    for side, (v, j) in (("top", delta.topk(n)), ("bottom", (-delta).topk(n))):
        v = v if side == "top" else -v
        out.append(pd.DataFrame({"side": side, "rank": np.arange(n), "token_id": j.numpy(), "logit": v.numpy(),
                                 "token": [vocab[int(i)] for i in j]}))
    return pd.concat(out, ignore_index=True), loss_effect


@register(SAEFeatureSpec)
def run_sae_feature(spec: SAEFeatureSpec, ctx) -> Result:
    dash = ctx.require(spec.dashboards(), share=(0.0, 0.8))  # stored once; then a disk read
    feats = dash.tables["features"]
    d_sae = len(feats)
    f = spec.feature
    if not 0 <= f < d_sae:
        raise BadInput(f"feature {f} is out of range: this SAE has {d_sae} features (0–{d_sae - 1})")
    row = feats.iloc[f]
    ex = dash.tables["examples"]
    ex = ex[ex.feature == f].reset_index(drop=True)
    top = ex[ex.group == "top"].reset_index(drop=True)
    hist = dash.tables["histograms"]
    hist = hist[hist.feature == f].reset_index(drop=True)
    logits = dash.tables.get("logits")
    direct = logits[logits.feature == f].reset_index(drop=True) if logits is not None else None
    neighbours = with_labels(dash.tables["neighbours"].query("feature == @f"), feats).reset_index(drop=True)
    cofire = with_labels(dash.tables["cofiring"].query("feature == @f"), feats).reset_index(drop=True)
    total = None
    s = dash.summary
    if len(top):
        lm = ctx.model(spec.model)
        sae, hook = load_for_model(ctx.workbench, spec.sae, lm, s["hook"])
        aset = ctx.workbench.activations.get_or_build(lm, s["dataset"], hook, s["n_tokens"], seq_len=s["seq_len"])
        total, loss_effect = effect_through_model(lm, sae, hook, f, top, aset.tokens(), s["seq_len"],
                                                  vocab_strings(lm))
        top["loss_effect"] = loss_effect
        ex = ex.merge(top[["group", "rank", "loss_effect"]], on=["group", "rank"], how="left")
    summary = {"model": spec.model, "sae": spec.sae, "hook": s["hook"], "feature": f, "d_sae": d_sae,
               "label": row.label, "density": float(row.density), "mean_activation": float(row.mean_activation),
               "max_activation": float(row.max_activation), "fires": int(row.fires), "dead": bool(row.dead),
               "underused": bool(row.underused), "n_tokens": s["n_tokens"], "logit_path": s.get("logit_path")}
    tables = {"examples": ex, "histogram": hist, "neighbours": neighbours, "cofiring": cofire}
    if direct is not None:
        tables["logits_direct"] = direct
    if total is not None:
        tables["logits_through_model"] = total
    figures = {"activation_histogram": activation_histogram(hist, f, float(row.density)),
               "logit_effects": logit_effects(direct, total, f),
               "top_contexts": contexts_heatmap(top, f, "top-activating contexts")}
    quant = ex[ex.group != "top"]
    if len(quant):
        figures["quantile_contexts"] = contexts_heatmap(quant, f, "samples from activation quantiles")
    return Result(SAEFeatureSpec.KIND, summary, tables, figures)
