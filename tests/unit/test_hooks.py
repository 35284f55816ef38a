"""Hook names read in one place (compute/hooks.py), checked against the zoo LM's own forward pass."""
import pytest
import torch

from compute import hooks
from compute.errors import BadInput

PROMPT = "def add(a, b):\n    return a + b\n"


def test_layers_and_where_a_forward_pass_can_stop():
    assert hooks.layer_of("blocks.1.attn.hook_z") == 1 and hooks.stop_layer("blocks.1.attn.hook_z") == 2
    assert hooks.layer_of("blocks.0.hook_resid_post") == 0
    for outside in ("hook_embed", "ln_final.hook_normalized", "features.5.hook_out"):
        assert hooks.layer_of(outside) is None and hooks.stop_layer(outside) is None


def test_heads_merge_and_split_back():
    z = torch.randn(2, 5, 6, 32)
    flat = hooks.merge_heads(z)
    assert flat.shape == (2, 5, 192) and torch.equal(flat[0, 1, 32:64], z[0, 1, 1])
    assert torch.equal(hooks.split_heads(flat, 6), z)
    assert hooks.merge_heads(torch.ones(2, 5, 7)).shape == (2, 5, 7)
    with pytest.raises(BadInput, match="do not split into 5 heads"):
        hooks.split_heads(flat, 5)


def test_activations_at_a_hook_match_the_full_forward_pass(zoo_lm):
    tokens = zoo_lm.model.to_tokens(PROMPT)
    _, cache = zoo_lm.model.run_with_cache(tokens)
    for hook in ("blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.0.mlp.hook_post"):
        got = hooks.activations_at(zoo_lm.model, hook, tokens)
        want = cache[hook].reshape(*cache[hook].shape[:2], -1)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_hook_z_reaches_the_residual_stream_through_W_O(zoo_lm):
    """Summing hook_z · W_O over heads (plus b_O) is what the attention block adds: hook_attn_out."""
    model = zoo_lm.model
    tokens = model.to_tokens(PROMPT)
    _, cache = model.run_with_cache(tokens)
    z = hooks.merge_heads(cache["blocks.1.attn.hook_z"])[0]
    resid, how = hooks.to_residual(z, model, "blocks.1.attn.hook_z")
    assert "W_O" in how
    torch.testing.assert_close(resid + model.b_O[1], cache["blocks.1.hook_attn_out"][0], rtol=1e-4, atol=1e-4)
    post = cache["blocks.0.mlp.hook_post"][0]
    out, _ = hooks.to_residual(post, model, "blocks.0.mlp.hook_post")
    torch.testing.assert_close(out + model.b_out[0], cache["blocks.0.hook_mlp_out"][0], rtol=1e-4, atol=1e-4)
    assert hooks.to_residual(z, model, "blocks.1.attn.hook_q")[0] is None


def test_an_unknown_hook_names_similar_ones(zoo_lm):
    with pytest.raises(BadInput, match=r"unknown hook 'blocks.7.attn.hook_z' for zoo-lm; e.g. blocks.0.attn.hook_z"):
        hooks.check_hook(zoo_lm.model, "blocks.7.attn.hook_z", "zoo-lm")
