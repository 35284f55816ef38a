"""Image attribution: a planted CNN whose class score reads one region; GradCAM against its definition;
IG completeness; RISE curves; the analysis spec on the zoo CNN; bad input."""
import io

import numpy as np
import pytest
import torch

from analyses.attribution_image import AttributionImageSpec, store_upload
from attribution.registry import IMAGE_METHODS
from attribution import image_methods
from compute.errors import BadInput

REGION = (slice(1, 3), slice(5, 7))  # rows 1-2, cols 5-6 of an 8x8 image


class Gate(torch.nn.Module):
    """A fixed spatial gate: passes the region, zeroes the rest (where GradCAM reads activations)."""

    def __init__(self):
        super().__init__()
        mask = torch.zeros(8, 8)
        mask[REGION] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, a):
        return a * self.mask


class RegionNet(torch.nn.Module):
    """Class 1's logit is 10 x (sum of the region's pixels after a 1x1 conv); class 0's is constant."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([1.0, 0.5]).view(2, 1, 1, 1)
            self.conv.bias.zero_()
        self.gate = Gate()

    def forward(self, x):
        score = 10 * self.gate(torch.relu(self.conv(x))).sum(dim=(1, 2, 3)) / 4 - 5
        return torch.stack([torch.zeros_like(score), score], dim=-1)


DISTRACTORS = [(5, 1), (6, 2), (4, 6), (0, 0)]  # brighter than anything in the region, and ignored


@pytest.fixture(scope="module")
def planted():
    g = torch.Generator().manual_seed(0)
    x = 0.2 * torch.rand(1, 1, 8, 8, generator=g)
    x[0, 0][REGION] = 0.6 + 0.3 * torch.rand(2, 2, generator=g)  # the part the class reads
    for r, c in DISTRACTORS:  # so that a map of brightness (the raw image) ranks them first
        x[0, 0, r, c] = 1.0
    net = RegionNet().eval()
    return image_methods.ImageTask(net, x, target=1, layer=net.gate)


def test_the_raw_image_would_fail_the_planted_test(planted):
    top4 = set(np.argsort(-planted.x[0, 0].numpy().reshape(-1), kind="stable")[:4].tolist())
    assert top4 == {r * 8 + c for r, c in DISTRACTORS}


@pytest.mark.parametrize("method", list(IMAGE_METHODS))
def test_every_method_puts_the_planted_region_first(planted, method):
    kw = {"background": torch.zeros(4, 1, 8, 8), "nsamples": 100} if method == "shap" else {}
    a = IMAGE_METHODS[method].run(planted, **kw)
    assert a.scores.shape == (8, 8)
    top4 = set(np.argsort(-a.scores.reshape(-1), kind="stable")[:4].tolist())
    region = {r * 8 + c for r in range(1, 3) for c in range(5, 7)}
    assert len(top4 & region) >= 3, (method, np.round(a.scores, 2))
    assert int(np.argmax(a.scores)) in region
    assert a.cost["forward_passes"] >= 1


def test_gradcam_is_the_definition_on_the_zoo_cnn(wb):
    lm = wb.models.get("zoo-digits-cnn")
    from analyses.attribution_image import cam_layer, load_image

    x, _, _ = load_image(wb, lm, "digits:7")
    layer = cam_layer(lm)
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    xg = x.clone().requires_grad_(True)
    logits = lm.model(xg)
    h.remove()
    target = int(logits.argmax())
    grads = torch.autograd.grad(logits[0, target], store["a"])[0]
    manual = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True)).detach()
    up = torch.nn.functional.interpolate(manual, size=(8, 8), mode="bilinear", align_corners=False)
    ours = image_methods.gradcam(image_methods.ImageTask(lm.model, x, target, layer))
    np.testing.assert_allclose(ours.scores, up[0, 0].numpy(), rtol=1e-4, atol=1e-6)


def test_gradcam_pp_is_the_closed_form_of_pytorch_grad_cam_on_the_zoo_cnn(wb):
    """pytorch-grad-cam's GradCAMPlusPlus weights, transcribed (grad_cam/grad_cam_plusplus.py):
    α = g² / (2g² + Σ_ab A · g³ + eps), 0 where g = 0; w = Σ_ij relu(g) α; cam = relu(Σ_k w_k A_k)."""
    lm = wb.models.get("zoo-digits-cnn")
    from analyses.attribution_image import cam_layer, load_image

    layer = cam_layer(lm)
    for image in ("digits:3", "digits:7"):
        x, _, _ = load_image(wb, lm, image)
        store = {}
        h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
        logits = lm.model(x.clone().requires_grad_(True))
        h.remove()
        target = int(logits.argmax())
        grads = torch.autograd.grad(logits[0, target], store["a"])[0].double().numpy()
        acts = store["a"].detach().double().numpy()
        ours = image_methods.gradcam_pp_map(lm.model, layer, x, target)[0, 0].double().numpy()
        for eps, rtol in ((0.0, 1e-5), (1e-6, 1e-2)):  # the paper's closed form; their eps, which shifts ~0.2%
            g2, g3 = grads ** 2, grads ** 3
            with np.errstate(divide="ignore", invalid="ignore"):
                aij = g2 / (2 * g2 + acts.sum(axis=(2, 3))[:, :, None, None] * g3 + eps)
            aij = np.where(grads != 0, aij, 0)
            weights = (np.maximum(grads, 0) * aij).sum(axis=(2, 3))
            theirs = np.maximum((weights[:, :, None, None] * acts).sum(1), 0)[0]
            assert theirs.max() > 0
            np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-6 * theirs.max())


def test_integrated_gradients_completeness_on_the_zoo_cnn(wb):
    lm = wb.models.get("zoo-digits-cnn")
    from analyses.attribution_image import load_image

    x, _, _ = load_image(wb, lm, "digits:11")
    target = int(lm.model(x).argmax())
    a = image_methods.integrated_gradients(image_methods.ImageTask(lm.model, x, target), n_steps=256)
    with torch.no_grad():
        gap = float(lm.model(x)[0, target] - lm.model(torch.zeros_like(x))[0, target])
    assert a.scores.sum() == pytest.approx(gap, rel=0.02)


def test_rise_curves_reward_the_right_order(planted):
    right = np.zeros((8, 8))
    right[REGION] = 1.0
    wrong = 1.0 - right
    good, bad = image_methods.deletion_insertion(planted, right), image_methods.deletion_insertion(planted, wrong)
    assert good["deletion_auc"] < bad["deletion_auc"]
    assert good["insertion_auc"] > bad["insertion_auc"]
    assert len(good["deletion_curve"]) == 65  # 0..64 pixels


def test_the_image_spec_on_the_zoo_cnn(wb):
    spec = AttributionImageSpec(model="zoo-digits-cnn", image="digits:3", methods=("gradcam", "gradcam_pp",
                                                                                  "occlusion", "shap"),
                                shap_samples=50)
    res = wb.run(spec).result
    s = res.summary
    assert s["label"] == 9 and s["target"] == s["predicted"]
    m = res.tables["methods"].set_index("method")
    assert (m.deletion_auc < m.deletion_auc_random).all()  # on this confident digit every method beats random
    assert len(res.tables["maps"]) == 4 * 64
    assert {"overlays", "faithfulness", "deletion_insertion", "agreement", "cost"} <= set(res.figures)
    assert wb.run(spec).cached


def test_uploads_png_and_npy(wb):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((32, 24, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    name = store_upload(wb, buf.getvalue(), "photo.png")
    res = wb.run(AttributionImageSpec(model="zoo-digits-cnn", image=name, methods=("gradcam",))).result
    assert "converted to 1×8×8" in res.summary["description"] and res.summary["label"] is None
    npy = io.BytesIO()
    np.save(npy, np.zeros((3, 32, 32), np.float32))
    bad = store_upload(wb, npy.getvalue(), "x.npy")
    with pytest.raises(BadInput, match=r"shape \(3, 32, 32\); zoo-digits-cnn takes \(1, 8, 8\)"):
        wb.run(AttributionImageSpec(model="zoo-digits-cnn", image=bad, methods=("gradcam",)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(target=12), "class 12 is out of range"),
    (dict(image="digits:9999"), "out of range: the held-out split has"),
    (dict(image="upload:abc123"), "no uploaded image"),
    (dict(image="/etc/passwd"), "digits:N or upload:SHA"),
    (dict(methods=("anchors",)), "unknown image method"),
    (dict(model="zoo-lm"), "image attribution needs an image model"),
])
def test_bad_input_gets_a_clear_message(wb, kwargs, message):
    base = dict(model="zoo-digits-cnn", image="digits:0", methods=("gradcam",))
    with pytest.raises(BadInput, match=message):
        wb.run(AttributionImageSpec(**{**base, **kwargs}))


def test_image_batch_averages_over_images(wb):
    from analyses.attribution_image import AttributionImageBatchSpec

    spec = AttributionImageBatchSpec(model="zoo-digits-cnn", images=("digits:0", "digits:1", "digits:2"),
                                     methods=("gradcam", "occlusion"))
    res = wb.run(spec).result
    per_image, per_method = res.tables["per_image"], res.tables["per_method"].set_index("method")
    assert len(per_image) == 6 and res.summary["images"] == 3
    for m in ("gradcam", "occlusion"):
        assert per_method.loc[m, "deletion_auc"] == pytest.approx(per_image[per_image.method == m].deletion_auc.mean())
