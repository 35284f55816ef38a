"""Attribution comparison on images: the nine methods of attribution/image_methods.py (gradient, SmoothGrad,
Integrated Gradients, SHAP; occlusion, LIME, RISE; GradCAM, GradCAM++) for one image and class of an image
model, with RISE deletion / insertion, agreement and cost.

Images are named by a string that goes into specs and links:
- `digits:N` — image N of the held-out split of scikit-learn's digits (the zoo CNN's test set);
- `upload:SHA` — an image stored on the server by the page or the CLI (PNG/JPEG: converted to the
  model's channels and size; .npy: must already have the model's input shape).
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from attribution.registry import IMAGE_METHODS as METHOD_REGISTRY
from compute.errors import BadInput
from compute.tasks import task_for
from compute.tasks.digits import Digits

from .attribution_figures import agreement_heatmap, cost_bars
from .attribution_image_figures import image_curves, image_faithfulness, overlays
from .base import Result, Spec, added, bounded, counted, widened
from .batch_means import method_means
from .registry import register

IMAGE_METHODS = tuple(METHOD_REGISTRY)
MAX_UPLOAD_BYTES = 20 * 2**20


@dataclass(frozen=True)
class ImageMethodsSpec(Spec):
    """The image methods to run and their options (shared by one image, a batch and the robust comparison)."""
    # the five methods of the first version; the robust-CNN study added four
    methods: tuple[str, ...] = widened(IMAGE_METHODS, was=("gradcam", "gradcam_pp", "integrated_gradients",
                                                            "occlusion", "shap"))
    ig_steps: int = bounded(64, 4, 1024)
    shap_samples: int = bounded(200, 10, 5000)
    occlusion_window: int = bounded(2, 1, 64)
    top_k: int = 8
    # options of the methods added with the robust-CNN study (absent from specs stored before: same defaults)
    smoothgrad_samples: int = added(50, legacy=50, lo=2, hi=1000)
    smoothgrad_noise: float = added(0.15, legacy=0.15, lo=0.0, hi=1.0)
    lime_samples: int = added(1000, legacy=1000, lo=50, hi=20000)
    lime_patch: int = added(1, legacy=1, lo=1, hi=64)  # 1: every pixel its own feature (8x8 digits)
    rise_masks: int = added(2000, legacy=2000, lo=100, hi=100_000)
    rise_grid: int = added(4, legacy=4, lo=2, hi=64)
    rise_p: float = added(0.5, legacy=0.5, lo=0.05, hi=0.95)

    def validate(self) -> None:
        super().validate()
        if not self.methods:
            raise BadInput("pick at least one attribution method")
        unknown = [m for m in self.methods if m not in IMAGE_METHODS]
        if unknown:
            raise BadInput(f"unknown image method(s) {', '.join(unknown)}; known: {', '.join(IMAGE_METHODS)}")


@dataclass(frozen=True)
class AttributionImageSpec(ImageMethodsSpec, kind="attribution_image", title="Attribution comparison (image)",
                           page="attribution"):
    image: str = "digits:0"
    target: int = bounded(-1, -1, None)  # the class; -1 = the model's prediction (other negatives are refused)

    def validate(self) -> None:
        super().validate()
        if not (self.image.startswith("digits:") or self.image.startswith("upload:")):
            raise BadInput("an image is digits:N or upload:SHA (upload an image on the page, or pass --image FILE)")


MAX_IMAGE_PIXELS = 4096 * 4096  # an upload is shrunk to the model's input; nothing larger is worth decoding


def open_image(data: bytes):
    """A PIL image of an upload, decoded, or BadInput: not an image, or more pixels than we decode (a 100 KB
    PNG can declare 30000 × 30000 pixels: PIL's decompression-bomb guard, with a tighter limit)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise BadInput(f"the image is {w:,} × {h:,} pixels; at most {MAX_IMAGE_PIXELS:,} pixels are read "
                           f"(it is shrunk to the model's input anyway): resize it first")
        img.load()
        return img
    except Image.DecompressionBombError:
        raise BadInput(f"the image declares more than {MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?): "
                       f"resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadInput("the uploaded file is not an image PIL can read (PNG, JPEG, …)") from None


def read_npy(data: bytes) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a corrupt, pickled or non-array file
        raise BadInput(f"the uploaded .npy is not a readable array ({type(e).__name__})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise BadInput("the uploaded .npy does not hold numbers")
    return arr


def store_upload(wb, data: bytes, filename: str) -> str:
    """Keep an uploaded image (content-addressed, written atomically) once it reads as one: a rejected upload
    is not stored. Returns its `upload:SHA` name."""
    if not data:
        raise BadInput("the uploaded file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput(f"the image is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    suffix = ".npy" if filename.lower().endswith(".npy") else ".img"
    read_npy(data) if suffix == ".npy" else open_image(data)
    sha = hashlib.sha256(data).hexdigest()[:20]
    folder = wb.settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha}{suffix}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    wb.store.record_upload(f"upload:{sha}", owner=wb.user.name)
    return f"upload:{sha}"


def load_image(wb, lm, name: str) -> tuple[torch.Tensor, int | None, str]:
    """([1, C, H, W] in the model's input range, the true label when known, a description)."""
    shape = tuple(lm.image_config.get("input_shape") or ())
    if len(shape) != 3:
        raise BadInput(f"{lm.id} does not declare its input shape (input_shape in config.json)")
    lo, hi = lm.image_config.get("input_range", [0.0, 1.0])
    if name.startswith("digits:"):
        task = task_for(lm)
        if not isinstance(task, Digits):
            raise BadInput(f"digits:N images belong to the digits models; {lm.id} needs an uploaded image")
        _, x_test, _, y_test = task.split_arrays()
        try:
            i = int(name.split(":", 1)[1])
        except ValueError:
            raise BadInput(f"'{name}' is not digits:N") from None
        if not 0 <= i < len(x_test):
            raise BadInput(f"digits:{i} is out of range: the held-out split has {len(x_test)} images (0–{len(x_test) - 1})")
        x = torch.from_numpy(x_test[i : i + 1])
        label = int(y_test[i])
        desc = f"held-out digit #{i} (label {label})"
    else:
        sha = name.split(":", 1)[1]
        if not sha.isalnum():
            raise BadInput(f"'{name}' is not an uploaded image name")
        matches = list(wb.settings.uploads_dir.glob(f"{sha}.*"))
        if not matches:
            raise BadInput(f"no uploaded image {sha} on this server")
        path = matches[0]
        label, desc = None, f"uploaded image {sha}"
        if path.suffix == ".npy":
            arr = read_npy(path.read_bytes())
            if arr.ndim == len(shape) + 1 and arr.shape[0] == 1:
                arr = arr[0]
            if tuple(arr.shape) != shape:
                raise BadInput(f"the image has shape {tuple(arr.shape)}; {lm.id} takes {shape} (channels, height, width)")
            x = torch.from_numpy(arr.astype(np.float32))[None]
        else:
            from PIL import Image

            img = open_image(path.read_bytes())
            c, h, w = shape
            img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
            arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
            x = torch.from_numpy(lo + arr * (hi - lo))[None]
            desc += f" (converted to {c}×{h}×{w})"
    if tuple(x.shape[1:]) != shape:
        raise BadInput(f"the image has shape {tuple(x.shape[1:])}; {lm.id} takes {shape}")
    return x.to(lm.device, next(lm.model.parameters()).dtype), label, desc


def background(lm, n: int = 32) -> torch.Tensor:
    """SHAP's background: training digits for the digits models, else a black image."""
    task = task_for(lm)
    if isinstance(task, Digits):
        x_train = task.split_arrays()[0]
        idx = np.random.default_rng(0).choice(len(x_train), size=min(n, len(x_train)), replace=False)
        return torch.from_numpy(x_train[idx]).to(lm.device)
    shape = tuple(lm.image_config["input_shape"])
    return torch.zeros((1, *shape), device=lm.device)


def cam_layer(lm):
    name = lm.image_config.get("gradcam_layer")
    modules = dict(lm.model.named_modules())
    if name in modules:
        return modules[name]
    convs = [m for m in modules.values() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise BadInput(f"{lm.id} has no convolutional layer for GradCAM")
    return convs[-1]


def compare_image(ctx, lm, spec: AttributionImageSpec, image: str, target: int, progress) -> dict:
    """All methods on one image, RISE curves (and a random order's), agreement."""
    from attribution import image_methods
    from attribution.agreement import pairwise
    from attribution.registry import run_method

    x, label, desc = load_image(ctx.workbench, lm, image)
    with torch.no_grad():
        probs = torch.softmax(lm.model(x).float(), -1)[0]
    n_classes = len(probs)
    target = int(probs.argmax()) if target < 0 else target
    if target >= n_classes:
        raise BadInput(f"class {target} is out of range: {lm.id} has {n_classes} classes (0–{n_classes - 1})")
    task = image_methods.ImageTask(lm.model, x, target, cam_layer(lm))
    out = {}
    for i, m in enumerate(spec.methods):
        progress(0.8 * i / len(spec.methods), m)
        out[m] = run_method(METHOD_REGISTRY[m], task, spec, {"background": lambda: background(lm)})
    progress(0.85, "deletion and insertion")
    rows, curves = [], []
    rng = np.random.default_rng(0)
    rand = [image_methods.deletion_insertion(task, rng.random(x.shape[-2:])) for _ in range(3)]
    for m, a in out.items():
        di = image_methods.deletion_insertion(task, a.scores)
        rows.append({"method": m, "deletion_auc": di["deletion_auc"], "insertion_auc": di["insertion_auc"],
                     "deletion_auc_random": float(np.mean([r["deletion_auc"] for r in rand])),
                     "insertion_auc_random": float(np.mean([r["insertion_auc"] for r in rand])),
                     "seconds": a.seconds, **a.cost})
        curves.append(pd.DataFrame({"method": m, "fraction": di["fraction"], "deletion_p": di["deletion_curve"],
                                    "insertion_p": di["insertion_curve"]}))
    metrics = pd.DataFrame(rows)
    metrics["notes"] = [str(out[m].notes) if out[m].notes else "" for m in metrics.method]
    return {"x": x, "label": label, "desc": desc, "probs": probs, "target": target, "maps": out,
            "metrics": metrics, "curves": pd.concat(curves, ignore_index=True),
            "agreement": pairwise({m: a.scores.reshape(-1) for m, a in out.items()}, k=spec.top_k)}


@register(AttributionImageSpec)
def run_attribution_image(spec: AttributionImageSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    if lm.kind != "image":
        raise BadInput(f"{lm.id} is a language model; image attribution needs an image model")
    r = compare_image(ctx, lm, spec, spec.image, spec.target, ctx.progress)
    x, probs, target, metrics = r["x"], r["probs"], r["target"], r["metrics"]
    h, w = x.shape[-2:]
    maps = pd.concat([pd.DataFrame({"method": m, "row": np.repeat(np.arange(h), w), "col": np.tile(np.arange(w), h),
                                    "score": a.scores.reshape(-1)}) for m, a in r["maps"].items()], ignore_index=True)
    classes = lm.image_config.get("classes") or [str(i) for i in range(len(probs))]
    summary = {"model": spec.model, "image": spec.image, "description": r["desc"], "label": r["label"],
               "target": target, "target_name": classes[target], "p_target": float(probs[target]),
               "predicted": int(probs.argmax()), "methods": list(r["maps"]),
               "total_seconds": float(metrics.seconds.sum()), "model_confidence": float(probs.max())}
    image = x[0].float().cpu().numpy()
    figures = {"overlays": overlays(image, {m: a.scores for m, a in r["maps"].items()}, f"class {classes[target]}"),
               "faithfulness": image_faithfulness(metrics), "deletion_insertion": image_curves(r["curves"]),
               "agreement": agreement_heatmap(r["agreement"]), "cost": cost_bars(metrics)}
    ctx.progress(1.0, "done")
    return Result(AttributionImageSpec.KIND, summary, {"methods": metrics, "maps": maps, "agreement": r["agreement"],
                                                       "curves": r["curves"]}, figures)


@dataclass(frozen=True)
class AttributionImageBatchSpec(AttributionImageSpec, kind="attribution_image_batch",
                                title="Attribution comparison over a set of images", page="attribution"):
    images: tuple[str, ...] = counted(1, 1000, "image")

    def validate(self) -> None:
        super().validate()
        for im in self.images:
            if not im.startswith(("digits:", "upload:")):
                raise BadInput(f"'{im}' is not digits:N or upload:SHA")

    def describe(self) -> str:
        return f"image attribution comparison over {len(self.images)} images on {self.model}"


@register(AttributionImageBatchSpec, long=True)
def run_attribution_image_batch(spec: AttributionImageBatchSpec, ctx) -> Result:
    lm = ctx.model(spec.model)
    if lm.kind != "image":
        raise BadInput(f"{lm.id} is a language model; image attribution needs an image model")
    rows, agreements, n = [], [], len(spec.images)
    for i, image in enumerate(spec.images):
        progress = lambda f, m="", i=i: ctx.progress((i + f) / n, f"image {i + 1}/{n}: {m}")  # noqa: E731
        try:
            r = compare_image(ctx, lm, spec, image, spec.target, progress)
        except BadInput as e:
            raise BadInput(f"{image}: {e}") from None
        rows.append(r["metrics"].drop(columns="notes").assign(image=image, p_target=float(r["probs"][r["target"]])))
        agreements.append(r["agreement"])
    per_image = pd.concat(rows, ignore_index=True)
    table, agree = method_means(per_image, agreements, skip=("image",))
    summary = {"model": spec.model, "images": n, "methods": list(spec.methods),
               "best_deletion_auc": str(table.sort_values("deletion_auc").method.iloc[0]),
               "best_insertion_auc": str(table.sort_values("insertion_auc").method.iloc[-1]),
               "total_seconds": float(per_image.seconds.sum())}
    figures = {"faithfulness": image_faithfulness(table), "agreement": agreement_heatmap(agree),
               "cost": cost_bars(table)}
    ctx.progress(1.0, "done")
    return Result(AttributionImageBatchSpec.KIND, summary, {"per_method": table, "per_image": per_image,
                                                            "agreement": agree}, figures)
