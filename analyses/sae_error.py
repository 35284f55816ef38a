"""SAE error analysis ("dark matter", Engels et al. 2024): how much of an SAE's error is a linear
function of its input, and how much of the CE-loss increase the linear and nonlinear parts cause.

Rows of the held-out set are split (shuffled, seeded) into fit rows and evaluation rows; the early
positions of each row are dropped (the paper does too: their activations are atypical, the BOS one
above all). CE losses are measured on evaluation rows with the SAE spliced in and part of its error
added back:
- x̂ + linear error: what is left of the CE increase is caused by the nonlinear error;
- x̂ + nonlinear error: what is left is caused by the linear error;
- x̂ + both: equals the clean loss (a check).
The splice covers only the positions the regression was fitted on (from `skip_positions` on); earlier
positions, BOS among them, keep their clean activations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput
from compute.tasks.next_token import mean_next_token_loss

from .base import Result, bounded
from .registry import register
from .sae_browser_figures import ce_bars, error_norms, error_variance_bars
from .sae_source import SAESpec, check_width, load_for_model


@dataclass(frozen=True)
class SAEErrorSpec(SAESpec, kind="sae_error", title="SAE error (dark matter)", page="sae_browser"):
    RESULT_VERSION = 2  # 2: the CE splices only the positions the error regression was fitted on
    dataset: str = "zoo-stdlib-heldout"
    n_tokens: int = bounded(65_536, 2_048, 2_000_000)
    seq_len: int = 128
    skip_positions: int = bounded(8, 0)
    fit_fraction: float = bounded(0.5, 0.1, 0.9)
    ce_rows: int = bounded(32, 0, 512)
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.skip_positions >= self.seq_len - 1:
            raise BadInput("skip_positions must leave some positions in each row")


@torch.no_grad()
def sae_errors(sae, x: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(sae.W_dec.device, sae.W_dec.dtype)
        out.append((xb - sae.decode(sae.encode(xb))).float().cpu())
    return torch.cat(out)


@register(SAEErrorSpec, long=True)
def run_sae_error(spec: SAEErrorSpec, ctx) -> Result:
    from sae.dark_matter import fit_error_regression, split_hook

    lm = ctx.model(spec.model)
    sae, hook = load_for_model(ctx.workbench, spec.sae, lm, spec.hook)
    aset = ctx.workbench.activations.get_or_build(lm, spec.dataset, hook, spec.n_tokens, seq_len=spec.seq_len,
                                                  progress=lambda f, m="": ctx.progress(0.4 * f, "caching activations"))
    seq_len = int(aset.meta["seq_len"])
    n_rows = min(len(aset.tokens()), max(1, spec.n_tokens // seq_len))
    rows = aset.tokens()[:n_rows]
    acts = aset.load(n_rows * seq_len)
    check_width(sae, acts.shape[1], hook, lm)
    if n_rows < 4:
        raise BadInput(f"only {n_rows} rows of {seq_len} tokens: the error analysis needs more tokens")
    ctx.progress(0.45, "SAE errors")
    x = acts[: n_rows * seq_len].reshape(n_rows, seq_len, -1)
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(spec.seed))
    n_fit = max(1, int(round(n_rows * spec.fit_fraction)))
    fit_rows, eval_rows = order[:n_fit], order[n_fit:]
    keep = slice(spec.skip_positions, None)
    x_fit = x[fit_rows][:, keep].reshape(-1, x.shape[-1])
    x_eval = x[eval_rows][:, keep].reshape(-1, x.shape[-1])
    if len(x_fit) <= x.shape[-1]:
        raise BadInput(f"{len(x_fit):,} fit tokens for {x.shape[-1]} dimensions: use more tokens")
    e_fit, e_eval = sae_errors(sae, x_fit), sae_errors(sae, x_eval)
    ctx.progress(0.55, "least squares")
    reg = fit_error_regression(x_fit, e_fit, x_eval, e_eval)
    summary = {"model": spec.model, "sae": spec.sae, "hook": hook, "fit_tokens": int(len(x_fit)),
               "eval_tokens": int(len(x_eval)), **reg.summary()}
    positions = np.tile(np.arange(spec.skip_positions, seq_len), len(eval_rows))
    per_token = pd.DataFrame({"position": positions, "error_norm": reg.error_norm, "linear_norm": reg.linear_norm,
                              "nonlinear_norm": reg.nonlinear_norm})
    tables = {"per_token": per_token}
    figures = {"predictable_error": error_variance_bars(summary), "error_norms": error_norms(per_token)}
    if spec.ce_rows:
        ctx.progress(0.7, "CE loss with parts of the error")
        ce_tokens = rows[eval_rows[: spec.ce_rows]]
        A = reg.A.to(sae.W_dec.device)
        variants = [("clean", None), ("SAE (x̂)", "none"), ("x̂ + linear error", "linear"),
                    ("x̂ + nonlinear error", "nonlinear"), ("x̂ + linear + nonlinear error", "both")]
        # spliced only where the map was fitted (positions from skip_positions on); the last row must equal
        # the clean loss, a check of the decomposition
        ce = {name: mean_next_token_loss(lm.model, ce_tokens, [(hook, split_hook(sae, A, keep_part,
                                                                                 spec.skip_positions))]
                                         if keep_part else None)
              for name, keep_part in variants}
        increase = ce["SAE (x̂)"] - ce["clean"]
        share = (lambda v: (v - ce["clean"]) / increase if abs(increase) > 1e-9 else None)  # noqa: E731
        summary.update({"ce_clean": ce["clean"], "ce_sae": ce["SAE (x̂)"], "ce_increase": increase,
                        "ce_spliced_from_position": spec.skip_positions,
                        "ce_all_parts": ce["x̂ + linear + nonlinear error"],
                        "ce_increase_from_nonlinear": share(ce["x̂ + linear error"]),
                        "ce_increase_from_linear": share(ce["x̂ + nonlinear error"]), "ce_rows": int(len(ce_tokens))})
        tables["ce"] = pd.DataFrame({"variant": list(ce), "ce_loss": list(ce.values()),
                                     "increase_over_clean": [v - ce["clean"] for v in ce.values()]})
        figures["ce_loss"] = ce_bars(tables["ce"])
    ctx.progress(1.0, "done")
    return Result(SAEErrorSpec.KIND, summary, tables, figures)
