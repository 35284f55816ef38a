"""Attention features: an SAE trained on `blocks.L.attn.hook_z` (heads concatenated), read per head.

- `attention_features` (a job): for every feature, its weight share and activation share per head, its
  direct feature attribution (DFA) by source position on its top-activating contexts, and its family
  (induction / short-range / long-range context) with the evidence; per head its top features and how many
  families they fall in (polysemanticity).
- `attention_feature`: one feature from that job: heads, family evidence, DFA over its top contexts.
- `attention_dfa`: DFA of one feature on a researcher's prompt, per (head, destination, source), exact: the
  terms plus the encoder's bias add up to the feature's pre-activation (stated in the summary).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .attention_figures import dfa_heatmaps, family_bars, feature_head_heatmap, feature_heads_bar, source_bars
from .base import Result, bounded
from .lm_inputs import prompt_tokens, token_strings
from .registry import register
from .sae_source import SAESpec, check_width, load_for_model

MAX_TOKENS = 1_048_576
FAMILIES = ("induction", "short-range context", "long-range context")


@dataclass(frozen=True)
class AttentionFeaturesSpec(SAESpec, kind="attention_features", title="Attention features",
                            page="attention_features"):
    dataset: str = "zoo-stdlib"
    n_tokens: int = bounded(65_536, 1_000, MAX_TOKENS)
    seq_len: int = 128
    n_top: int = bounded(10, 1, 50)  # top-activating contexts per feature read for its family
    induction_share: float = bounded(0.4, 0.0, 1.0)
    short_window: int = bounded(3, 0, 4096)
    short_share: float = bounded(0.5, 0.0, 1.0)
    top_per_head: int = bounded(10, 1, 100)

    def rule(self):
        from circuits.dfa import FamilyRule

        return FamilyRule(self.induction_share, self.short_window, self.short_share)

    def describe(self) -> str:
        return f"attention features of {self.sae} on {self.model} ({self.n_tokens:,} tokens of {self.dataset})"


@dataclass(frozen=True)
class AttentionFeatureSpec(AttentionFeaturesSpec, kind="attention_feature", title="Attention feature",
                           page="attention_features"):
    feature: int = bounded(0, 0, None)

    def features(self) -> AttentionFeaturesSpec:
        names = {f.name for f in fields(AttentionFeaturesSpec)}
        return AttentionFeaturesSpec(**{k: v for k, v in self.to_dict().items() if k in names})

    def describe(self) -> str:
        return f"attention feature {self.feature} of {self.sae} on {self.model}"


@dataclass(frozen=True)
class AttentionDFASpec(SAESpec, kind="attention_dfa", title="Direct feature attribution", page="attention_features"):
    prompt: str = ""
    feature: int = bounded(0, 0, None)
    destination: int = bounded(-1, -1, None)  # -1: where the feature's pre-activation is largest

    def validate(self) -> None:
        super().validate()
        from .lm_inputs import check_prompt_text

        check_prompt_text(self.prompt)


def attention_sae(ctx, spec):
    from circuits.dfa import hook_layer
    from circuits.encoder import affine_encoder

    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    layer = hook_layer(hook)
    return lm, sae, hook, layer, affine_encoder(sae)


def head_names(layer: int, n_heads: int) -> list[str]:
    return [f"L{layer}H{h}" for h in range(n_heads)]


@register(AttentionFeaturesSpec, long=True)
def run_attention_features(spec: AttentionFeaturesSpec, ctx) -> Result:
    from circuits.dfa import attention_run, classify, dfa_at, source_shares
    from circuits.encoder import check_affine
    from circuits.heads import activation_contributions, shares, weight_shares
    from sae.dashboards import encode_sparse, example_rows, feature_stats

    from .sae_dashboard import vocab_strings

    lm, sae, hook, layer, enc = attention_sae(ctx, spec)
    n_heads = int(lm.model.cfg.n_heads)
    names = head_names(layer, n_heads)
    aset = ctx.workbench.activations.get_or_build(lm, spec.dataset, hook, spec.n_tokens, seq_len=spec.seq_len,
                                                  progress=lambda f, m="": ctx.progress(0.3 * f, "caching hook_z"))
    acts = aset.load(spec.n_tokens)
    check_width(sae, acts.shape[1], hook, lm)
    affine_error = check_affine(sae, enc, acts)
    seq_len = int(aset.meta["seq_len"])
    rows_all = aset.tokens()
    token_ids = rows_all.reshape(-1)[: len(acts)].numpy()
    ctx.progress(0.3, "running the SAE")
    try:
        sa = encode_sparse(sae, acts)
    except ValueError as e:
        raise BadInput(str(e)) from None
    vocab = vocab_strings(lm)
    stats = feature_stats(sa, token_ids, vocab)
    ctx.progress(0.45, "head shares")
    w_share = weight_shares(sae.W_dec, n_heads).numpy()
    contrib, _ = activation_contributions(sae, enc, acts, n_heads)
    a_share = shares(contrib).numpy()

    ctx.progress(0.6, "DFA on the top contexts")
    ex = example_rows(sa, spec.n_top, 0, 1)
    rows = (ex.token_index.to_numpy() // seq_len).astype(np.int64)
    dests = (ex.token_index.to_numpy() % seq_len).astype(np.int64)
    used, local = np.unique(rows, return_inverse=True)
    run = attention_run(lm.model, layer, rows_all[torch.as_tensor(used)].to(lm.device))
    feats = ex.feature.to_numpy().astype(np.int64)
    dfa = dfa_at(run, enc, local, dests, feats)  # [examples, heads, src]
    # exactness on these examples: terms + bias = the pre-activation of the cached z
    at = torch.as_tensor(ex.token_index.to_numpy().copy())
    f_idx = torch.as_tensor(feats)
    pre = (acts[at].float() * enc.weight[:, f_idx].T).sum(1) + enc.bias[f_idx]
    dfa_error = float((dfa.sum((1, 2)) + enc.bias[f_idx] - pre).abs().max()) if len(ex) else 0.0
    rule = spec.rule()
    ev = source_shares(dfa, run.tokens[torch.as_tensor(local)], dests, rule)
    head_mass = dfa.abs().sum(2)
    head_mass = (head_mass / head_mass.sum(1, keepdim=True).clamp_min(1e-12)).numpy()
    top_src = dfa.abs().sum(1).argmax(1).numpy() if len(ex) else np.zeros(0, np.int64)
    examples = pd.DataFrame({
        "feature": feats, "rank": ex["rank"].to_numpy(), "row": rows, "destination": dests,
        "token": [vocab[token_ids[r * seq_len + d]] for r, d in zip(rows, dests)],
        "activation": ex.activation.to_numpy(), **{k: v for k, v in ev.items()},
        "top_source": top_src, "top_source_token": [vocab[token_ids[r * seq_len + s]] for r, s in zip(rows, top_src)],
        "top_dfa_head": [names[i] for i in head_mass.argmax(1)] if len(ex) else []})
    per_feature = examples.groupby("feature")[["induction_share", "short_share", "mean_distance"]].mean()

    live = ~stats.dead.to_numpy()
    table = stats[["feature", "label", "density", "fires", "max_activation", "dead"]].copy()
    table = table.join(per_feature, on="feature")
    table["long_share"] = 1 - table.induction_share - table.short_share
    table["family"] = [classify(i, s, rule) if ok else "dead" for i, s, ok in
                       zip(table.induction_share.fillna(0), table.short_share.fillna(0), live)]
    table["top_head"] = [names[i] for i in np.nan_to_num(a_share, nan=-np.inf).argmax(1)]
    table["top_head_activation_share"] = np.nanmax(np.where(np.isnan(a_share), -np.inf, a_share), 1)
    table.loc[~live, ["top_head", "top_head_activation_share"]] = [None, np.nan]
    table["weight_top_head"] = [names[i] for i in w_share.argmax(1)]
    table["top_head_weight_share"] = w_share.max(1)
    for h, name in enumerate(names):
        table[f"weight_{name}"] = w_share[:, h]
        table[f"activation_{name}"] = a_share[:, h]

    heads = []
    lv = table[live]
    for h, name in enumerate(names):
        top = lv.sort_values(f"weight_{name}", ascending=False).head(spec.top_per_head)
        fam = top.family.value_counts()
        heads.append({"head": name, "features_led": int((lv.top_head == name).sum()),
                      "top_features": ", ".join(map(str, top.feature)),
                      "families_in_top": int(len(fam)), "polysemantic": bool(len(fam) > 1),
                      **{f"top_{f}": int(fam.get(f, 0)) for f in FAMILIES}})
    heads = pd.DataFrame(heads)
    fam_by_head = (lv.groupby(["top_head", "family"]).size().rename("features").reset_index()
                   .rename(columns={"top_head": "head"}))
    fam_by_head.insert(0, "layer", layer)
    counts = lv.family.value_counts()
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "layer": layer, "n_heads": n_heads,
               "d_sae": int(sae.cfg.d_sae), "n_tokens": int(len(acts)), "seq_len": seq_len, "dataset": spec.dataset,
               "live_features": int(live.sum()), **{f"{f.split()[0].replace('-', '_')}_features": int(counts.get(f, 0)) for f in FAMILIES},
               "rule": {"induction": f"≥ {rule.induction_share:.0%} of |DFA| on sources right after an earlier "
                                     f"occurrence of the destination token",
                        "short-range context": f"else ≥ {rule.short_share:.0%} within {rule.short_window} tokens",
                        "long-range context": "otherwise"},
               "dfa_max_error": dfa_error, "encoder_affine_error": affine_error,
               "polysemantic_heads": int(heads.polysemantic.sum())}
    figures = {"feature_head_weights": feature_head_heatmap(table[live], names, "weight",
                                                            f"Decoder-norm share per head ({hook})"),
               "feature_head_activations": feature_head_heatmap(table[live], names, "activation",
                                                                f"Activation share per head ({hook})"),
               "families_by_head": family_bars(fam_by_head, f"Feature families by top head, layer {layer}")}
    ctx.progress(1.0, "done")
    return Result(AttentionFeaturesSpec.KIND, summary,
                  {"features": table, "heads": heads, "families": fam_by_head, "examples": examples}, figures)


@register(AttentionFeatureSpec)
def run_attention_feature(spec: AttentionFeatureSpec, ctx) -> Result:
    base = ctx.require(spec.features(), share=(0.0, 0.9))
    feats = base.tables["features"]
    f = spec.feature
    if not 0 <= f < len(feats):
        raise BadInput(f"feature {f} is out of range: this SAE has {len(feats)} features (0–{len(feats) - 1})")
    row = feats.iloc[f]
    s = base.summary
    names = head_names(s["layer"], s["n_heads"])
    heads = pd.DataFrame({"head": names, "weight_share": [row[f"weight_{n}"] for n in names],
                          "activation_share": [row[f"activation_{n}"] for n in names]})
    ex = base.tables["examples"]
    ex = ex[ex.feature == f].reset_index(drop=True)
    summary = {"model": spec.model, "sae": spec.sae, "hook": s["hook"], "feature": f, "label": row.label,
               "family": row.family, "density": float(row.density), "top_head": row.top_head,
               "induction_share": None if pd.isna(row.induction_share) else float(row.induction_share),
               "short_share": None if pd.isna(row.short_share) else float(row.short_share),
               "mean_distance": None if pd.isna(row.mean_distance) else float(row.mean_distance),
               "rule": s["rule"]}
    figures = {"heads": feature_heads_bar(heads, s["layer"], f)}
    if len(ex):
        figures["sources"] = source_bars(ex, f)
    return Result(AttentionFeatureSpec.KIND, summary, {"heads": heads, "examples": ex}, figures)


@register(AttentionDFASpec)
def run_attention_dfa(spec: AttentionDFASpec, ctx) -> Result:
    from circuits.dfa import attention_run, dfa_matrix
    from circuits.encoder import pre_activation

    lm, sae, hook, layer, enc = attention_sae(ctx, spec)
    if spec.feature >= sae.cfg.d_sae:
        raise BadInput(f"feature {spec.feature} is out of range: this SAE has {sae.cfg.d_sae} features")
    tokens = prompt_tokens(lm, spec.prompt)
    run = attention_run(lm.model, layer, tokens)
    n_heads = run.pattern.shape[1]
    names = head_names(layer, n_heads)
    z = run.z[0]
    check_width(sae, z.shape[1], hook, lm)
    pre = pre_activation(sae, z)[:, spec.feature].cpu()
    with torch.no_grad():
        act = sae.encode(z.to(sae.W_dec.device, sae.W_dec.dtype))[:, spec.feature].float().cpu()
    n = len(z)
    dest = int(pre.argmax()) if spec.destination < 0 else spec.destination
    if dest >= n:
        raise BadInput(f"destination {dest} is past the prompt's {n} tokens (0–{n - 1})")
    M = dfa_matrix(run, enc, 0, spec.feature)  # [heads, dest, src]
    bias = float(enc.bias[spec.feature])
    err = float((M.sum((0, 2)) + bias - pre).abs().max())
    strs = token_strings(lm, tokens[0].tolist())
    at = M[:, dest, :]
    rows = [{"head": names[h], "source": s, "source_token": strs[s], "dfa": float(at[h, s]),
             "attention": float(run.pattern[0, h, dest, s])} for h in range(n_heads) for s in range(dest + 1)]
    per_source = pd.DataFrame({"source": np.arange(dest + 1), "token": strs[: dest + 1],
                               "dfa": at[:, : dest + 1].sum(0).numpy()})
    per_head = pd.DataFrame({"head": names, "dfa": at.sum(1).numpy()})
    tokens_table = pd.DataFrame({"position": np.arange(n), "token": strs, "pre_activation": pre.numpy(),
                                 "activation": act.numpy(), "dfa_sum_plus_bias": (M.sum((0, 2)) + bias).numpy()})
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "feature": spec.feature, "destination": dest,
               "destination_token": strs[dest], "pre_activation": float(pre[dest]), "activation": float(act[dest]),
               "bias": bias, "dfa_total": float(at.sum()), "dfa_max_error": err,
               "exact": "DFA terms + bias = the SAE's pre-activation (attention pattern frozen)",
               "top_source": int(per_source.dfa.abs().idxmax()), "top_head": names[int(per_head.dfa.abs().idxmax())]}
    figures = {"dfa": dfa_heatmaps(M.numpy(), strs, names, spec.feature, dest)}
    return Result(AttentionDFASpec.KIND, summary, {"terms": pd.DataFrame(rows), "sources": per_source,
                                                   "heads": per_head, "tokens": tokens_table}, figures)
