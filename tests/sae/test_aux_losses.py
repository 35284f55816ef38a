"""aux_k and aux_zipf against their written definitions (sae/aux_losses.py)."""
import math

import torch

from sae.aux_losses import aux_k_loss, aux_zipf_loss, underuse_shortfall, zipf_fit


def test_zipf_fit_recovers_a_planted_law():
    r = torch.arange(1, 1001, dtype=torch.float64)
    density = 0.3 * r.pow(-0.8)
    log_c, alpha = zipf_fit(density)
    assert math.isclose(alpha, 0.8, rel_tol=1e-6) and math.isclose(log_c, math.log(0.3), rel_tol=1e-6)


def test_features_below_the_zipf_curve_are_underused():
    r = torch.arange(1, 201, dtype=torch.float64)
    density = 0.2 * r.pow(-1.0)
    density[150:] *= 0.1  # a starved tail
    s = underuse_shortfall(density, None)
    assert (s[:100] < 1e-6).all()
    assert (s[150:] > 0.85).all()


def test_aux_zipf_equals_aux_k_when_nothing_is_underused():
    torch.manual_seed(0)
    b, d_in, f = 32, 8, 64
    x, x_hat = torch.randn(b, d_in), torch.randn(b, d_in)
    pre = torch.randn(b, f)
    W = torch.randn(f, d_in)
    r = torch.arange(1, f + 1, dtype=torch.float32)
    density = 0.1 * r.pow(-1.0)  # exactly on a Zipf curve
    dead = torch.zeros(f, dtype=torch.bool)
    dead[-10:] = True
    density[-10:] = 0
    a = aux_k_loss(x, x_hat, pre, W, dead, 1.0)
    z = aux_zipf_loss(x, x_hat, pre, W, density, dead, 1.0)
    assert a > 0 and torch.allclose(a, z)


def test_aux_k_matches_sae_lens_topk_aux_loss():
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(1)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=8, d_sae=64, k=4, rescale_acts_by_decoder_norm=False))
    x = torch.randn(32, 8)
    pre = torch.randn(32, 64)
    x_hat = torch.randn(32, 8)
    dead = torch.rand(64) < 0.3
    theirs = sae.calculate_topk_aux_loss(sae_in=x, sae_out=x_hat, hidden_pre=pre, dead_neuron_mask=dead)
    ours = aux_k_loss(x, x_hat, pre, sae.W_dec, dead, sae.cfg.aux_loss_coefficient)
    assert torch.allclose(theirs, ours)


def test_no_dead_no_loss():
    x = torch.randn(4, 8)
    assert aux_k_loss(x, x, torch.randn(4, 16), torch.randn(16, 8), torch.zeros(16, dtype=torch.bool), 1.0) == 0
