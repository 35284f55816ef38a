"""Vanilla vs adversarially robust CNN (`attribution_robust`, a job), after Nourelahi et al., "How explainable
are adversarially-robust CNNs?": every image method on both models over the same held-out digits, each
explaining the true class, scored by RISE deletion (lower is better) and insertion (higher is better).

The paper's claims, measured here rather than assumed: gradient methods score better on the robust model
while CAM and perturbation methods do not; insertion favours the vanilla model and deletion the robust one,
because both metrics track the model's confidence. So the result puts each model's confidence distribution
beside the AUCs, and the correlation between an image's confidence and its AUCs. Both models' clean and PGD
accuracy at the stated ε are measured on the whole held-out split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from attribution.registry import IMAGE_METHODS as METHOD_REGISTRY
from compute.errors import BadInput

from .attribution_image import ImageMethodsSpec, compare_image
from .attribution_robust_figures import auc_bars, confidence_histogram, confidence_scatter
from .base import Result, bounded
from .registry import register


@dataclass(frozen=True)
class ModelRef:
    """A second model an analysis reads: its weights' fingerprint joins the result-cache key."""
    model: str

    def fingerprint(self, wb) -> str:
        return wb.models.fingerprint(self.model)


@dataclass(frozen=True)
class RobustComparisonSpec(ImageMethodsSpec, kind="attribution_robust", title="Vanilla vs robust CNN",
                           page="attribution"):
    robust_model: str = "zoo-digits-cnn-robust"
    n_images: int = bounded(50, 2, 450)  # the first n held-out digits
    epsilon: float = bounded(0.1, 0.0, 1.0)  # L∞ radius of the PGD attack that measures robust accuracy
    pgd_steps: int = bounded(20, 1, 200)

    def validate(self) -> None:
        super().validate()
        if self.robust_model.strip() == self.model.strip():
            raise BadInput("pick two different models: a vanilla CNN and its robust twin")

    def depends_on(self):
        return (ModelRef(self.robust_model),)

    def describe(self) -> str:
        return f"{self.model} vs {self.robust_model}: {len(self.methods)} methods on {self.n_images} digits"


def _digits(lm):
    from compute.tasks import task_for
    from compute.tasks.digits import Digits

    task = task_for(lm) if lm.kind == "image" else None
    if not isinstance(task, Digits):
        raise BadInput(f"{lm.id} is not a digits classifier: the comparison runs on held-out digits, so both models "
                       f"must be image models of the digits task")
    _, x_te, _, y_te = task.split_arrays()
    return torch.from_numpy(x_te), torch.from_numpy(y_te).long()


def _pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@register(RobustComparisonSpec, long=True)
def run_attribution_robust(spec: RobustComparisonSpec, ctx) -> Result:
    from attribution.adversarial import accuracy

    pair = {"vanilla": ctx.model(spec.model), "robust": ctx.model(spec.robust_model)}
    data = {role: _digits(lm) for role, lm in pair.items()}
    x_te, y_te = data["vanilla"]
    if tuple(x_te.shape) != tuple(data["robust"][0].shape) or not torch.equal(y_te, data["robust"][1]):
        raise BadInput("the two models do not share a held-out split: train the robust twin on the same task split")
    n = min(spec.n_images, len(x_te))
    rows, models = [], []
    for k, (role, lm) in enumerate(pair.items()):
        net = lm.model
        x, y = x_te.to(lm.device, next(net.parameters()).dtype), y_te.to(lm.device)
        ctx.progress(0.5 * k, f"{role}: clean and PGD accuracy")
        with torch.no_grad():
            probs = torch.softmax(net(x).float(), -1)
        models.append({"role": role, "model": lm.id, "clean_accuracy": accuracy(net, x, y),
                       f"pgd{spec.pgd_steps}_accuracy": accuracy(net, x, y, spec.epsilon, spec.pgd_steps),
                       "mean_confidence": float(probs.max(-1).values.mean()),
                       "mean_p_true": float(probs[torch.arange(len(y)), y].mean())})
        for i in range(n):
            progress = lambda f, m="", i=i, k=k: ctx.progress(0.5 * k + 0.5 * (i + f) / n,  # noqa: E731
                                                              f"{role}: digit {i + 1}/{n}: {m}")
            r = compare_image(ctx, lm, spec, f"digits:{i}", int(y_te[i]), progress)
            m = r["metrics"].drop(columns="notes")
            rows.append(m.assign(role=role, model=lm.id, image=f"digits:{i}", p_target=float(r["probs"][r["target"]]),
                                 confidence=float(r["probs"].max()), correct=int(r["probs"].argmax()) == int(y_te[i])))
    per_image = pd.concat(rows, ignore_index=True)
    per_image["family"] = [METHOD_REGISTRY[m].family for m in per_image.method]
    keys = ["role", "method", "family"]
    grouped = per_image.groupby(keys, sort=False)
    per_method = grouped[["deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random",
                          "seconds"]].mean().reset_index()
    sem = grouped[["deletion_auc", "insertion_auc"]].sem().reset_index(drop=True)
    per_method["deletion_sem"], per_method["insertion_sem"] = sem.deletion_auc.to_numpy(), sem.insertion_auc.to_numpy()
    per_method["insertion_confidence_r"] = [_pearson(g.p_target, g.insertion_auc) for _, g in grouped]
    per_method["deletion_confidence_r"] = [_pearson(g.p_target, g.deletion_auc) for _, g in grouped]

    wide = per_method.pivot(index=["method", "family"], columns="role", values=["insertion_auc", "deletion_auc"])
    paper = pd.DataFrame({"method": [m for m, _ in wide.index], "family": [f for _, f in wide.index],
                          "insertion_vanilla": wide[("insertion_auc", "vanilla")].to_numpy(),
                          "insertion_robust": wide[("insertion_auc", "robust")].to_numpy(),
                          "deletion_vanilla": wide[("deletion_auc", "vanilla")].to_numpy(),
                          "deletion_robust": wide[("deletion_auc", "robust")].to_numpy()})
    paper["insertion_favours"] = np.where(paper.insertion_robust > paper.insertion_vanilla, "robust", "vanilla")
    paper["deletion_favours"] = np.where(paper.deletion_robust < paper.deletion_vanilla, "robust", "vanilla")
    paper["method"] = pd.Categorical(paper.method, [m for m in spec.methods], ordered=True)
    paper = paper.sort_values("method").reset_index(drop=True)
    paper["method"] = paper.method.astype(str)
    families = (per_method.groupby(["family", "role"])[["insertion_auc", "deletion_auc"]].mean()
                .unstack("role").reset_index())
    families.columns = ["family"] + [f"{a.split('_')[0]}_{b}" for a, b in families.columns[1:]]
    models = pd.DataFrame(models)
    conf = per_image.drop_duplicates(["role", "image"])[["role", "image", "p_target", "confidence", "correct"]]

    count = lambda col, who: int((paper[col] == who).sum())  # noqa: E731
    summary = {"vanilla": spec.model, "robust": spec.robust_model, "images": n, "methods": list(spec.methods),
               "epsilon": spec.epsilon, "attack": f"PGD, {spec.pgd_steps} steps, L∞ ε = {spec.epsilon}",
               "accuracy": {r.role: {"clean": r.clean_accuracy, "pgd": r[f"pgd{spec.pgd_steps}_accuracy"]}
                            for _, r in models.iterrows()},
               "mean_p_true": {r.role: r.mean_p_true for _, r in models.iterrows()},
               "insertion_favours_robust": count("insertion_favours", "robust"),
               "deletion_favours_robust": count("deletion_favours", "robust"),
               "gradient_methods_better_on_robust": {
                   r.method: bool(r.insertion_robust > r.insertion_vanilla and r.deletion_robust < r.deletion_vanilla)
                   for _, r in paper[paper.family == "gradient"].iterrows()},
               "insertion_tracks_confidence": {role: _pearson(g.p_target, g.insertion_auc)
                                               for role, g in per_image.groupby("role")},
               "deletion_tracks_confidence": {role: _pearson(g.p_target, g.deletion_auc)
                                              for role, g in per_image.groupby("role")},
               "total_seconds": float(per_image.seconds.sum())}
    figures = {"insertion": auc_bars(per_method, "insertion_auc", "Insertion AUC (higher is better)"),
               "deletion": auc_bars(per_method, "deletion_auc", "Deletion AUC (lower is better)"),
               "confidence": confidence_histogram(conf),
               "confidence_vs_auc": confidence_scatter(per_image)}
    ctx.progress(1.0, "done")
    return Result(RobustComparisonSpec.KIND, summary,
                  {"paper_table": paper, "families": families, "models": models, "per_method": per_method,
                   "per_image": per_image}, figures)
