"""Influence on the digits models: a query image and label → the most helpful and harmful training digits
(`influence_image`); the self-influence of every training digit, on the model or on a copy retrained with a
share of labels flipped, and how many flipped labels the top of the self-influence ranking finds
(`influence_self`; kronfluence reports 80% of CIFAR-10's flipped labels in the top 10%)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from compute.errors import BadInput

from .base import Result, bounded
from .influence import DIGITS_TRAIN, InfluenceQuerySpec, factor_engine, scale_note, top_share
from .influence_figures import distribution_figure, image_grid, score_bars
from .registry import register


@dataclass(frozen=True)
class InfluenceImageSpec(InfluenceQuerySpec, kind="influence_image", title="Influence (image)", page="influence"):
    train: str = DIGITS_TRAIN
    image: str = "digits:0"  # digits:N (held-out split) or upload:SHA, as on the Attribution page
    label: int = bounded(-1, -1, 1000)  # -1: the image's true label (uploads: the model's prediction)

    def validate(self) -> None:
        super().validate()
        if self.train != DIGITS_TRAIN:
            raise BadInput("image queries read the digits training split (train 'digits')")
        if not (self.image.startswith("digits:") or self.image.startswith("upload:")):
            raise BadInput("an image is digits:N or upload:SHA")

    def check_ready(self, wb) -> None:
        """Before a job: the image is there and fits the model (a held-out index in range, an upload's shape)."""
        from .attribution_image import load_image

        super().check_ready(wb)
        load_image(wb, wb.models.get(self.model), self.image)

    def describe(self) -> str:
        return f"influence on {self.image} ({self.model})"


@register(InfluenceImageSpec, long=True)
def run_influence_image(spec: InfluenceImageSpec, ctx) -> Result:
    from influence.engine import Engine, tracked

    from .attribution_image import load_image

    s, folder, t_factors = factor_engine(ctx, spec)
    lm = ctx.model(spec.model)
    x, true_label, desc = load_image(ctx.workbench, lm, spec.image)
    with torch.no_grad():
        pred = int(lm.model(x).argmax(-1))
    n_classes = len(lm.image_config.get("classes", range(10)))
    label = spec.label if spec.label >= 0 else (true_label if true_label is not None else pred)
    if not 0 <= label < n_classes:
        raise BadInput(f"label {label} is out of range: the model has {n_classes} classes")
    query = torch.utils.data.TensorDataset(x.float(), torch.tensor([label]))
    ctx.progress(0.55, f"scoring {len(s.train):,} training digits")
    t0 = time.perf_counter()
    with tracked(s.net, s.task, s.lock) as net:
        scores = Engine(net, s.task, folder, train_batch=128).pairwise(
            query, s.train, spec.strategy, damping=spec.damping_value())["all_modules"][0].double().numpy()
    timing = {"factors": round(t_factors, 3), "query_and_scores": round(time.perf_counter() - t0, 3)}
    if spec.divide_by_n:
        scores = scores / len(s.train)
    xs, ys = s.train.tensors
    order = np.argsort(-scores)
    helpful = _rows(order[: spec.top], scores, ys, positive=True)
    harmful = _rows(order[::-1][: spec.top].copy(), scores, ys, positive=False)
    same = ys.numpy() == label
    summary = {"model": spec.model, "image": desc, "label": label, "prediction": pred,
               "measurement": "cross-entropy of the label (lower = more confident in it)",
               "training_set": s.describe_train, "strategy": spec.strategy,
               "damping": spec.damping if spec.damping_value() is not None else "0.1 × mean eigenvalue per layer",
               "sign_and_scale": scale_note(spec, len(s.train)), "top_1pct_share_of_abs_influence": top_share(scores),
               "helpful_share_same_label": float(same[order[: spec.top]].mean()),
               "harmful_share_same_label": float(same[order[::-1][: spec.top].copy()].mean()), "timing": timing}
    figures = {"query": image_grid(x[0].numpy()[None, 0], [f"query: label {label}, predicted {pred}"], "query", cols=1),
               "helpful": image_grid(xs[np.array(helpful["index"], dtype=int), 0].numpy(), [f"{r.label} ({r.score:.3g})" for r in helpful.itertuples()],
                                     "most helpful training digits (label, score)"),
               "harmful": image_grid(xs[np.array(harmful["index"], dtype=int), 0].numpy(), [f"{r.label} ({r.score:.3g})" for r in harmful.itertuples()],
                                     "most harmful training digits (label, score)"),
               "distribution": distribution_figure(scores)}
    ctx.progress(1.0, "done")
    return Result(InfluenceImageSpec.KIND, summary, {"helpful": helpful, "harmful": harmful,
                                                     "scores": pd.DataFrame({"index": np.arange(len(scores)), "label": ys.numpy(), "score": scores})},
                  figures)


def _rows(idx, scores, labels, positive: bool) -> pd.DataFrame:
    rows = [{"rank": k + 1, "index": int(i), "label": int(labels[i]), "score": float(scores[i])}
            for k, i in enumerate(idx) if (scores[i] > 0) == positive or scores[i] == 0]
    return pd.DataFrame(rows, columns=["rank", "index", "label", "score"])


@dataclass(frozen=True)
class InfluenceSelfSpec(InfluenceQuerySpec, kind="influence_self", title="Self-influence", page="influence"):
    """Self-influence ∇L(z)ᵀ(G+λI)⁻¹∇L(z) of every training digit. With flip_share > 0 a copy of the model is
    retrained (same recipe, same seed) on labels of which that share were flipped, and the flipped ones are
    looked for at the top of the ranking."""
    train: str = DIGITS_TRAIN
    flip_share: float = bounded(0.0, 0.0, 0.5)
    epochs: int = bounded(60, 1, 500)
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.train != DIGITS_TRAIN:
            raise BadInput("self-influence reads the digits training split (train 'digits')")

    def describe(self) -> str:
        return f"self-influence on {self.model}" + (f", {self.flip_share:.0%} labels flipped" if self.flip_share else "")


@register(InfluenceSelfSpec, long=True)
def run_influence_self(spec: InfluenceSelfSpec, ctx) -> Result:
    import copy
    import shutil

    from compute.digits_training import train_digits
    from influence.engine import Engine, tracked

    from .influence import setup

    s = setup(ctx, spec)
    xs, ys = s.train.tensors
    rng = np.random.default_rng(spec.seed)
    flipped = np.zeros(len(ys), dtype=bool)
    labels = ys.clone()
    net, timing = s.net, {}
    if spec.flip_share > 0:
        idx = rng.choice(len(ys), size=int(round(spec.flip_share * len(ys))), replace=False)
        shift = torch.from_numpy(rng.integers(1, 10, size=len(idx)))
        labels[idx] = (ys[idx] + shift) % 10  # always a different class
        flipped[idx] = True
        t0 = time.perf_counter()
        torch.manual_seed(spec.seed)
        net = copy.deepcopy(s.net)
        for m in net.modules():  # a fresh start, the zoo recipe
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        train_digits(net, xs, labels, spec.epochs, progress=lambda f, m: ctx.progress(0.4 * f, "retraining: " + m))
        timing["retrain"] = round(time.perf_counter() - t0, 3)
    data = torch.utils.data.TensorDataset(xs, labels)
    folder = ctx.workbench.artifact_folder(spec.factors_spec()).with_name(ctx.workbench.result_key(spec) + ".self")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        with tracked(net, s.task, s.lock if net is s.net else None) as tnet:
            eng = Engine(tnet, s.task, folder, train_batch=128)
            t0 = time.perf_counter()
            eng.fit(data, spec.strategy, lambda f, m: ctx.progress(0.4 + 0.4 * f, m))
            timing["factors"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            ctx.progress(0.85, "self-influence of every training digit")
            scores = eng.self_scores(data, spec.strategy, damping=spec.damping_value()).double().numpy()
            timing["self_scores"] = round(time.perf_counter() - t0, 3)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    order = np.argsort(-scores)
    curve = []
    if flipped.any():
        for share in (0.05, 0.1, 0.2, 0.3, 0.5):
            k = int(round(share * len(scores)))
            curve.append({"inspected_share": share, "flipped_found": float(flipped[order[:k]].sum() / flipped.sum())})
    curve = pd.DataFrame(curve, columns=["inspected_share", "flipped_found"])
    top = pd.DataFrame([{"rank": k + 1, "index": int(i), "label": int(labels[i]), "true_label": int(ys[i]),
                         "flipped": bool(flipped[i]), "score": float(scores[i])} for k, i in enumerate(order[: spec.top])])
    summary = {"model": spec.model, "training_set": s.describe_train, "strategy": spec.strategy,
               "flipped_labels": int(flipped.sum()), "flip_share": spec.flip_share,
               "found_in_top_10pct": float(curve.set_index("inspected_share").flipped_found.get(0.1, np.nan)) if len(curve) else None,
               "reference": "kronfluence: 80% of flipped CIFAR-10 labels in the top 10% of self-influence (ResNet-9)",
               "timing": timing}
    figures = {"top": image_grid(xs[order[: spec.top], 0].numpy(),
                                 [f"{r.label}{' (was ' + str(r.true_label) + ')' if r.flipped else ''}" for r in top.itertuples()],
                                 "highest self-influence (label given; flipped ones show the true label)"),
               "distribution": distribution_figure(scores)}
    if len(curve):
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(x=curve.inspected_share, y=curve.flipped_found, mode="lines+markers", name="self-influence"))
        fig.add_trace(go.Scatter(x=[0, 0.5], y=[0, 0.5], mode="lines", name="random", line=dict(dash="dot")))
        fig.update_layout(title="flipped labels found by inspecting the top of the self-influence ranking",
                          xaxis_title="share of training set inspected", yaxis_title="share of flipped labels found")
        figures["detection"] = fig
    ctx.progress(1.0, "done")
    return Result(InfluenceSelfSpec.KIND, summary, {"top": top, "detection": curve,
                                                    "scores": pd.DataFrame({"index": np.arange(len(scores)), "label": labels.numpy(),
                                                                            "flipped": flipped, "score": scores})}, figures)
