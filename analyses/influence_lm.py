"""Influence of training sequences on a language model's completion (Grosse et al. 2023): spec `influence_lm`."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import Result, bounded
from .influence import InfluenceQuerySpec, factor_engine, scale_note, spearman, top_share
from .influence_figures import distribution_figure, module_bars, score_bars, token_heatmap
from .registry import register
from .sae_source import SAERef

MAX_QUERY_CHARS = 20_000
MEASURES = ("completion", "feature")
# On a Ray cluster (compute.cluster) the training sequences are scored in shards of this many, one task each: a
# sequence's score depends only on it and the preconditioned query gradient, which each task recomputes.
SCORE_SHARD = 256


@dataclass(frozen=True)
class InfluenceLMSpec(InfluenceQuerySpec, kind="influence_lm", title="Influence (language model)", page="influence"):
    prompt: str = ""
    completion: str = ""
    tfidf_k: int = bounded(0, 0, 1_000_000)  # 0: score every training sequence
    rank: int = bounded(0, 0, 4096)  # 0: full-rank query gradients; r: rank-r (query batching)
    check: bool = True  # also score the unfiltered / full-rank way, to show the recall and correlation
    measure: str = "completion"  # completion: log p(completion | prompt); feature: an SAE feature at a position
    sae: str = ""  # measure=feature: the SAE (a workbench run hash, a SAELens folder, release:id) ...
    feature: int = bounded(0, 0, 10_000_000)  # ... its feature ...
    position: int = -1  # ... at this token of the prompt (BOS is 0, as in the SAE browser; -1: the last)

    def validate(self) -> None:
        super().validate()
        if self.train == "digits":
            raise BadInput("a language-model query reads a text training set (corpus or text:PATH)")
        if self.measure not in MEASURES:
            raise BadInput(f"measure must be one of {', '.join(MEASURES)}, not '{self.measure}'")
        if len(self.prompt) + len(self.completion) > MAX_QUERY_CHARS:
            raise BadInput(f"the prompt and completion are over {MAX_QUERY_CHARS:,} characters")
        if self.measure == "feature":
            if not self.sae.strip():
                raise BadInput("a feature query needs an SAE of this model (a workbench SAE run, or a folder)")
            if self.completion:
                raise BadInput("a feature query measures the SAE feature on the prompt alone: leave the completion "
                               "empty")
            if not self.prompt.strip():
                raise BadInput("give a prompt: the feature is read at one of its tokens")
        elif not self.completion.strip():
            raise BadInput("give a completion: its log-probability after the prompt is what is measured")

    def depends_on(self):
        return (*super().depends_on(), *((SAERef(self.sae),) if self.measure == "feature" else ()))

    def describe(self) -> str:
        if self.measure == "feature":
            return f"influence on feature {self.feature} at token {self.position} of {self.prompt[-30:]!r} ({self.model})"
        return f"influence on {self.completion[:30]!r} after {self.prompt[-30:]!r} ({self.model})"


def feature_query(ctx, spec: InfluenceLMSpec, lm, s):
    """The prompt's tokens (BOS first, as the SAE browser reads them), a task whose measurement is the feature's
    activation there, and what was measured; BadInput when the feature does not fire there (a zero activation has
    no gradient: every score would be 0), naming where it does."""
    from influence.measurements import FeatureActivation
    from influence.tasks import CausalLMTask

    from .lm_inputs import prompt_tokens, token_strings
    from .sae_source import load_for_model

    sae, hook = load_for_model(ctx.workbench, spec.sae, lm)
    ids = prompt_tokens(lm, spec.prompt)[0]
    n = len(ids)
    pos = spec.position if spec.position >= 0 else n + spec.position
    if not 0 <= pos < n:
        raise BadInput(f"position {spec.position} is outside the prompt's {n} tokens (0 is BOS; -1 the last)")
    if spec.feature >= sae.cfg.d_sae:
        raise BadInput(f"feature {spec.feature} does not exist: the SAE has {sae.cfg.d_sae:,} features")
    measure = FeatureActivation(lm.model.hook_dict[hook], sae, spec.feature, pos)
    batch = {"input_ids": ids.cpu(), "labels": torch.full((n,), -100)}
    with torch.no_grad():
        acts = measure.activations(s.net, {"input_ids": ids[None]})[0, :, spec.feature].float().cpu()
    strs = token_strings(lm, ids.tolist())
    if acts[pos] <= 0:
        fires = [f"{i} ({strs[i]!r})" for i in torch.nonzero(acts > 0).flatten().tolist()[:12]]
        raise BadInput(f"feature {spec.feature} does not fire at token {pos} ({strs[pos]!r}), so no training "
                       f"sequence moves it there; " + (f"it fires at {', '.join(fires)}" if fires else
                                                       "it fires nowhere on this prompt"))
    info = {"measurement": f"−activation of feature {spec.feature} of the SAE on {hook} at token {pos} ({strs[pos]!r})"
                           " (positive = the example made the feature fire more)",
            "sae": spec.sae, "hook": hook, "feature": spec.feature, "position": pos, "token": strs[pos],
            "activation": float(acts[pos])}
    return batch, CausalLMTask(s.modules, feature=measure), info


def query_batch(tokenizer, prompt: str, completion: str, ctx: int) -> dict:
    """input_ids = prompt + completion, labels score the completion tokens only (shifted: position t predicts t+1)."""
    p = tokenizer(prompt)["input_ids"] if prompt else []
    if not p:  # a model without BOS and an empty prompt: nothing to condition on
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise BadInput("give a prompt: this tokenizer has no BOS token to start from")
        p = [bos]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not c:
        raise BadInput(f"the completion {completion!r} tokenizes to nothing")
    ids = p + c
    if len(ids) > ctx:
        raise BadInput(f"the prompt and completion are {len(ids)} tokens; the model's context is {ctx}")
    labels = [-100] * len(ids)
    for i in range(len(p), len(ids)):
        labels[i - 1] = ids[i]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}, len(p), len(c)


class _One(torch.utils.data.Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.item


@register(InfluenceLMSpec, long=True)
def run_influence_lm(spec: InfluenceLMSpec, ctx) -> Result:
    from influence import tfidf
    from influence.engine import Engine, tracked
    from influence.tasks import block_of, display_name, layer_of

    s, folder, t_factors = factor_engine(ctx, spec)
    timing = {"factors": round(t_factors, 3)}
    lm = ctx.model(spec.model)
    tok = lm.tokenizer
    task, measured = s.task, {}
    if spec.measure == "feature":
        query, task, measured = feature_query(ctx, spec, lm, s)
        n_prompt, n_completion = len(query["input_ids"]), 0
    else:
        query, n_prompt, n_completion = query_batch(tok, spec.prompt, spec.completion, int(lm.n_ctx))
    train = s.train
    texts = [tok.decode(row) for row in train.input_ids.tolist()]
    candidates = np.arange(len(train))
    if spec.tfidf_k and spec.tfidf_k < len(train):
        t0 = time.perf_counter()
        candidates = np.sort(tfidf.closest(texts, spec.prompt + spec.completion, spec.tfidf_k))
        timing["tfidf"] = round(time.perf_counter() - t0, 3)
    damping = spec.damping_value()
    checks = {}
    ctx.progress(0.55, f"scoring {len(candidates):,} training sequences")
    pool = ctx.workbench.tasks
    with tracked(s.net, s.task, s.lock) as net:
        eng = Engine(net, task, folder)
        t0 = time.perf_counter()
        if pool.parallel and len(candidates) > SCORE_SHARD:
            shards = np.array_split(candidates, -(-len(candidates) // SCORE_SHARD))
            parts = pool.map(score_shard, [(spec.to_dict(), shard.tolist()) for shard in shards],
                             progress=lambda f, m="": ctx.progress(0.55 + 0.25 * f, m), what="scoring training shards")
            out = {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}
        else:
            out = _scores(eng, spec, query, train.subset(candidates), damping)
        timing["query_and_scores"] = round(time.perf_counter() - t0, 3)
        filtered = spec.tfidf_k and len(candidates) < len(train)
        if spec.check and (filtered or spec.rank):
            ctx.progress(0.8, "scoring the full way, for the checks")
            t0 = time.perf_counter()
            full = eng.pairwise(_One(query), train, spec.strategy, damping=damping)["all_modules"][0].numpy()
            timing["check_full_scan"] = round(time.perf_counter() - t0, 3)
            ref_top = np.argsort(-full)[:10]
            if filtered:
                checks["tfidf_recall_of_unfiltered_top10"] = tfidf.recall(candidates, ref_top)
            if spec.rank:
                ours = np.full(len(train), np.nan)
                ours[candidates] = _total(out)[0].sum(-1)
                keep = ~np.isnan(ours)
                checks["rank_r_vs_full_rank_pearson"] = float(np.corrcoef(ours[keep], full[keep])[0, 1])
                checks["rank_r_vs_full_rank_spearman"] = spearman(ours[keep], full[keep])
    per_token = _total(out)  # [1, n, T] summed over modules
    scores = per_token.sum(-1)[0]
    n_all = len(train)
    scale = 1.0 / n_all if spec.divide_by_n else 1.0
    scores, per_token = scores * scale, per_token[0] * scale
    order = np.argsort(-scores)
    helpful = _rows(order[: spec.top], scores, per_token, candidates, train, tok, texts, positive=True)
    harmful = _rows(order[::-1][: spec.top], scores, per_token, candidates, train, tok, texts, positive=False)
    modules = pd.DataFrame([{"module": display_name(m), "layer": layer_of(m), "block": block_of(m),
                             "total": float(v[0].sum() * scale), "total_abs_top": float(np.abs(v[0].sum(-1)[order[:spec.top]]).sum() * scale)}
                            for m, v in out.items() if m != "all_modules"])
    if len(modules):
        modules["share_of_abs"] = modules.total.abs() / modules.total.abs().sum()
    blocks = modules.groupby("block", as_index=False).total.sum() if len(modules) else pd.DataFrame()
    summary = {"model": spec.model, "prompt": spec.prompt, "completion": spec.completion,
               "measurement": measured.get("measurement", "−log p(completion | prompt), summed over the completion's tokens"),
               **{k: v for k, v in measured.items() if k != "measurement"},
               "query_tokens": {"prompt": n_prompt, "completion": n_completion},
               "training_set": s.describe_train, "scored": int(len(candidates)), "strategy": spec.strategy,
               "modules": spec.modules, "damping": spec.damping if damping is not None else "0.1 × mean eigenvalue per layer",
               "rank": spec.rank or "full", "tfidf_k": spec.tfidf_k or "off", "sign_and_scale": scale_note(spec, n_all),
               "top_1pct_share_of_abs_influence": top_share(scores), "checks": checks, "timing": timing}
    tables = {"helpful": helpful, "harmful": harmful, "modules": modules, "blocks": blocks,
              "scores": pd.DataFrame({"row": train.rows[candidates], "score": scores})}
    figures = {"helpful": score_bars(helpful, "most helpful training sequences"),
               "harmful": score_bars(harmful, "most harmful training sequences"),
               "distribution": distribution_figure(scores),
               "layers": module_bars(modules, "total", "influence per module (sum over the scored sequences)")}
    if len(helpful):
        figures["top_tokens"] = token_heatmap(helpful.tokens.iloc[0], helpful.token_scores.iloc[0],
                                              "token-wise influence of the most helpful sequence")
    ctx.progress(1.0, "done")
    return Result(InfluenceLMSpec.KIND, summary, tables, figures)


def _scores(eng, spec: InfluenceLMSpec, query: dict, train, damping) -> dict[str, torch.Tensor]:
    return eng.pairwise(_One(query), train, spec.strategy, damping=damping, rank=spec.rank or None,
                        per_module=True, per_token=True)


_shard_setups: dict = {}  # a cluster worker's model set-ups and training sets, one per factor spec


def score_shard(spec_dict: dict, rows: list[int]) -> dict[str, torch.Tensor]:
    """A cluster task: the query's scores against training sequences `rows`, with the worker's own copy of the
    model and the shared factors (as `run_influence_lm` scores them in one process)."""
    from types import SimpleNamespace

    from influence.engine import Engine, tracked

    from .influence import setup
    from .registry import spec_from_dict
    from .workbench import Workbench

    spec = spec_from_dict(spec_dict, stored=True)
    key = str(sorted(spec.factor_fields().items()))
    if key not in _shard_setups:
        wb = Workbench()
        ctx = SimpleNamespace(model=wb.models.get, workbench=wb)
        _shard_setups[key] = (wb, ctx, setup(ctx, spec.factors_spec()))
    wb, ctx, s = _shard_setups[key]
    lm = wb.models.get(spec.model)
    if spec.measure == "feature":
        query, task, _ = feature_query(ctx, spec, lm, s)
    else:
        query, task = query_batch(lm.tokenizer, spec.prompt, spec.completion, int(lm.n_ctx))[0], s.task
    with tracked(s.net, s.task, s.lock) as net:
        eng = Engine(net, task, wb.artifact_folder(spec.factors_spec()))
        return _scores(eng, spec, query, s.train.subset(np.asarray(rows)), spec.damping_value())


def _total(out: dict) -> np.ndarray:
    mods = [v for k, v in out.items() if k != "all_modules"]
    total = out["all_modules"] if "all_modules" in out else sum(mods)
    return total.double().numpy()


def _rows(idx, scores, per_token, candidates, train, tok, texts, positive: bool) -> pd.DataFrame:
    rows = []
    for rank, i in enumerate(idx):
        if (scores[i] > 0) != positive and scores[i] != 0:
            continue  # a "helpful" list holds only positive scores, a "harmful" one only negative
        ids = train.input_ids[candidates[i]].tolist()
        rows.append({"rank": len(rows) + 1, "row": int(train.rows[candidates[i]]), "score": float(scores[i]),
                     "text": texts[candidates[i]], "tokens": [tok.decode([t]) for t in ids],
                     "token_scores": [float(x) for x in per_token[i]]})
    return pd.DataFrame(rows, columns=["rank", "row", "score", "text", "tokens", "token_scores"])
