"""EK-FAC factors fitted by kronfluence across two processes under torchrun (gloo on the CPU) equal the one-process
fit: the covariances and Λ are sums over examples, the Fisher's labels are drawn per example (influence.fisher),
and the influence scores read from either set of factors agree."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from influence.fisher import FisherDraws, sample_labels


def _factors(wb, spec) -> dict[str, torch.Tensor]:
    folder = wb.artifact_folder(spec) / "influence" / f"factors_{spec.strategy}"
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        for module, t in load_file(path).items():
            out[f"{path.stem}/{module}"] = t.double()
    return out


@pytest.mark.parametrize("model, extra", [("zoo-digits-mlp", {"train": "digits"}),
                                          ("zoo-lm", {"max_sequences": 24})], ids=["digits-mlp", "zoo-lm"])
def test_two_processes_fit_the_factors_one_process_fits(wb, model, extra):
    from analyses.influence import InfluenceFactorsSpec

    one = InfluenceFactorsSpec(model=model, **extra)
    two = InfluenceFactorsSpec(model=model, processes=2, **extra)
    assert "over 2 processes" in two.describe() and "processes" not in one.to_dict()
    wb.run(one)
    wb.run(two)
    a, b = _factors(wb, one), _factors(wb, two)
    assert a.keys() == b.keys() and any(k.startswith("lambda_matrix") for k in a)
    for name in a:
        if "eigenvectors" in name:  # defined up to sign; Λ (in their basis, squared) and the scores check them
            continue
        scale = float(a[name].abs().max().clamp_min(1e-12))
        assert float((a[name] - b[name]).abs().max()) <= 1e-4 * scale, name


def test_the_influence_scores_from_either_fit_agree(wb):
    from analyses.influence_image import InfluenceImageSpec

    common = dict(model="zoo-digits-mlp", image="digits:3", top=10)
    one = wb.run(InfluenceImageSpec(**common)).result.tables["scores"].score.to_numpy()
    two = wb.run(InfluenceImageSpec(**common, processes=2)).result.tables["scores"].score.to_numpy()
    assert np.corrcoef(one, two)[0, 1] > 0.9999
    assert np.allclose(one, two, rtol=1e-3, atol=1e-3 * np.abs(one).max())


def test_fisher_labels_are_drawn_per_example_whatever_the_order():
    data = torch.utils.data.TensorDataset(torch.arange(10.0)[:, None], torch.zeros(10, dtype=torch.long))
    draws = FisherDraws(data, seed=7)
    logits = torch.tensor([[0.0, 1.0, 2.0]] * 10)
    u = torch.stack([draws[i][2] for i in range(10)])
    forward = sample_labels(logits, u)
    backward = sample_labels(logits.flip(0), torch.stack([draws[i][2] for i in reversed(range(10))]))
    assert torch.equal(forward, backward.flip(0))  # the same example gets the same label in any batch order
    assert not torch.equal(u, torch.stack([FisherDraws(data, seed=8)[i][2] for i in range(10)]))
    many = FisherDraws(torch.utils.data.TensorDataset(torch.zeros(20000, 1), torch.zeros(20000, dtype=torch.long)), 0)
    labels = sample_labels(logits[:1].expand(20000, 3), torch.stack([many[i][2] for i in range(20000)]))
    freq = torch.bincount(labels, minlength=3).double() / 20000  # the model's distribution, drawn
    assert torch.allclose(freq, torch.softmax(logits[0].double(), 0), atol=0.015)
