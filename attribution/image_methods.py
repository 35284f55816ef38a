"""Pixel attributions for an image classifier, in the robust-CNN paper's three families:
- gradient: the plain gradient (Captum's Saliency), SmoothGrad (Captum's NoiseTunnel over it), Integrated
  Gradients (Captum), SHAP (shap's GradientExplainer: expected gradients over a background set);
- perturbation: occlusion and LIME (Captum, LIME over square patches), RISE (ours: Petsiuk et al. 2018's random
  masks as an attribution method, S = Σ_i p(class | I ⊙ M_i) M_i / (N p));
- CAM: GradCAM (Captum's LayerGradCam), GradCAM++ (ours, Chattopadhay et al. 2018, as pytorch-grad-cam).
Each returns an [H, W] map (channels summed) for one class, with its cost; plus RISE deletion / insertion curves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

EPS = 1e-7


@dataclass
class ImageTask:
    net: torch.nn.Module
    x: torch.Tensor  # [1, C, H, W]
    target: int
    layer: torch.nn.Module | None = None  # for the CAMs
    forwards: int = 0
    backwards: int = 0
    rows: int = 0

    def logits(self, xb: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        self.rows += len(xb)
        return self.net(xb)

    def probability(self, xb: torch.Tensor, batch: int = 256) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([torch.softmax(self.logits(xb[i : i + batch]).float(), -1)[:, self.target]
                              for i in range(0, len(xb), batch)])


@dataclass
class PixelAttribution:
    method: str
    scores: np.ndarray  # [H, W]
    cost: dict
    seconds: float
    notes: dict = field(default_factory=dict)


def _counted(fn):
    """Counts the forward passes through the task's net (and the backward ones, for gradient methods)."""
    def run(task: ImageTask, **kw) -> PixelAttribution:
        f0, r0 = task.forwards, task.rows
        handle = task.net.register_forward_hook(lambda m, i, o: _count(task, i[0]))
        t0 = time.perf_counter()
        try:
            name, scores, grads, notes = fn(task, **kw)
        finally:
            handle.remove()
        forwards, rows = task.forwards - f0, task.rows - r0
        cost = {"forward_passes": forwards, "backward_passes": forwards if grads else 0, "sequences": rows}
        return PixelAttribution(name, np.asarray(scores, dtype=np.float64), cost, time.perf_counter() - t0, notes)
    run.__name__ = fn.__name__
    return run


def _count(task: ImageTask, inp: torch.Tensor) -> None:
    task.forwards += 1
    task.rows += len(inp)


def _hw(attr: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] -> [H, W] (channels summed)."""
    return attr.detach().float().sum(1)[0].cpu().numpy()


@_counted
def gradcam(task: ImageTask):
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(task.net, task.layer).attribute(task.x, target=task.target, relu_attributions=True)
    up = LayerAttribution.interpolate(cam, tuple(task.x.shape[-2:]), interpolate_mode="bilinear")
    return "gradcam", _hw(up), True, {"layer_map": list(cam.shape[-2:])}


def gradcam_pp_map(net: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """GradCAM++ at the layer's resolution [1, 1, h, w]: weights w_k = Σ_ij relu(g_kij) α_kij with
    α = g² / (2 g² + Σ_ab A_kab g³) (the closed form for an exponential of the class score)."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        x = x.detach().requires_grad_(True)
        score = net(x)[:, target].sum()
        acts = store["a"]
        grads = torch.autograd.grad(score, acts)[0]
    finally:
        handle.remove()
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(grads != 0, g2 / torch.where(denom != 0, denom, torch.full_like(denom, EPS)),
                        torch.zeros_like(g2))
    weights = (alpha * torch.relu(grads)).sum(dim=(2, 3), keepdim=True)
    return torch.relu((weights * acts).sum(1, keepdim=True)).detach()


@_counted
def gradcam_pp(task: ImageTask):
    cam = gradcam_pp_map(task.net, task.layer, task.x, task.target)
    up = torch.nn.functional.interpolate(cam, size=tuple(task.x.shape[-2:]), mode="bilinear", align_corners=False)
    return "gradcam_pp", _hw(up), True, {}


@_counted
def integrated_gradients(task: ImageTask, n_steps: int = 64):
    from captum.attr import IntegratedGradients

    attr, delta = IntegratedGradients(task.net).attribute(task.x, baselines=torch.zeros_like(task.x),
                                                          target=task.target, n_steps=n_steps,
                                                          return_convergence_delta=True)
    return "integrated_gradients", _hw(attr), True, {"n_steps": n_steps, "completeness_delta": float(delta.abs())}


@_counted
def occlusion(task: ImageTask, window: int = 2):
    from captum.attr import Occlusion

    c = task.x.shape[1]
    with torch.no_grad():
        attr = Occlusion(task.net).attribute(task.x, sliding_window_shapes=(c, window, window), strides=(c, 1, 1),
                                             baselines=0.0, target=task.target, perturbations_per_eval=64)
    return "occlusion", _hw(attr), False, {"window": window}


@_counted
def shap_gradient(task: ImageTask, background: torch.Tensor | None = None, nsamples: int = 200):
    import shap

    bg = background if background is not None else torch.zeros_like(task.x)
    values = shap.GradientExplainer(task.net, bg).shap_values(task.x, nsamples=nsamples, ranked_outputs=None)
    arr = np.asarray(values[task.target] if isinstance(values, list) else values[..., task.target])
    return "shap", arr.reshape(task.x.shape[1:]).sum(0), True, {"nsamples": nsamples, "background": len(bg)}



@_counted
def gradient(task: ImageTask):
    from captum.attr import Saliency

    attr = Saliency(task.net).attribute(task.x, target=task.target, abs=True)
    return "gradient", _hw(attr), True, {"abs": True}


@_counted
def smoothgrad(task: ImageTask, nt_samples: int = 50, noise: float = 0.15):
    """The gradient's magnitude averaged over noisy copies; noise is σ as a share of the input's range."""
    from captum.attr import NoiseTunnel, Saliency

    span = float(task.x.max() - task.x.min()) or 1.0
    attr = NoiseTunnel(Saliency(task.net)).attribute(task.x, nt_type="smoothgrad", nt_samples=nt_samples,
                                                     nt_samples_batch_size=min(nt_samples, 64),
                                                     stdevs=noise * span, target=task.target, abs=True)
    return "smoothgrad", _hw(attr), True, {"samples": nt_samples, "noise": noise}


def patch_mask(shape: tuple[int, int], patch: int) -> torch.Tensor:
    """[1, 1, H, W] feature ids of square patches (LIME's superpixels on a small image)."""
    h, w = shape
    rows = torch.arange(h) // patch
    cols = torch.arange(w) // patch
    return (rows[:, None] * (-(-w // patch)) + cols[None, :])[None, None]


@_counted
def lime(task: ImageTask, n_samples: int = 1000, patch: int = 1, seed: int = 0):
    """Captum's LIME: patches (pixels by default: an 8x8 digit has 64) switched off (to 0) at random, a ridge
    model fitted on the target's probability with LIME's exponential kernel; a patch's coefficient is every
    pixel of it."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    torch.manual_seed(seed)
    mask = patch_mask(tuple(task.x.shape[-2:]), patch).to(task.x.device).expand_as(task.x[:, :1]).expand_as(task.x)
    prob = lambda xb: torch.softmax(task.net(xb).float(), -1)  # noqa: E731
    with torch.no_grad():
        attr = Lime(prob, interpretable_model=SkLearnRidge(alpha=1.0)).attribute(
            task.x, target=task.target, feature_mask=mask.contiguous(), n_samples=n_samples, baselines=0.0,
            perturbations_per_eval=64)
    return "lime", _hw(attr) / task.x.shape[1], False, {"samples": n_samples, "patch": patch}


def rise_masks(n: int, shape: tuple[int, int], grid: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """RISE's masks [n, 1, H, W]: a grid × grid binary grid (keep probability p), up-sampled bilinearly to
    (grid + 1) cells of ceil(H / grid) pixels, then shifted by a random offset within one cell and cropped."""
    h, w = shape
    ch, cw = -(-h // grid), -(-w // grid)
    cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
    up = torch.nn.functional.interpolate(cells, size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear",
                                         align_corners=False)
    dx = torch.randint(0, ch, (n,), generator=generator)
    dy = torch.randint(0, cw, (n,), generator=generator)
    return torch.stack([up[i, :, dx[i]:dx[i] + h, dy[i]:dy[i] + w] for i in range(n)])


@_counted
def rise(task: ImageTask, n_masks: int = 2000, grid: int = 4, p: float = 0.5, seed: int = 0, batch: int = 256):
    g = torch.Generator().manual_seed(seed)
    h, w = task.x.shape[-2:]
    total = torch.zeros(h, w, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, n_masks, batch):
            m = rise_masks(min(batch, n_masks - i), (h, w), grid, p, g).to(task.x.device, task.x.dtype)
            probs = torch.softmax(task.net(task.x * m).float(), -1)[:, task.target]
            total += (probs[:, None, None].double().cpu() * m[:, 0].double().cpu()).sum(0)
    return "rise", (total / (n_masks * p)).numpy(), False, {"masks": n_masks, "grid": grid, "p": p}


def blurred(x: torch.Tensor) -> torch.Tensor:
    """RISE's insertion starts from a heavily blurred image: RISE blurs 224-pixel images with σ = 5 and an
    11-pixel kernel, which leaves no object recognisable; here σ is a quarter of the image's side."""
    c, h, w = x.shape[1:]
    sigma = max(h, w) / 4.0
    r = int(np.ceil(2 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    padded = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    out = torch.nn.functional.conv2d(padded, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def deletion_insertion(task: ImageTask, scores: np.ndarray, steps: int | None = None) -> dict:
    """RISE (Petsiuk et al. 2018): delete pixels (to 0) in decreasing attribution order, or insert them
    into the blurred image; p(class) along the way; AUC by the trapezoid rule on [0, 1]."""
    from .faithfulness import auc

    h, w = scores.shape
    n = h * w
    steps = steps or n
    order = np.argsort(-scores.reshape(-1), kind="stable")
    counts = np.unique(np.linspace(0, n, steps + 1).round().astype(int))
    keep = torch.zeros(len(counts), n, dtype=torch.bool)
    for i, k in enumerate(counts):
        keep[i, order[:k]] = True
    mask = keep.view(len(counts), 1, h, w).to(task.x.device, task.x.dtype)
    x, base = task.x, blurred(task.x)
    deletion = task.probability(x * (1 - mask))
    insertion = task.probability(base * (1 - mask) + x * mask)
    d, i = deletion.cpu().numpy(), insertion.cpu().numpy()
    return {"deletion_curve": d, "insertion_curve": i, "fraction": counts / n, "deletion_auc": auc(d),
            "insertion_auc": auc(i)}
