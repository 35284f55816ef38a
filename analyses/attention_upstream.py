"""Recursive DFA one step back (`attention_upstream`): which features of a residual-stream SAE, at which source
positions, feed an attention-output feature through the value path. The method, and what is exact and what is
approximate, in circuits/upstream.py; the summary states both and measures the approximate part."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .attention_features import AttentionDFASpec, attention_sae, head_names
from .attention_figures import upstream_bars, upstream_waterfall
from .base import Result, bounded
from .lm_inputs import prompt_tokens, token_strings
from .registry import register
from .sae_source import SAERef, load_for_model

EXACT = ("the parts add up to the feature's pre-activation with the layer's attention pattern and LN1 scale held "
         "at their values on this prompt")
APPROXIMATE = ("the pattern (QK path) and the LN1 scale also depend on the upstream features: a term is the loss "
               "with both held; recomputed_change is the loss when they are recomputed (an ablation)")
RECOMPUTED = 10  # top terms whose removal is rerun with the pattern and scale recomputed


def upstream_hooks(attention_hook: str) -> tuple[str, ...]:
    """The residual-stream hooks an upstream SAE of this attention-output hook may read."""
    from circuits.dfa import hook_layer
    from circuits.upstream import residual_hooks

    return residual_hooks(hook_layer(attention_hook))


@dataclass(frozen=True)
class AttentionUpstreamSpec(AttentionDFASpec, kind="attention_upstream", title="Recursive DFA",
                            page="attention_features"):
    upstream_sae: str = ""  # a residual-stream SAE on the stream entering the attention layer
    n_terms: int = bounded(30, 1, 500)

    def validate(self) -> None:
        super().validate()
        if not self.upstream_sae.strip():
            raise BadInput("no upstream SAE given: recursive DFA needs a residual-stream SAE of the same model on "
                           "the stream entering the attention layer (blocks.L.hook_resid_pre)")

    def depends_on(self):
        return super().depends_on() + (SAERef(self.upstream_sae),)

    def dfa(self) -> AttentionDFASpec:
        names = {f.name for f in fields(AttentionDFASpec)}
        return AttentionDFASpec(**{k: v for k, v in self.to_dict().items() if k in names})

    def describe(self) -> str:
        return f"recursive DFA of attention feature {self.feature} of {self.sae} through {self.upstream_sae}"


@register(AttentionUpstreamSpec)
def run_attention_upstream(spec: AttentionUpstreamSpec, ctx) -> Result:
    from circuits.upstream import check_upstream_hook, removal_change, upstream_terms, value_path

    dfa = ctx.require(spec.dfa()).summary
    lm, _, hook, layer, enc = attention_sae(ctx, spec)
    up, up_hook = load_for_model(ctx.workbench, spec.upstream_sae, lm)
    check_upstream_hook(up_hook, layer)
    if up.cfg.d_in != lm.model.cfg.d_model:
        raise BadInput(f"the upstream SAE reads {up.cfg.d_in} dimensions but {lm.id}'s residual stream has "
                       f"{lm.model.cfg.d_model}")
    n_heads = int(lm.model.cfg.n_heads)
    names = head_names(layer, n_heads)
    dest, f = int(dfa["destination"]), spec.feature
    tokens = prompt_tokens(lm, spec.prompt)
    weight = enc.per_head(n_heads)[:, :, f]  # [heads, d_head]
    path, frozen = value_path(lm.model, layer, tokens, weight, dest)
    terms = upstream_terms(path, up)
    parts = terms.parts()
    bias = float(enc.bias[f])
    total = sum(parts.values()) + bias
    error = abs(total - dfa["pre_activation"])
    strs = token_strings(lm, tokens[0].tolist())

    per = terms.features.sum(0)  # [pos, d_up], summed over heads
    src, feat = torch.nonzero(terms.acts > 0, as_tuple=True)
    order = per[src, feat].abs().argsort(descending=True)[: spec.n_terms]
    src, feat = src[order], feat[order]
    W_dec = up.W_dec.float().cpu()
    recomputed = [removal_change(frozen, weight, dest, int(s), terms.acts[s, j] * W_dec[j], hold=False)
                  if i < RECOMPUTED else np.nan for i, (s, j) in enumerate(zip(src, feat))]
    held = (removal_change(frozen, weight, dest, int(src[0]), terms.acts[src[0], feat[0]] * W_dec[feat[0]], hold=True)
            if len(src) else 0.0)
    rows = pd.DataFrame({"upstream_feature": feat.numpy(), "source": src.numpy(),
                         "source_token": [strs[int(s)] for s in src], "activation": terms.acts[src, feat].numpy(),
                         "contribution": per[src, feat].numpy(), "recomputed_change": recomputed,
                         "top_head": [names[int(h)] for h in terms.features[:, src, feat].abs().argmax(0)]
                         if len(src) else [],
                         **{names[h]: terms.features[h, src, feat].numpy() for h in range(n_heads)}})
    by_feature = pd.DataFrame({"upstream_feature": np.arange(per.shape[1]), "contribution": per.sum(0).numpy(),
                               "sources": (terms.acts > 0).sum(0).numpy()})
    by_feature = by_feature[by_feature.sources > 0]
    by_feature = by_feature.reindex(by_feature.contribution.abs().sort_values(ascending=False).index).head(spec.n_terms)
    by_source = pd.DataFrame({"source": np.arange(dest + 1), "token": strs[: dest + 1],
                              "upstream_features": per[: dest + 1].sum(1).numpy(),
                              "decoder_bias": terms.decoder_bias.sum(0)[: dest + 1].numpy(),
                              "error": terms.error.sum(0)[: dest + 1].numpy()})
    parts_table = pd.DataFrame({"part": [*parts, "encoder constant", "pre-activation"],
                                "value": [*parts.values(), bias, dfa["pre_activation"]]})
    top = rows.iloc[0] if len(rows) else None
    rerun = rows.head(RECOMPUTED)
    agreement = (float(np.corrcoef(rerun.contribution, rerun.recomputed_change)[0, 1]) if len(rerun) > 2
                 and rerun.contribution.std() > 0 and rerun.recomputed_change.std() > 0 else None)
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "upstream_sae": spec.upstream_sae,
               "upstream_hook": up_hook, "feature": f, "destination": dest, "destination_token": strs[dest],
               "pre_activation": float(dfa["pre_activation"]), "parts": {**parts, "encoder constant": bias},
               "max_error": float(error), "linearity_error": terms.linearity_error,
               "upstream_share": float(abs(parts["upstream features"]) / max(sum(abs(v) for v in parts.values()), 1e-12)),
               "exact": EXACT, "approximate": APPROXIMATE,
               "recomputed_correlation": agreement,  # Pearson r, held terms vs recomputed removals, top terms
               "recomputed_same_sign": float((np.sign(rerun.contribution) == np.sign(rerun.recomputed_change)).mean())
               if len(rerun) else None,
               "top_term": None if top is None else {
                   "upstream_feature": int(top.upstream_feature), "source": int(top.source),
                   "contribution": float(top.contribution), "held_change": float(held),
                   "recomputed_change": float(top.recomputed_change)}}
    figures = {"parts": upstream_waterfall(parts_table, f, dest),
               "terms": upstream_bars(rows, names, f, dest)}
    return Result(AttentionUpstreamSpec.KIND, summary, {"terms": rows, "features": by_feature, "sources": by_source,
                                                        "parts": parts_table}, figures)
