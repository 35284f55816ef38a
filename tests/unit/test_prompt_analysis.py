import numpy as np
import pytest
import torch

from analyses.prompt import PromptSpec
from compute.errors import BadInput

PROMPT = "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"


@pytest.fixture(scope="module")
def outcome(wb):
    return wb.run(PromptSpec(model="zoo-lm", prompt=PROMPT, top_k=5))


def test_predictions_are_the_models_softmax(outcome, zoo_lm):
    res = outcome.result
    ids = torch.tensor([res.tables["tokens"].token_id.tolist()])
    with torch.no_grad():
        probs = zoo_lm.model(ids)[0].softmax(-1)
    preds = res.tables["predictions"]
    for pos in (0, len(ids[0]) // 2, len(ids[0]) - 1):
        rows = preds[preds.position == pos].sort_values("rank")
        top = probs[pos].topk(5)
        assert rows.next_token_id.tolist() == top.indices.tolist()
        np.testing.assert_allclose(rows.prob.to_numpy(), top.values.numpy(), rtol=1e-4)
    assert res.tables["tokens"].token.iloc[0] == "<|endoftext|>"  # BOS first


def test_logit_lens_last_layer_is_the_final_prediction(outcome):
    res = outcome.result
    lens = res.tables["logit_lens"]
    last = lens[lens.layer == lens.layer.max()].sort_values("position")
    top1 = res.tables["predictions"].query("rank == 1").sort_values("position")
    assert last.top_token.tolist() == top1.next_token.tolist()
    np.testing.assert_allclose(last.top_prob.to_numpy(), top1.prob.to_numpy(), rtol=1e-4)


def test_attention_rows_are_distributions(outcome):
    att = outcome.result.tables["attention"]
    sums = att.groupby(["layer", "head", "query_pos"]).weight.sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-4)
    assert (att.key_pos <= att.query_pos).all()  # causal


def test_figures_exist_per_layer(outcome):
    figs = outcome.result.figures
    assert {"predictions", "logit_lens", "attention_layer0", "attention_layer1"} <= set(figs)


def test_mean_loss_matches_hugging_face_loss(outcome, zoo_lm):
    from transformers import AutoModelForCausalLM

    from compute.models import ZOO

    hf = AutoModelForCausalLM.from_pretrained(ZOO["zoo-lm"].path).eval()
    ids = torch.tensor([outcome.result.tables["tokens"].token_id.tolist()])
    with torch.no_grad():
        loss = hf(ids, labels=ids).loss.item()
    assert outcome.result.summary["mean_loss"] == pytest.approx(loss, rel=1e-4)


def test_empty_prompt(wb):
    with pytest.raises(BadInput, match="prompt is empty"):
        wb.run(PromptSpec(model="zoo-lm", prompt="  \n "))


def test_prompt_longer_than_context(wb, zoo_lm):
    long = "x = 1\n" * (zoo_lm.n_ctx * 2)
    with pytest.raises(BadInput, match=r"longer than zoo-lm's context of \d+ tokens"):
        wb.run(PromptSpec(model="zoo-lm", prompt=long))


def test_huge_prompt_is_refused_before_tokenising(wb):
    with pytest.raises(BadInput, match="characters; the limit"):
        wb.run(PromptSpec(model="zoo-lm", prompt="a" * 100_000))


def test_image_model_refuses_prompts(wb):
    with pytest.raises(BadInput, match="image model"):
        wb.run(PromptSpec(model="zoo-digits-cnn", prompt="hello"))
