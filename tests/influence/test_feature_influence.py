"""Influence on an SAE feature's activation at a prompt position: the bridge's hook points fire inside the HF
model that kronfluence tracks (same values as run_with_cache); with the identity curvature the score of a
training sequence is exactly ∇act · ∇loss by autograd (the definition); layers after the SAE's hook carry
nothing; a feature that does not fire there is refused with where it does."""
import numpy as np
import pytest
import torch

from analyses.influence_lm import InfluenceLMSpec
from compute.datasets import EOT, corpus_documents
from compute.errors import BadInput
from compute.hooks import merge_heads
from tests.conftest import SMALL_SAE_HOOK

PROMPT = "for item in items:\n    print(item"


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    docs = [d[:400] for d in corpus_documents("heldout")[:12]]
    path = tmp_path_factory.mktemp("train") / "train.txt"
    path.write_text(f"\n{EOT}\n".join(docs), encoding="utf-8")
    return path


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.hook_mlp_out"])
def test_hook_points_fire_inside_the_tracked_hf_model(zoo_lm, hook):
    ids = zoo_lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    seen = []
    handle = zoo_lm.model.hook_dict[hook].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        zoo_lm.model.original_model(input_ids=ids)
    finally:
        handle.remove()
    _, cache = zoo_lm.model.run_with_cache(ids, names_filter=[hook])
    assert torch.allclose(merge_heads(seen[0]), merge_heads(cache[hook]), atol=1e-6)


def _loaded_sae(wb, small_sae, zoo_lm):
    from analyses.sae_source import load_for_model

    return load_for_model(wb, small_sae, zoo_lm)[0]


def _acts_on_prompt(wb, small_sae, zoo_lm):
    from analyses.lm_inputs import prompt_tokens

    sae = _loaded_sae(wb, small_sae, zoo_lm)
    ids = prompt_tokens(zoo_lm, PROMPT)
    _, cache = zoo_lm.model.run_with_cache(ids, names_filter=[SMALL_SAE_HOOK])
    with torch.no_grad():
        return ids[0], sae.encode(cache[SMALL_SAE_HOOK][0])


def test_identity_scores_are_the_gradient_dot_products(wb, zoo_lm, small_sae, train_file):
    from influence.measurements import FeatureActivation
    from influence.training_sets import lm_sequences

    ids, z = _acts_on_prompt(wb, small_sae, zoo_lm)
    feature = int(z[-1].argmax())
    assert z[-1, feature] > 0
    spec = InfluenceLMSpec(model="zoo-lm", train=f"text:{train_file}", strategy="identity", measure="feature",
                           sae=small_sae, feature=feature, position=-1, prompt=PROMPT, top=3)
    r = wb.run(spec).result
    assert r.summary["position"] == len(ids) - 1 and r.summary["activation"] == pytest.approx(float(z[-1, feature]),
                                                                                               rel=1e-4)
    scores = r.tables["scores"].score.to_numpy()
    # the definition, by autograd on the HF model: ∇(−act)·∇L over the tracked layers' weights and biases
    hf = zoo_lm.model.original_model
    tracked = [m for n, m in hf.named_modules() if isinstance(m, torch.nn.Linear) and "mlp" in n
               and ".layers." in n]
    params = [p for m in tracked for p in m.parameters()]
    measure = FeatureActivation(zoo_lm.model.hook_dict[SMALL_SAE_HOOK], _loaded_sae(wb, small_sae, zoo_lm), feature,
                                len(ids) - 1)
    g_query = torch.autograd.grad(-measure(hf, {"input_ids": ids[None]}), params, allow_unused=True)
    train = lm_sequences(zoo_lm.tokenizer, f"text:{train_file}", int(zoo_lm.n_ctx), 1000, is_zoo_lm=True)
    for i in (0, len(train) // 2, len(train) - 1):
        item = train[i]
        logits = hf(input_ids=item["input_ids"][None]).logits[0]
        loss = torch.nn.functional.cross_entropy(logits.float(), item["labels"], ignore_index=-100, reduction="sum")
        g_train = torch.autograd.grad(loss, params)
        want = sum(float((a * b).sum()) for a, b in zip(g_query, g_train) if a is not None)
        assert scores[i] == pytest.approx(want, rel=2e-3, abs=1e-6 * np.abs(scores).max())
    # the SAE reads layer 0's output: layer 1's MLP cannot move it
    mods = r.tables["modules"]
    assert np.abs(mods[mods.layer == 1].total).max() == 0 and np.abs(mods[mods.layer == 0].total).max() > 0
    assert "activation of feature" in r.summary["measurement"]


def test_an_ekfac_feature_query_runs_and_a_silent_feature_is_refused(wb, zoo_lm, small_sae, train_file):
    ids, z = _acts_on_prompt(wb, small_sae, zoo_lm)
    feature = int(z[-1].argmax())
    spec = InfluenceLMSpec(model="zoo-lm", train=f"text:{train_file}", measure="feature", sae=small_sae,
                           feature=feature, prompt=PROMPT, top=3)
    r = wb.run(spec).result
    assert len(r.tables["helpful"]) + len(r.tables["harmful"]) > 0
    silent = int(torch.nonzero(z[-1] == 0)[0])
    with pytest.raises(BadInput, match="does not fire at token"):
        wb.run(InfluenceLMSpec(model="zoo-lm", train=f"text:{train_file}", measure="feature", sae=small_sae,
                               feature=silent, prompt=PROMPT))
    with pytest.raises(BadInput, match="leave the completion"):
        InfluenceLMSpec(model="zoo-lm", measure="feature", sae=small_sae, prompt=PROMPT, completion="x").validate()
    with pytest.raises(BadInput, match="outside the prompt"):
        wb.run(InfluenceLMSpec(model="zoo-lm", train=f"text:{train_file}", measure="feature", sae=small_sae,
                               feature=feature, position=999, prompt=PROMPT))
