"""Recursive DFA one step back: the parts (upstream features, the upstream SAE's bias and error, the value and
LN biases, the encoder's constant) add up to a hook_z feature's pre-activation with the pattern and LN1 scale
held; a term is exactly what removing that feature at that source costs with them held; on the zoo LM the
largest upstream terms keep their sign when the pattern and LN scale are recomputed; wrong SAEs get clear messages."""
import pytest
import torch

from tests.circuits.random_sae import random_sae


def test_parts_add_up_on_a_hand_built_model_and_a_term_is_its_held_removal():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuits.encoder import affine_encoder, pre_activation
    from circuits.upstream import removal_change, upstream_terms, value_path

    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_vocab=50,
                                  attn_only=True, act_fn=None, seed=3)
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(1))
    _, cache = model.run_with_cache(tokens)
    z = cache["blocks.1.attn.hook_z"][0].reshape(12, -1)
    attn_sae, up = random_sae(32, 20, 0, std=0.5), random_sae(32, 64, 1, std=0.5)
    enc = affine_encoder(attn_sae)
    for f, dest in ((0, 11), (5, 7), (13, 3)):
        weight = enc.per_head(4)[:, :, f]
        path, frozen = value_path(model, 1, tokens, weight, dest)
        assert torch.allclose(path.resid, cache["blocks.1.hook_resid_pre"][0], atol=1e-6)
        terms = upstream_terms(path, up)
        assert terms.linearity_error < 1e-4
        total = sum(terms.parts().values()) + float(enc.bias[f])
        assert total == pytest.approx(float(pre_activation(attn_sae, z)[dest, f]), abs=1e-4)
        assert (terms.features[:, dest + 1:] == 0).all()  # causal: nothing from after the destination
        per = terms.features.sum(0)
        s, j = divmod(int(per.abs().argmax()), per.shape[1])
        direction = terms.acts[s, j] * up.W_dec[j].detach()
        assert removal_change(frozen, weight, dest, s, direction, hold=True) == pytest.approx(float(per[s, j]), abs=1e-4)


@pytest.fixture(scope="module")
def induction_feature(wb, attention_sae):
    from analyses.attention_features import AttentionFeaturesSpec

    f = wb.run(AttentionFeaturesSpec(model="zoo-lm", sae=attention_sae)).result.tables["features"]
    return int(f[(f.family == "induction") & (f.top_head == "L1H1")].sort_values("density").feature.iloc[-1])


PROMPT = ("def total(values, weight):\n    result = weight * sum(values)\n    return result\n\n"
          "def total(values, weight):\n    result = weight")


def test_zoo_lm_upstream_features_of_an_induction_feature(wb, attention_sae, small_sae, induction_feature):
    from analyses.attention_features import AttentionDFASpec
    from analyses.attention_upstream import AttentionUpstreamSpec

    dfa = wb.run(AttentionDFASpec(model="zoo-lm", sae=attention_sae, prompt=PROMPT, feature=induction_feature)).result
    res = wb.run(AttentionUpstreamSpec(model="zoo-lm", sae=attention_sae, prompt=PROMPT, feature=induction_feature,
                                       upstream_sae=small_sae)).result
    s = res.summary
    assert s["upstream_hook"] == "blocks.0.hook_resid_post"  # the same tensor as blocks.1.hook_resid_pre
    assert s["destination"] == dfa.summary["destination"]
    assert s["max_error"] < 1e-3 * max(1.0, abs(s["pre_activation"])) and s["linearity_error"] < 1e-3
    assert sum(s["parts"].values()) == pytest.approx(s["pre_activation"], abs=1e-3)
    top = s["top_term"]
    assert top["held_change"] == pytest.approx(top["contribution"], abs=1e-4)
    assert top["recomputed_change"] == top["recomputed_change"]  # measured (not NaN)
    # the linear picture holds in sign when the pattern and LN scale are recomputed, for the top terms
    assert s["recomputed_same_sign"] >= 0.7, res.tables["terms"].head(10)
    terms = res.tables["terms"]
    assert terms.source.max() <= s["destination"] and (terms.activation > 0).all()
    assert terms.contribution.abs().is_monotonic_decreasing


def test_wrong_upstream_saes_get_clear_messages(wb, attention_sae, small_sae):
    from analyses.attention_upstream import AttentionUpstreamSpec
    from compute.errors import BadInput

    with pytest.raises(BadInput, match="no upstream SAE"):
        AttentionUpstreamSpec(model="zoo-lm", sae=attention_sae, prompt="x = 1").validate()
    with pytest.raises(BadInput, match="residual-stream SAE on the stream entering layer 1"):
        wb.run(AttentionUpstreamSpec(model="zoo-lm", sae=attention_sae, prompt="x = 1", upstream_sae=attention_sae))
