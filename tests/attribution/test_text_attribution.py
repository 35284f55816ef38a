"""Text attribution: every method finds the one token a planted model depends on; IG's completeness
on the zoo LM; faithfulness metrics order constructed attributions; agreement; the analysis spec."""
import numpy as np
import pytest
import torch

from analyses.attribution_text import AttributionTextSpec, build_task
from attribution.registry import TEXT_METHODS
from attribution import text_methods
from attribution.agreement import pairwise
from attribution.faithfulness import deletion_insertion, soft_scores
from attribution.reagent import reagent
from attribution.replacement import FrequencySampler
from attribution.text_task import TextTask
from compute.errors import BadInput
from tests.attribution.toy import KEY_POS, toy_model, toy_tokenizer

PROMPT_IDS = [0, 5, 7, 11, 4, 9, 2, 6, 13, 8]  # BOS, then 9 tokens; the model predicts the token at KEY_POS
KEY_FEATURE = KEY_POS - 1  # features start after BOS


@pytest.fixture(scope="module")
def toy():
    model, tok = toy_model(), toy_tokenizer()
    ids = torch.tensor(PROMPT_IDS)
    task = TextTask(model, ids, torch.tensor([PROMPT_IDS[KEY_POS]]))
    assert task.logprob_ids(ids[None]).exp().item() > 0.9  # the planted behaviour
    return model, tok, task


@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient", "saliency", "occlusion",
                                    "attention_last", "attention_rollout", "shap"])
def test_every_method_ranks_the_planted_token_first(toy, method):
    _, tok, task = toy
    kw = {"tokenizer": tok, "max_evals": 200} if method == "shap" else {}
    a = TEXT_METHODS[method].run(task, **kw)
    assert len(a.scores) == task.n_features
    assert int(np.argmax(a.scores)) == KEY_FEATURE, (method, np.round(a.scores, 3))
    assert a.cost["forward_passes"] >= 1 and a.seconds >= 0


def test_reagent_converges_to_the_planted_token(toy):
    _, tok, task = toy
    sampler = FrequencySampler(tok)
    # keep_top_n = 1: a probe stops only when its single top token alone keeps the target first
    a = reagent(task, sampler, keep_top_n=1, stop_top_k=1, max_steps=200, num_probes=8, seed=1)
    assert a.notes["converged_probes"] == 8
    assert int(np.argmax(a.scores)) == KEY_FEATURE
    assert a.scores.sum() == pytest.approx(1.0)  # a distribution over the context
    assert a.cost["backward_passes"] == 0


def test_integrated_gradients_completeness_on_the_zoo_lm(zoo_lm):
    task = build_task(zoo_lm, "def area(radius):\n    return 3.14 * radius *", " radius", -1)
    a = text_methods.integrated_gradients(task, n_steps=128)
    x = task.embed(task.prompt_ids)[None].float()
    base = x.clone()
    base[:, task.first :] = 0
    with torch.no_grad():
        gap = float(task.logprob_embeds(x) - task.logprob_embeds(base))
    assert abs(gap) > 0.5  # a real difference to explain
    assert a.scores.sum() == pytest.approx(gap, rel=0.03)


def test_faithfulness_orders_perfect_random_and_inverted(toy):
    _, _, task = toy
    n = task.n_features
    perfect = np.zeros(n)
    perfect[KEY_FEATURE] = 1.0
    inverted = np.ones(n)
    inverted[KEY_FEATURE] = 0.0
    rng = np.random.default_rng(0)
    random = [np.exp(r) / np.exp(r).sum() for r in rng.random((5, n))]
    s = {name: soft_scores(task, a, samples=20) for name, a in (("perfect", perfect), ("inverted", inverted))}
    rand = [soft_scores(task, a, samples=20, seed=i) for i, a in enumerate(random)]
    for metric in ("soft_ns", "soft_nc"):
        r = np.mean([x[metric] for x in rand])
        assert s["perfect"][metric] > r > s["inverted"][metric] - 1e-9, (metric, s, r)
    d_perfect, d_inverted = deletion_insertion(task, perfect), deletion_insertion(task, inverted)
    assert d_perfect["deletion_auc"] < d_inverted["deletion_auc"]
    assert d_perfect["insertion_auc"] > d_inverted["insertion_auc"]
    assert d_perfect["deletion_curve"][0] == pytest.approx(d_perfect["insertion_curve"][-1], rel=1e-5)


def test_agreement_of_a_method_with_itself_is_one():
    a = np.array([0.3, -0.1, 0.8, 0.05, 0.2])
    b = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    table = pairwise({"a": a, "b": b}, k=2).set_index(["method_a", "method_b"])
    for m in ("a", "b"):
        assert table.loc[(m, m), "kendall_tau"] == pytest.approx(1.0)
        assert table.loc[(m, m), "spearman"] == pytest.approx(1.0)
        assert table.loc[(m, m), "top2_overlap"] == 1.0
    assert table.loc[("a", "b"), "kendall_tau"] == table.loc[("b", "a"), "kendall_tau"]


def test_agreement_between_two_rankings_by_hand():
    """a ranks tokens 2 > 0 > 4 > 3 > 1, b ranks 4 > 3 > 2 > 1 > 0. Of the 10 pairs, a and b order 5 the
    same way ((0,2), (1,2), (1,3), (1,4), (3,4)) and 5 oppositely: τ = 0. Ranks (1 = lowest):
    a = (4, 1, 5, 2, 3), b = (1, 2, 3, 4, 5); Σd² = 9 + 1 + 4 + 4 + 4 = 22, ρ = 1 − 6·22 / (5·24) = −0.1.
    Top-2: {2, 0} and {4, 3} share nothing; top-3: {2, 0, 4} and {4, 3, 2} share two."""
    a = np.array([0.3, -0.1, 0.8, 0.05, 0.2])
    b = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    c = np.array([0.0, 0.1, 0.2, 0.4, 0.3])  # b with its top two swapped: 9 of 10 pairs agree, τ = 0.8
    assert pairwise({"b": b, "c": c}).set_index(["method_a", "method_b"]).loc[("b", "c"), "kendall_tau"] == \
        pytest.approx(0.8)
    t2 = pairwise({"a": a, "b": b}, k=2).set_index(["method_a", "method_b"]).loc[("a", "b")]
    assert t2.kendall_tau == pytest.approx(0.0, abs=1e-12)
    assert t2.spearman == pytest.approx(-0.1)
    assert t2.top2_overlap == 0.0
    t3 = pairwise({"a": a, "b": b}, k=3).set_index(["method_a", "method_b"]).loc[("a", "b")]
    assert t3.top3_overlap == pytest.approx(2 / 3)


def test_the_comparison_spec_on_the_zoo_lm(wb):
    spec = AttributionTextSpec(model="zoo-lm", prompt="import os\nimport sys\n\nprint(os.path", target=".",
                               methods=("reagent", "shap", "integrated_gradients", "saliency", "occlusion",
                                        "attention_rollout"), shap_max_evals=200, faithfulness_samples=4)
    out = wb.run(spec)
    res = out.result
    m = res.tables["methods"].set_index("method")
    assert list(m.index) == list(spec.methods)
    assert (m.forward_passes > 0).all() and m.loc["integrated_gradients", "backward_passes"] > 0
    assert m.loc["reagent", "backward_passes"] == 0 and m.loc["shap", "backward_passes"] == 0
    assert res.summary["notes"]["shap"]["model_calls"] >= 100
    assert res.summary["notes"]["reagent"]["replacement"] == "frequency"
    assert {"token_heatmap", "faithfulness", "deletion_insertion", "agreement", "cost"} <= set(res.figures)
    n = res.summary["prompt_tokens"]
    assert len(res.tables["scores"]) == n * len(spec.methods)
    assert wb.run(spec).cached


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="   "), "prompt is empty"),
    (dict(target_id=99_999), "not in the vocabulary"),
    (dict(methods=("gradcam",)), "unknown method"),
    (dict(methods=()), "at least one"),
    (dict(replacement="bert"), "unknown ReAGent replacement"),
    (dict(prompt="x"), "at least two tokens"),
])
def test_bad_input_gets_a_clear_message(wb, kwargs, message):
    base = dict(model="zoo-lm", prompt="import os\nimport", methods=("saliency",))
    with pytest.raises(BadInput, match=message):
        wb.run(AttributionTextSpec(**{**base, **kwargs}))


def test_reagent_replacement_models_are_labelled(wb):
    base = dict(model="zoo-lm", prompt="import os\nimport sys\n\nprint(os.path", methods=("reagent",),
                reagent_probes=4, reagent_steps=50, faithfulness_samples=2)
    res = wb.run(AttributionTextSpec(replacement="zoo-mlm", **base)).result
    notes = res.summary["notes"]["reagent"]
    assert notes["replacement"] == "masked_lm" and "zoo masked LM" in notes["replacement_label"]
    # the paper's RoBERTa needs its weights: offline, a clear message and a way out
    with pytest.raises(BadInput, match="cannot be loaded.*'frequency' replacement always works offline"):
        wb.run(AttributionTextSpec(replacement="roberta-base", **base))
