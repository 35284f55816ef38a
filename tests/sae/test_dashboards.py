"""Dashboard data checked against a brute-force recomputation from the dense activations of a small SAE."""
import numpy as np
import pytest
import torch

from analyses.sae_dashboard import SAEDashboardSpec, vocab_strings
from analyses.sae_source import load_for_model

N_TOKENS = 16_384


@pytest.fixture(scope="module")
def dense(wb, zoo_lm, small_sae):
    """The stored dashboards, and everything recomputed densely from the same tokens."""
    spec = SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=N_TOKENS)
    dash = wb.run(spec).result
    sae, hook = load_for_model(wb, small_sae, zoo_lm)
    aset = wb.activations.get_or_build(zoo_lm, "zoo-stdlib", hook, N_TOKENS, seq_len=128)
    acts = aset.load(N_TOKENS)
    with torch.no_grad():
        z = sae.encode(acts).numpy()
    tokens = aset.tokens().reshape(-1)[:N_TOKENS].numpy()
    return dash, z, tokens, sae, zoo_lm


def test_density_and_activation_statistics(dense):
    dash, z, _, _, _ = dense
    f = dash.tables["features"]
    fires = (z != 0).sum(0)
    np.testing.assert_array_equal(f.fires.to_numpy(), fires)
    np.testing.assert_allclose(f.density.to_numpy(), fires / len(z))
    np.testing.assert_allclose(f.max_activation.to_numpy(), z.max(0), rtol=1e-6)
    mean = np.where(fires > 0, z.sum(0) / np.maximum(fires, 1), 0)
    np.testing.assert_allclose(f.mean_activation.to_numpy(), mean, rtol=1e-5)
    np.testing.assert_array_equal(f.dead.to_numpy(), fires == 0)
    assert dash.summary["mean_l0"] == pytest.approx((z != 0).sum(1).mean())


def test_top_contexts_really_are_the_top(dense):
    dash, z, _, _, _ = dense
    ex = dash.tables["examples"]
    top = ex[ex.group == "top"]
    for feature in np.flatnonzero((z != 0).sum(0))[:64]:
        mine = top[top.feature == feature].sort_values("rank")
        expect = np.sort(z[:, feature][z[:, feature] != 0])[::-1][:20]
        np.testing.assert_allclose(mine.activation.to_numpy(), expect, rtol=1e-6)
        # each example's activation is the feature's activation on that token
        np.testing.assert_allclose(z[mine.token_index.to_numpy(), feature], mine.activation.to_numpy(), rtol=1e-6)


def test_quantile_samples_fall_in_their_quantile(dense):
    dash, z, _, _, _ = dense
    ex = dash.tables["examples"]
    checked = 0
    for feature in np.flatnonzero((z != 0).sum(0) >= 50)[:40]:
        vals = np.sort(z[:, feature][z[:, feature] != 0])
        n = len(vals)
        for q in range(5):
            lo, hi = vals[(n * q) // 5], vals[(n * (q + 1)) // 5 - 1]
            got = ex[(ex.feature == feature) & (ex.group == f"q{q + 1}")].activation.to_numpy()
            assert len(got) == 5
            assert (got >= lo - 1e-6).all() and (got <= hi + 1e-6).all()
            checked += 1
    assert checked > 50


def test_histogram_counts_add_up_and_match_numpy(dense):
    dash, z, _, _, _ = dense
    h = dash.tables["histograms"]
    fires = (z != 0).sum(0)
    per_feature = h.groupby("feature")["count"].sum()
    for feature, total in per_feature.items():
        assert total == fires[feature]
    feature = int(np.argmax(fires))
    mine = h[h.feature == feature]
    vals = z[:, feature][z[:, feature] != 0]
    edges = np.append(mine.bin_left.to_numpy(), mine.bin_right.to_numpy()[-1])
    np.testing.assert_array_equal(mine["count"].to_numpy(), np.histogram(vals, bins=edges)[0])


def test_windows_show_the_feature_on_each_token(dense):
    dash, z, tokens, _, lm = dense
    vocab = vocab_strings(lm)
    ex = dash.tables["examples"].head(300)
    for row in ex.itertuples():
        start = row.token_index - row.center
        n = len(row.window_tokens)
        assert list(row.window_tokens) == [vocab[t] for t in tokens[start : start + n]]  # a list or, reloaded, an array
        np.testing.assert_allclose(row.window_acts, z[start : start + n, row.feature], atol=1e-4)
        assert row.window_acts[row.center] == pytest.approx(row.activation, abs=1e-4)
        assert start // 128 == (start + n - 1) // 128  # a window never crosses a row


def test_neighbours_cofiring_and_logits_match_brute_force(dense):
    dash, z, _, sae, lm = dense
    W = torch.nn.functional.normalize(sae.W_dec.detach(), dim=-1)
    cos = (W @ W.T).fill_diagonal_(-2)
    nb = dash.tables["neighbours"]
    for feature in range(0, len(W), 37):
        mine = nb[nb.feature == feature].sort_values("rank")
        np.testing.assert_allclose(mine.cosine.to_numpy(), cos[feature].topk(5).values.numpy(), rtol=1e-5)
    B = (z != 0).astype(np.int64)
    co = B.T @ B
    cf = dash.tables["cofiring"]
    for row in cf.head(200).itertuples():
        assert row.count == co[row.feature, row.other]
        assert row.p_other_given_feature == pytest.approx(co[row.feature, row.other] / co[row.feature, row.feature])
    logits = (sae.W_dec.detach() @ lm.model.W_U.detach()).numpy()
    lt = dash.tables["logits"]
    for feature in (0, 17, 101):
        top = lt[(lt.feature == feature) & (lt.side == "top")].sort_values("rank")
        np.testing.assert_allclose(top.logit.to_numpy(), np.sort(logits[feature])[::-1][:10], rtol=1e-4)
        bottom = lt[(lt.feature == feature) & (lt.side == "bottom")].sort_values("rank")
        np.testing.assert_allclose(bottom.logit.to_numpy(), np.sort(logits[feature])[:10], rtol=1e-4)


def test_a_second_look_is_a_cache_hit(wb, small_sae, dense):
    again = wb.run(SAEDashboardSpec(model="zoo-lm", sae=small_sae, n_tokens=N_TOKENS))
    assert again.cached
