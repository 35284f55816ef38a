"""Faithfulness as ReAGent's evaluation code computes it (the default) and the workbench's earlier
definition (a labelled option): the distance, the empty-rationale baseline, the per-draw normalisation,
the importance each method feeds, which ranking the curves and agreement use, and the spec's field."""
import numpy as np
import pytest
import torch

from analyses.attribution_text import AttributionTextSpec, default_replacement
from attribution import text_methods
from attribution.faithfulness import (hellinger, paper_importance, random_metrics, ranking, reagent_distance,
                                      soft_metrics, soft_scores_reagent)
from attribution.text_methods import TokenAttribution
from attribution.text_task import TextTask
from tests.attribution.toy import KEY_POS, toy_model

PROMPT_IDS = [0, 5, 7, 11, 4, 9, 2, 6, 13, 8]
KEY_FEATURE = KEY_POS - 1


@pytest.fixture(scope="module")
def task():
    ids = torch.tensor(PROMPT_IDS)
    return TextTask(toy_model(), ids, torch.tensor([PROMPT_IDS[KEY_POS]]))


def their_soft_norm(task: TextTask, keep_prob: torch.Tensor, uniform: torch.Tensor) -> tuple[float, float]:
    """ReAGent's soft_norm_sufficiency / soft_norm_comprehensiveness as their code reads (base_masking.py:
    `feature_mask = rand < ratio`; soft_sufficiency.py: `1 - sum((sqrt p - sqrt q)^2 / sqrt 2)`;
    SufficiencyEvaluator(rationale_ratio=0) for the baseline), for one draw of `uniform` [n, d]; BOS kept."""
    wte = task.embed(task.prompt_ids).detach().float()

    def prob(embeds):
        return task.next_distribution_embeds(embeds[None])[0]

    def distance(p, q):
        return torch.sum(torch.pow(torch.sqrt(p) - torch.sqrt(q), 2) / torch.sqrt(torch.tensor(2.0)))

    q = prob(wte)
    ratio = torch.cat([torch.ones(task.first), keep_prob])
    zero = torch.cat([torch.ones(task.first), torch.zeros(task.n_features)])
    suff0 = 1 - distance(prob(wte * zero[:, None]), q)
    suff = 1 - distance(prob(wte * (uniform < ratio[:, None])), q)
    comp = distance(prob(wte * (uniform < (1 - torch.cat([torch.zeros(task.first), keep_prob]))[:, None])), q)
    return float(max(0, suff - suff0) / (1 - suff0)), float(comp / (1 - suff0))


def test_the_distance_is_theirs_not_hellinger():
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(reagent_distance(p, q)) == pytest.approx(np.sqrt(2))  # Σ(√p−√q)²/√2 = 2/√2
    assert float(hellinger(p, q)) == pytest.approx(1.0)
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    expected = ((np.sqrt(0.5) - np.sqrt(0.9)) ** 2 + (np.sqrt(0.5) - np.sqrt(0.1)) ** 2) / np.sqrt(2)
    assert float(reagent_distance(p, q)) == pytest.approx(expected)


def test_a_certain_rationale_gives_their_numbers_exactly(task):
    """Importance 0 or 1 leaves nothing to chance: our Soft-NS/NC equal their code's on the same model."""
    imp = np.zeros(task.n_features)
    imp[KEY_FEATURE] = 1.0
    ours = soft_scores_reagent(task, imp[None])
    theirs = their_soft_norm(task, torch.tensor(imp, dtype=torch.float32), torch.rand(task.n_prompt, 80))
    assert ours["soft_ns"] == pytest.approx(theirs[0], abs=1e-6)
    assert ours["soft_nc"] == pytest.approx(theirs[1], abs=1e-6)
    assert ours["soft_ns"] > 0.5 and ours["soft_nc"] > 0.5  # the planted token is the whole story


def test_soft_ns_is_normalised_per_draw_as_they_do(task):
    """max(0, ·) applies to each draw before the mean (theirs is one draw per example): the mean over
    many draws of their per-draw numbers, not the normalisation of a mean Soft-S."""
    imp = np.full(task.n_features, 0.5 / (task.n_features - 1))
    imp[KEY_FEATURE] = 0.5
    draws = 400
    ours = soft_scores_reagent(task, np.repeat(imp[None], draws, axis=0), seed=3)
    gen = torch.Generator().manual_seed(11)
    theirs = np.array([their_soft_norm(task, torch.tensor(imp, dtype=torch.float32),
                                       torch.rand(task.n_prompt, 80, generator=gen)) for _ in range(draws)])
    ns, nc = theirs.mean(0)
    se_ns, se_nc = theirs.std(0) / np.sqrt(draws)
    assert abs(ours["soft_ns"] - ns) < 4 * se_ns * np.sqrt(2) + 1e-6
    assert abs(ours["soft_nc"] - nc) < 4 * se_nc * np.sqrt(2) + 1e-6


def test_gradient_methods_feed_the_l2_norm_over_the_hidden_dim(task):
    """inseq's aggregation, which the paper's numbers were computed on: ‖attr_i‖₂ / Σ_j ‖attr_j‖₂."""
    from captum.attr import InputXGradient

    a = text_methods.input_x_gradient(task)
    x = task.embed(task.prompt_ids).detach()[None].float().requires_grad_(True)
    attr = InputXGradient(task.logprob_embeds).attribute(x)[0, task.first :].detach()
    norm = attr.norm(dim=-1).double().numpy()
    assert np.allclose(paper_importance(a), norm / norm.sum())
    assert np.allclose(a.scores, attr.sum(-1).double().numpy(), atol=1e-6)  # the scores stay signed sums
    ig = text_methods.integrated_gradients(task, n_steps=16)
    assert ig.importance is not None and ig.importance.sum() == pytest.approx(1.0) and (ig.importance >= 0).all()


def test_attention_feeds_the_softmax_of_its_weights(task):
    a = text_methods.last_layer_attention(task)
    e = np.exp(a.scores)
    assert np.allclose(paper_importance(a), e / e.sum())


def test_a_method_they_did_not_evaluate_feeds_its_normalised_magnitude():
    a = TokenAttribution("occlusion", np.array([2.0, -1.0, 1.0]), {}, 0.0)
    assert np.allclose(paper_importance(a), [0.5, 0.25, 0.25])


def test_the_curves_and_agreement_rank_as_the_soft_metrics_do():
    """Under their definition a token that strongly lowers p(target) is important (its magnitude), as it
    is for Soft-NS/NC; the workbench definition ranks it last, and says so."""
    a = TokenAttribution("input_x_gradient", np.array([0.1, -3.0, 0.5]), {}, 0.0,
                         importance=np.array([0.1, 0.7, 0.2]))
    assert int(np.argmax(ranking(a, "reagent_code"))) == 1
    assert int(np.argmin(ranking(a, "workbench"))) == 1


def test_their_random_baseline_is_fresh_noise_per_draw(task):
    r = random_metrics(task, "reagent_code", samples=8, seed=0)
    again = random_metrics(task, "reagent_code", samples=8, seed=0)
    assert r == again and 0 <= r["soft_ns"] and r["soft_nc"] > 0
    one_hot = np.zeros(task.n_features)
    one_hot[KEY_FEATURE] = 1.0
    planted = soft_metrics(task, TokenAttribution("x", one_hot, {}, 0.0), "reagent_code", 8, 0)
    assert planted["soft_ns"] > r["soft_ns"] and planted["soft_nc"] > r["soft_nc"]


def test_the_default_is_theirs_and_stored_specs_keep_the_workbench_one():
    spec = AttributionTextSpec(model="zoo-lm", prompt="x = 1")
    assert spec.faithfulness == "reagent_code"
    assert spec.to_dict()["faithfulness"] == "reagent_code"
    old = AttributionTextSpec(model="zoo-lm", prompt="x = 1", faithfulness="workbench")
    stored = old.to_dict()
    assert "faithfulness" not in stored  # what the code before the choice wrote, so the hash is the same
    assert AttributionTextSpec.from_dict(stored, stored=True).faithfulness == "workbench"
    assert AttributionTextSpec.from_dict(stored).faithfulness == "reagent_code"  # a user's JSON today
    assert AttributionTextSpec.from_dict(stored, stored=True).hash == old.hash != spec.hash


def test_an_unknown_definition_is_refused():
    from compute.errors import BadInput

    with pytest.raises(BadInput, match="faithfulness must be one of"):
        AttributionTextSpec(model="zoo-lm", prompt="x = 1", faithfulness="kl").validate()


def test_the_zoo_lm_defaults_to_the_zoo_masked_lm(wb, zoo_lm):
    assert default_replacement(zoo_lm) == "zoo-mlm"
    assert default_replacement(wb.models.get("zoo-modadd")) == "frequency"  # its own vocabulary


def test_a_result_says_which_definition_it_follows(wb):
    spec = AttributionTextSpec(model="zoo-lm", prompt="import os\nimport sys", target="\n",
                               methods=("occlusion", "input_x_gradient"), faithfulness_samples=2)
    res = wb.run(spec).result
    assert res.summary["faithfulness"] == "reagent_code"
    assert "ReAGent" in res.summary["faithfulness_definition"]
    m = res.tables["methods"].set_index("method")
    legacy = wb.run(AttributionTextSpec(**{**spec.__dict__, "faithfulness": "workbench"})).result
    w = legacy.tables["methods"].set_index("method")
    assert legacy.summary["faithfulness"] == "workbench"
    assert not np.isclose(m.loc["occlusion", "soft_nc"], w.loc["occlusion", "soft_nc"])
