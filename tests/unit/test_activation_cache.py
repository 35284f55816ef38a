import pytest
import torch

from compute.activations import ActivationCache
from compute.errors import BadInput


def test_cache_builds_once_and_matches_a_fresh_forward_pass(zoo_lm, tmp_path):
    cache = ActivationCache(tmp_path)
    hook = "blocks.0.attn.hook_z"
    acts = cache.get_or_build(zoo_lm, "zoo-stdlib", hook, n_tokens=512, seq_len=64)
    assert cache.builds == 1
    n_heads, d_head = zoo_lm.model.cfg.n_heads, zoo_lm.model.cfg.d_head
    x = acts.load()
    assert x.shape == (512, n_heads * d_head)  # heads concatenated
    tokens = acts.tokens()
    assert tokens.shape == (8, 64) and (tokens[:, 0] == zoo_lm.tokenizer.bos_token_id).all()
    with torch.no_grad():
        _, c = zoo_lm.model.run_with_cache(tokens[:2], names_filter=lambda n: n == hook)
    assert torch.allclose(x[:128], c[hook].reshape(128, -1), atol=1e-5)
    # a second request for the same or fewer tokens is a disk read
    again = cache.get_or_build(zoo_lm, "zoo-stdlib", hook, n_tokens=256, seq_len=64)
    assert cache.builds == 1 and again.path == acts.path
    assert torch.equal(again.load(256), x[:256])
    # more tokens than cached: rebuilt larger
    cache.get_or_build(zoo_lm, "zoo-stdlib", hook, n_tokens=1024, seq_len=64)
    assert cache.builds == 2


def test_unknown_hook_and_bad_sizes(zoo_lm, tmp_path):
    cache = ActivationCache(tmp_path)
    with pytest.raises(BadInput, match="unknown hook 'blocks.9.hook_resid_post'"):
        cache.get_or_build(zoo_lm, "zoo-stdlib", "blocks.9.hook_resid_post", 128)
    with pytest.raises(BadInput, match="positive"):
        cache.get_or_build(zoo_lm, "zoo-stdlib", "blocks.0.hook_resid_post", 0)
    with pytest.raises(BadInput, match="unknown dataset"):
        cache.get_or_build(zoo_lm, "wikipedia", "blocks.0.hook_resid_post", 128)


def test_a_dataset_smaller_than_the_request_is_cached_whole_once(zoo_lm, tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("def f(x):\n    return x\n" * 50)
    cache = ActivationCache(tmp_path / "acts")
    first = cache.get_or_build(zoo_lm, f"text:{text}", "blocks.0.hook_resid_post", n_tokens=100_000, seq_len=32)
    assert first.meta["exhausted"] and first.meta["n_tokens"] < 100_000
    again = cache.get_or_build(zoo_lm, f"text:{text}", "blocks.0.hook_resid_post", n_tokens=100_000, seq_len=32)
    assert cache.builds == 1 and again.path == first.path
