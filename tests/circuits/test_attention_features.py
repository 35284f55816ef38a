"""Attention features: DFA is exact (terms + bias = the SAE's pre-activation) on a hand-built model and on the
zoo LM; per-head shares sum to 1; a planted feature that reads one head is attributed to it; the zoo LM's
layer-1 induction features come out induction and attributed to its induction head L1H1."""
import numpy as np
import pytest
import torch

from tests.circuits.random_sae import random_sae


def test_dfa_is_exact_on_a_hand_built_attention_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuits.dfa import attention_run, dfa_matrix
    from circuits.encoder import affine_encoder, pre_activation

    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_vocab=50,
                                  attn_only=True, act_fn=None, seed=1)
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    run = attention_run(model, 1, tokens)
    _, cache = model.run_with_cache(tokens)
    assert torch.allclose(run.z, cache["blocks.1.attn.hook_z"].reshape(3, 12, -1), atol=1e-5)
    sae = random_sae(32, 20)
    enc = affine_encoder(sae)
    for row in range(3):
        pre = pre_activation(sae, run.z[row])  # [pos, d_sae]
        for f in (0, 7, 19):
            M = dfa_matrix(run, enc, row, f)  # [heads, dest, src]
            assert torch.allclose(M.sum((0, 2)) + enc.bias[f], pre[:, f], atol=1e-4)
            assert (M[:, torch.triu_indices(12, 12, 1)[0], torch.triu_indices(12, 12, 1)[1]] == 0).all()  # causal


def test_a_planted_feature_reading_one_head_is_attributed_to_that_head():
    from circuits.encoder import affine_encoder
    from circuits.heads import activation_contributions, shares, weight_shares

    n_heads, d_head = 4, 8
    sae = random_sae(n_heads * d_head, 6)
    with torch.no_grad():  # feature 2 reads and writes only head 3
        mask = torch.zeros(n_heads, d_head)
        mask[3] = 1
        sae.W_enc[:, 2] *= mask.reshape(-1)
        sae.W_dec[2] *= mask.reshape(-1)
    ws = weight_shares(sae.W_dec, n_heads)
    assert torch.allclose(ws.sum(1), torch.ones(6))
    assert ws[2, 3] == pytest.approx(1.0)
    acts = torch.randn(4000, n_heads * d_head)
    contrib, fires = activation_contributions(sae, affine_encoder(sae), acts, n_heads)
    sh = shares(contrib)
    assert fires[2] > 0
    assert sh[2, 3] == pytest.approx(1.0, abs=1e-5)
    live = fires > 0
    assert torch.allclose(sh[live].sum(1), torch.ones(int(live.sum())), atol=1e-5)


@pytest.fixture(scope="module")
def features(wb, attention_sae):
    from analyses.attention_features import AttentionFeaturesSpec

    return wb.run(AttentionFeaturesSpec(model="zoo-lm", sae=attention_sae)).result


def test_zoo_lm_dfa_is_exact_and_shares_sum_to_one(features):
    s = features.summary
    assert s["dfa_max_error"] < 1e-3 and s["encoder_affine_error"] < 1e-4
    f = features.tables["features"]
    live = f[~f.dead]
    heads = [f"L1H{h}" for h in range(6)]
    assert np.allclose(live[[f"weight_{h}" for h in heads]].sum(1), 1, atol=1e-5)
    assert np.allclose(live[[f"activation_{h}" for h in heads]].sum(1), 1, atol=1e-4)
    assert s["induction_features"] + s["short_range_features"] + s["long_range_features"] == s["live_features"]


def test_induction_features_are_attributed_to_the_induction_head(features):
    f = features.tables["features"]
    induction = f[f.family == "induction"]
    assert len(induction) >= 10, features.summary
    by_head = induction.top_head.value_counts()
    assert by_head.index[0] == "L1H1" and by_head["L1H1"] > len(induction) / 2, by_head.to_dict()
    # and the other way round: L1H1's own top features are induction features
    l1h1 = features.tables["heads"].set_index("head").loc["L1H1"]
    assert l1h1["top_induction"] >= 0.8 * (l1h1["top_induction"] + l1h1["top_short-range context"]
                                           + l1h1["top_long-range context"])


def test_one_feature_and_dfa_on_a_prompt(wb, attention_sae, features):
    from analyses.attention_features import AttentionDFASpec, AttentionFeatureSpec

    f = features.tables["features"]
    feat = int(f[(f.family == "induction") & (f.top_head == "L1H1")].sort_values("density").feature.iloc[-1])
    one = wb.run(AttentionFeatureSpec(model="zoo-lm", sae=attention_sae, feature=feat)).result
    assert one.summary["family"] == "induction" and one.summary["top_head"] == "L1H1"
    assert one.tables["heads"].weight_share.sum() == pytest.approx(1.0)
    prompt = "import os\nimport sys\n\ndef main(path):\n    return os.path.join(path, sys.argv[1])\nos.path.join"
    res = wb.run(AttentionDFASpec(model="zoo-lm", sae=attention_sae, prompt=prompt, feature=feat)).result
    s = res.summary
    assert s["dfa_max_error"] < 1e-3
    tok = res.tables["tokens"]
    assert np.allclose(tok.dfa_sum_plus_bias, tok.pre_activation, atol=1e-3)
    assert s["pre_activation"] == pytest.approx(s["dfa_total"] + s["bias"], abs=1e-3)
    assert set(res.tables["terms"]["head"]) == {f"L1H{h}" for h in range(6)}


def test_an_sae_not_on_hook_z_gets_a_clear_message(wb, small_sae):
    from analyses.attention_features import AttentionDFASpec, AttentionFeaturesSpec
    from compute.errors import BadInput

    with pytest.raises(BadInput, match="attention-output SAE"):
        wb.run(AttentionFeaturesSpec(model="zoo-lm", sae=small_sae))
    with pytest.raises(BadInput, match="attention-output SAE"):
        wb.run(AttentionDFASpec(model="zoo-lm", sae=small_sae, prompt="x = 1"))


def test_a_saelens_hook_z_sae_that_reshapes_its_input_reads_flat_z(tmp_path):
    """SAELens's attention SAEs are saved with reshape_activations="hook_z"; the workbench feeds flat z."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from sae.loading import load_sae

    plain = random_sae(4 * 8, 12, seed=2)
    cfg = StandardSAEConfig(d_in=32, d_sae=12, reshape_activations="hook_z")
    cfg.metadata.hook_name = "blocks.1.attn.hook_z"
    shaped = StandardSAE(cfg)
    shaped.load_state_dict(plain.state_dict())
    shaped.save_model(str(tmp_path))
    loaded = load_sae(str(tmp_path))
    z = torch.randn(5, 32)
    assert torch.allclose(loaded.encode(z), plain.encode(z), atol=1e-5)
