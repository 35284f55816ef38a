"""Selection rules against their definitions (Ayonrinde 2024) and against SAELens's BatchTopK."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae import selection

dims = st.tuples(st.integers(1, 48), st.integers(1, 40), st.integers(0, 2**31 - 1))


def _matrix(b, f, seed, positive=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, f, generator=g)
    return z.abs() + 0.01 if positive else z


@settings(max_examples=60, deadline=None)
@given(dims, st.floats(0.1, 8.0))
def test_feature_choice_respects_every_capacity(d, k):
    b, f, seed = d
    z = _matrix(b, f, seed)
    caps = selection.uniform_capacities(k, b, f)
    acts = selection.feature_choice(z, caps)
    _, per_feature = selection.selection_counts(acts)
    # each feature keeps exactly min(capacity, its positive entries), never more, never fewer
    positives = (z > 0).sum(0)
    assert torch.equal(per_feature.long(), torch.minimum(caps.long(), positives.long()))
    assert torch.equal(acts[acts != 0], z[acts != 0])  # kept values are the pre-activations themselves
    # what is kept is each column's largest positive entries
    for col in range(f):
        kept = acts[:, col][acts[:, col] > 0]
        dropped = z[:, col][(acts[:, col] == 0) & (z[:, col] > 0)]
        if len(kept) and len(dropped):
            assert kept.min() >= dropped.max()


@settings(max_examples=60, deadline=None)
@given(dims, st.floats(0.1, 8.0), st.floats(0.3, 2.0))
def test_zipf_capacities_are_respected_and_rank_ordered(d, k, alpha):
    b, f, seed = d
    z = _matrix(b, f, seed)
    density = torch.rand(f, generator=torch.Generator().manual_seed(seed))
    if not f <= int(k * b) <= f * b:
        with pytest.raises(ValueError):
            selection.zipf_capacities(k, b, density, alpha)
        return
    caps = selection.zipf_capacities(k, b, density, alpha)
    assert (caps >= 1).all() and (caps <= b).all()
    assert int(caps.sum()) == int(k * b)  # the budget, exactly
    order = density.argsort(descending=True)
    assert (caps[order][:-1] >= caps[order][1:]).all()  # denser features get at least as much capacity
    _, per_feature = selection.selection_counts(selection.feature_choice(z, caps))
    assert torch.equal(per_feature.long(), torch.minimum(caps.long(), (z > 0).sum(0).long()))


@settings(max_examples=60, deadline=None)
@given(dims, st.floats(0.1, 8.0))
def test_mutual_choice_uses_exactly_the_budget(d, k):
    b, f, seed = d
    z = _matrix(b, f, seed, positive=True)
    budget = min(selection.budget_for(k, b), b * f)
    acts = selection.mutual_choice(z, budget)
    assert int((acts != 0).sum()) == budget
    # and they are the largest entries of the whole matrix
    if budget:
        assert acts[acts != 0].min() >= z[acts == 0].max() if budget < b * f else True


@settings(max_examples=60, deadline=None)
@given(dims, st.floats(0.1, 8.0))
def test_mutual_choice_selects_what_sae_lens_batchtopk_selects(d, k):
    from sae_lens.saes.batchtopk_sae import BatchTopK

    b, f, seed = d
    z = _matrix(b, f, seed)
    k = min(k, f)
    ours = selection.mutual_choice(z, selection.budget_for(k, b))
    theirs = BatchTopK(k)(z)
    assert torch.equal(ours, theirs)


@settings(max_examples=60, deadline=None)
@given(dims, st.floats(0.1, 8.0), st.floats(0.0, 1.5))
def test_guided_mutual_choice_equals_the_reference(d, k, guess_scale):
    b, f, seed = d
    z = _matrix(b, f, seed)
    budget = selection.budget_for(k, b)
    ref = selection.mutual_choice(z, budget)
    cut = float(ref[ref > 0].min()) if (ref > 0).any() else 0.0
    assert torch.equal(selection.mutual_choice_guided(z, budget, cut * guess_scale), ref)


def test_topk_rows_keep_k():
    z = _matrix(64, 32, 1, positive=True)
    per_token, _ = selection.selection_counts(selection.topk_per_token(z, 5))
    assert (per_token == 5).all()


def test_feature_choice_gives_tokens_variable_counts_under_the_same_budget():
    # one "hard" token with large pre-activations everywhere: feature choice gives it many features
    z = _matrix(64, 32, 2, positive=True)
    z[0] += 5
    caps = selection.uniform_capacities(4, 64, 32)
    per_token, _ = selection.selection_counts(selection.feature_choice(z, caps))
    assert per_token[0] == 32 and per_token.float().std() > 0


def test_zipf_capacities_follow_activity_not_feature_index():
    """The paper's shape over density ranks: feature 0 must not get the largest capacity for being first."""
    from sae.training import TrainConfig, build_sae

    torch.manual_seed(0)
    d_in, d_sae, b, k = 8, 32, 512, 4
    sae = build_sae(TrainConfig(arch="feature_choice", k=k, d_sae=d_sae, capacity="zipf"), d_in)
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-2.0, 2.0, d_sae))  # the last features are the most active
    sae.train()
    z = sae.pre_activations(torch.randn(b, d_in))
    sae.select(z)
    caps = sae.capacities(b)
    assert int(caps.argmax()) == int(z.relu().mean(0).argmax()) != 0
    assert int(caps.sum()) == k * b
    assert caps[-1] > caps[0]
