"""Vanilla vs robust digits CNN: the robust twin is robust (PGD accuracy well above the vanilla model's at the
same ε, clean accuracy kept); the comparison runs all nine methods on both models over the same digits,
explaining the true class, and reports the paper's table, the families and the confidence beside the AUCs."""
import numpy as np
import pytest
import torch

FAST = dict(rise_masks=400, lime_samples=300, shap_samples=40, smoothgrad_samples=16, ig_steps=16)


def test_pgd_finds_adversarial_examples_within_the_ball_and_the_twin_resists_them(wb):
    import json

    from attribution.adversarial import accuracy, pgd
    from compute.tasks.digits import Digits

    _, x_te, _, y_te = Digits(json.load(open("assets/zoo/digits_cnn/task.json"))).split_arrays()
    x, y = torch.from_numpy(x_te[:200]), torch.from_numpy(y_te[:200]).long()
    vanilla, robust = wb.models.get("zoo-digits-cnn").model, wb.models.get("zoo-digits-cnn-robust").model
    adv = pgd(vanilla, x, y, 0.1, 20, generator=torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    v_clean, r_clean = accuracy(vanilla, x, y), accuracy(robust, x, y)
    v_pgd, r_pgd = accuracy(vanilla, x, y, 0.1), accuracy(robust, x, y, 0.1)
    assert v_clean > 0.95 and r_clean > 0.95  # robustness did not cost the clean accuracy
    assert r_pgd > v_pgd + 0.15 and r_pgd > 0.8, (v_pgd, r_pgd)


@pytest.fixture(scope="module")
def comparison(wb):
    from analyses.attribution_robust import RobustComparisonSpec

    return wb.run(RobustComparisonSpec(model="zoo-digits-cnn", n_images=4, **FAST)).result


def test_the_comparison_covers_nine_methods_in_three_families_on_both_models(comparison):
    paper = comparison.tables["paper_table"]
    assert len(paper) == 9 and set(paper.family) == {"gradient", "perturbation", "CAM"}
    assert paper.groupby("family").size().min() >= 2
    per_image = comparison.tables["per_image"]
    assert set(per_image.role) == {"vanilla", "robust"} and per_image.groupby("role").size().tolist() == [36, 36]
    # each image explains its true class on both models, and the AUCs are probabilities' averages
    assert per_image[["deletion_auc", "insertion_auc"]].stack().between(0, 1).all()
    assert (paper.insertion_favours.isin(["vanilla", "robust"])).all()
    s = comparison.summary
    assert s["accuracy"]["robust"]["pgd"] > s["accuracy"]["vanilla"]["pgd"]
    assert 0 <= s["insertion_favours_robust"] <= 9 and set(s["gradient_methods_better_on_robust"]) == {
        "integrated_gradients", "shap", "gradient", "smoothgrad"}
    assert set(comparison.figures) >= {"insertion", "deletion", "confidence", "confidence_vs_auc"}


def test_the_favoured_model_is_the_one_with_the_better_auc(comparison):
    p = comparison.tables["paper_table"]
    assert ((p.insertion_robust > p.insertion_vanilla) == (p.insertion_favours == "robust")).all()
    assert ((p.deletion_robust < p.deletion_vanilla) == (p.deletion_favours == "robust")).all()
    pm = comparison.tables["per_method"].set_index(["role", "method"])
    for _, r in p.iterrows():
        assert r.insertion_vanilla == pytest.approx(pm.loc[("vanilla", r.method), "insertion_auc"])


def test_two_equal_models_or_a_non_digits_model_are_refused(wb):
    from analyses.attribution_robust import RobustComparisonSpec
    from compute.errors import BadInput

    with pytest.raises(BadInput, match="two different models"):
        RobustComparisonSpec(model="zoo-digits-cnn", robust_model="zoo-digits-cnn").validate()
    with pytest.raises(BadInput, match="not a digits classifier"):
        wb.run(RobustComparisonSpec(model="zoo-digits-cnn", robust_model="zoo-lm", n_images=2, **FAST))
