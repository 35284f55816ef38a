"""A feature's dashboard, features on a prompt, steering / ablation and the SAE-error decomposition."""
import numpy as np
import pytest
import torch

from analyses.sae_dashboard import SAEDashboardSpec, SAEFeatureSpec
from analyses.sae_error import SAEErrorSpec
from analyses.sae_prompt import SAEPromptSpec
from analyses.sae_steer import SAESteerSpec
from analyses.sae_source import load_for_model
from compute.errors import BadInput
from sae.dark_matter import fit_error_regression
from sae.interventions import steering_hook

PROMPT = "def __init__(self, name):\n    self.name = name\n    self.name"


def test_feature_dashboard_panels(wb, small_sae):
    dash = wb.run(SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384)).result
    feature = int(dash.tables["features"].sort_values("fires").iloc[-1].feature)  # the busiest feature
    res = wb.run(SAEFeatureSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, feature=feature)).result
    s = res.summary
    assert s["feature"] == feature and s["fires"] > 0 and s["label"]
    top = res.tables["examples"].query("group == 'top'")
    assert len(top) == 20 and top.activation.is_monotonic_decreasing
    assert top.loss_effect.notna().any()  # the ablation's loss effect per context
    assert {"logits_direct", "logits_through_model", "neighbours", "cofiring"} <= set(res.tables)
    assert res.tables["histogram"]["count"].sum() == s["fires"]
    assert {"activation_histogram", "logit_effects", "top_contexts", "quantile_contexts"} <= set(res.figures)


def test_features_on_a_prompt(wb, small_sae, zoo_lm):
    res = wb.run(SAEPromptSpec(model="zoo-lm", sae=small_sae, prompt=PROMPT, top_k=4)).result
    toks = res.tables["tokens"]
    assert res.summary["n_tokens"] == len(toks) > 5
    assert (toks.l0 == 8).all()  # TopK k=8
    per = res.tables["token_features"]
    assert per.groupby("position").activation.apply(lambda a: a.is_monotonic_decreasing).all()
    # the error column is the SAE's reconstruction error on that token
    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    from analyses.lm_inputs import prompt_tokens
    from compute.hooks import activations_at

    x = activations_at(zoo_lm.model, hook, prompt_tokens(zoo_lm, PROMPT))[0].float()
    with torch.no_grad():
        err = (x - sae.decode(sae.encode(x))).norm(dim=-1).numpy()
    np.testing.assert_allclose(toks.error_norm.to_numpy(), err, rtol=1e-4)


def test_steering_with_coefficient_zero_changes_nothing(wb, small_sae):
    res = wb.run(SAESteerSpec(model="zoo-lm", sae=small_sae, prompt=PROMPT, steer_features=(3, 7),
                              coefficients=(0.0, 0.0), max_new_tokens=8)).result
    assert res.summary["kl_next_token"] == pytest.approx(0.0, abs=1e-9)
    assert res.summary["max_prob_change"] == 0.0
    assert res.summary["identical_continuations"]


def test_steering_with_a_large_coefficient_changes_the_output(wb, small_sae):
    res = wb.run(SAESteerSpec(model="zoo-lm", sae=small_sae, prompt=PROMPT, steer_features=(3,),
                              coefficients=(40.0,), max_new_tokens=8)).result
    assert res.summary["kl_next_token"] > 0.05
    assert set(res.tables["generations"].model) == {"unmodified", "steered / ablated"}


def test_ablating_every_feature_leaves_the_error_term(wb, small_sae, zoo_lm):
    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    x = torch.randn(2, 5, sae.cfg.d_in) * 3
    out = steering_hook(sae, ablate=range(sae.cfg.d_sae))(x)
    with torch.no_grad():
        error = x - sae.decode(sae.encode(x))
    torch.testing.assert_close(out, error + sae.b_dec.detach(), rtol=1e-4, atol=1e-4)
    # and through the model: the same logits as splicing in the error term (plus the bias no feature owns)
    from analyses.lm_inputs import prompt_tokens

    t = prompt_tokens(zoo_lm, PROMPT)
    with torch.no_grad():
        a = zoo_lm.model.run_with_hooks(t, fwd_hooks=[(hook, steering_hook(sae, ablate=range(sae.cfg.d_sae)))])
        b = zoo_lm.model.run_with_hooks(t, fwd_hooks=[(hook, lambda act, hook=None: act - sae.decode(sae.encode(act))
                                                      + sae.b_dec)])
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_dark_matter_recovers_a_planted_linear_error():
    g = torch.Generator().manual_seed(0)
    d, n = 24, 6000
    x = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) + 2.0
    M = torch.randn(d, d, generator=g) / d ** 0.5
    linear = x @ M
    noise = torch.randn(n, d, generator=g) * linear.std(0)  # the same variance per dimension: R² = 1/2
    exact = fit_error_regression(x[:3000], linear[:3000], x[3000:], linear[3000:])
    assert exact.r2_vector > 0.999 and exact.r2_vector_per_dim > 0.999
    torch.testing.assert_close(exact.A, M, rtol=1e-3, atol=1e-3)
    half = fit_error_regression(x[:3000], (linear + noise)[:3000], x[3000:], (linear + noise)[3000:])
    assert half.r2_vector == pytest.approx(0.5, abs=0.04)
    assert np.mean(half.nonlinear_norm ** 2) == pytest.approx(np.mean(noise[3000:].pow(2).sum(1).numpy()), rel=0.05)
    none = fit_error_regression(x[:3000], noise[:3000], x[3000:], noise[3000:])
    assert abs(none.r2_vector) < 0.03


def test_sae_error_analysis_on_the_zoo_lm(wb, small_sae):
    res = wb.run(SAEErrorSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, ce_rows=16)).result
    s = res.summary
    assert 0 < s["r2_vector"] < 1 and 0 < s["r2_norm"] <= 1
    assert s["ce_sae"] > s["ce_clean"]  # the SAE costs loss ...
    assert s["ce_increase_from_nonlinear"] is not None and s["ce_increase_from_linear"] is not None
    ce = res.tables["ce"].set_index("variant").ce_loss
    assert ce["x̂ + linear error"] < ce["SAE (x̂)"]  # ... and adding back the linear error recovers some of it
    assert len(res.tables["per_token"]) == s["eval_tokens"]
    # the decomposition adds up: x̂ + linear + nonlinear error is the clean activation, and so its loss
    assert ce["x̂ + linear + nonlinear error"] == pytest.approx(ce["clean"], abs=1e-4)


def test_the_error_map_is_spliced_only_where_it_was_fitted(wb, small_sae, zoo_lm):
    """The regression is fitted on positions >= skip_positions: earlier ones (BOS, an attention sink) stay clean."""
    from sae.dark_matter import split_hook

    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    tokens = zoo_lm.model.to_tokens("def add(a, b):\n    return a + b\n")
    _, cache = zoo_lm.model.run_with_cache(tokens, names_filter=lambda n: n == hook)
    x = cache[hook]
    A = torch.randn(x.shape[-1], x.shape[-1]) * 0.1
    for keep in ("none", "linear", "nonlinear", "both"):
        out = split_hook(sae, A, keep, first_position=4)(x.clone())
        assert torch.equal(out[:, :4], x[:, :4]), keep
        assert not torch.allclose(out[:, 4:], x[:, 4:]) or keep == "both"
    torch.testing.assert_close(split_hook(sae, A, "both", 4)(x.clone()), x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make, message", [
    (lambda h: SAEFeatureSpec(model="zoo-lm", sae=h, n_tokens=16_384, feature=256), "out of range: this SAE has 256"),
    (lambda h: SAEFeatureSpec(model="zoo-lm", sae=h, feature=-1), "out of range"),
    (lambda h: SAESteerSpec(model="zoo-lm", sae=h, prompt="x = 1", ablate_features=(999,)), "out of range"),
    (lambda h: SAEPromptSpec(model="zoo-lm", sae=h, prompt="   "), "prompt is empty"),
    (lambda h: SAEPromptSpec(model="zoo-modadd", sae=h, prompt="1 + 2 ="), "trained on zoo-lm, not on zoo-modadd"),
    (lambda h: SAEPromptSpec(model="zoo-lm", sae="0123456789abcdef", prompt="x"), "no SAE run is stored"),
    (lambda h: SAEPromptSpec(model="zoo-lm", sae="/nonexistent/sae", prompt="x"), "no SAE folder"),
    (lambda h: SAEPromptSpec(model="zoo-lm", sae=h, hook="blocks.0.hook_mlp_out", prompt="x = 1"), None),
    (lambda h: SAESteerSpec(model="zoo-lm", sae=h, prompt="x", steer_features=(1,), coefficients=()),
     "one coefficient per steered feature"),
])
def test_bad_input_gets_a_clear_message(wb, small_sae, make, message):
    if message is None:  # same width, other hook: allowed (a researcher may mean it), but it runs
        assert wb.run(make(small_sae)).result.summary["hook"] == "blocks.0.hook_mlp_out"
        return
    with pytest.raises(BadInput, match=message):
        wb.run(make(small_sae))


def test_an_sae_of_another_width_is_refused(wb, small_sae):
    with pytest.raises(BadInput, match="192-dimensional activations but blocks.0.mlp.hook_post"):
        wb.run(SAEPromptSpec(model="zoo-lm", sae=small_sae, hook="blocks.0.mlp.hook_post", prompt="x = 1"))
