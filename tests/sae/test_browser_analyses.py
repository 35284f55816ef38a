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


def test_a_contexts_ablation_effect_recomputed_by_hand(wb, small_sae, zoo_lm):
    """The top context's activation is the SAE's encoding there, and its loss effect is the CE of the true
    next token with z_f · W_dec[f] removed at that token, minus the clean CE."""
    dash = wb.run(SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384)).result
    feature = int(dash.tables["features"].sort_values("fires").iloc[-1].feature)
    res = wb.run(SAEFeatureSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, feature=feature)).result
    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    seq_len = dash.summary["seq_len"]
    tokens = wb.activations.get_or_build(zoo_lm, dash.summary["dataset"], hook, 16_384, seq_len=seq_len).tokens()
    top = res.tables["examples"].query("group == 'top'").reset_index(drop=True)
    checked = 0
    for _, ex in top.head(3).iterrows():
        row, pos = divmod(int(ex.token_index), seq_len)
        if pos + 1 >= seq_len:
            continue
        context = tokens[row][None]
        with torch.no_grad():
            _, cache = zoo_lm.model.run_with_cache(context, names_filter=[hook])
            z = sae.encode(cache[hook][0, pos].float())
            assert float(z[feature]) == pytest.approx(float(ex.activation), rel=1e-4)

            def remove(act, hook=None, z_f=float(z[feature])):
                act = act.clone()
                act[0, pos] -= z_f * sae.W_dec[feature].to(act.dtype)
                return act

            clean = zoo_lm.model(context)[0, pos].float()
            ablated = zoo_lm.model.run_with_hooks(context, fwd_hooks=[(hook, remove)])[0, pos].float()
        nxt = context[0, pos + 1]
        by_hand = float(torch.nn.functional.cross_entropy(ablated[None], nxt[None])
                        - torch.nn.functional.cross_entropy(clean[None], nxt[None]))
        assert float(ex.loss_effect) == pytest.approx(by_hand, rel=1e-3, abs=1e-5)
        checked += 1
    assert checked >= 2


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


def test_steering_adds_c_times_the_decoder_row_and_its_kl_is_that_of_the_added_vector(wb, small_sae, zoo_lm):
    from analyses.lm_inputs import prompt_tokens

    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    t = prompt_tokens(zoo_lm, PROMPT)
    with torch.no_grad():
        _, cache = zoo_lm.model.run_with_cache(t, names_filter=[hook])
        x = cache[hook]
        steered = steering_hook(sae, {3: 40.0, 7: -5.0})(x.clone())
        torch.testing.assert_close(steered - x, (40.0 * sae.W_dec[3] - 5.0 * sae.W_dec[7]).expand_as(x),
                                   rtol=1e-5, atol=1e-5)
        add = 40.0 * sae.W_dec[3]
        p_clean = torch.softmax(zoo_lm.model(t)[0, -1].float(), -1)
        p_steer = torch.softmax(zoo_lm.model.run_with_hooks(
            t, fwd_hooks=[(hook, lambda act, hook=None: act + add.to(act.dtype))])[0, -1].float(), -1)
    kl = float((p_clean * (p_clean.log() - p_steer.log())).sum())
    res = wb.run(SAESteerSpec(model="zoo-lm", sae=small_sae, prompt=PROMPT, steer_features=(3,),
                              coefficients=(40.0,), max_new_tokens=8)).result
    assert res.summary["kl_next_token"] == pytest.approx(kl, rel=1e-3)


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


def test_sae_error_r2_is_the_least_squares_fit_on_its_rows(wb, small_sae, zoo_lm):
    """The stated rows (a seeded shuffle of the 128-token rows: the first half fits, the rest evaluates;
    positions from skip_positions on), refitted in numpy: r² = 1 − Σ‖e − xA‖² / Σ‖e − ē‖² on the eval rows."""
    spec = SAEErrorSpec(model="zoo-lm", sae=small_sae, n_tokens=16_384, ce_rows=0)
    s = wb.run(spec).result.summary
    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    aset = wb.activations.get_or_build(zoo_lm, spec.dataset, hook, spec.n_tokens, seq_len=spec.seq_len)
    n_rows = spec.n_tokens // spec.seq_len
    x = aset.load(n_rows * spec.seq_len).reshape(n_rows, spec.seq_len, -1)[:, spec.skip_positions :]
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(spec.seed))
    fit, ev = order[: n_rows // 2], order[n_rows // 2 :]
    with torch.no_grad():
        def parts(rows):
            xs = x[rows].reshape(-1, x.shape[-1]).float()
            return xs.double().numpy(), (xs - sae.decode(sae.encode(xs))).double().numpy()
        xf, ef = parts(fit)
        xe, ee = parts(ev)
    A = np.linalg.lstsq(xf, ef, rcond=None)[0]
    r2 = 1 - ((ee - xe @ A) ** 2).sum() / ((ee - ee.mean(0)) ** 2).sum()
    assert s["fit_tokens"] == len(xf) and s["eval_tokens"] == len(xe)
    assert s["r2_vector"] == pytest.approx(r2, rel=1e-4)


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
