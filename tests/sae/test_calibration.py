"""Feature / Mutual Choice inference thresholds are set from the final weights so that the batch-independent
rule fires exactly as often as the training selection did (k per token; each feature its capacity)."""
import pytest
import torch

from sae.training import TrainConfig, build_sae


@pytest.mark.parametrize("arch, capacity", [("mutual_choice", "uniform"), ("feature_choice", "uniform"),
                                            ("feature_choice", "zipf")])
def test_calibrated_thresholds_fire_at_the_trained_budget(arch, capacity):
    torch.manual_seed(0)
    k, d_in, d_sae, n, batch = 4, 16, 64, 3000, 256
    sae = build_sae(TrainConfig(arch=arch, k=k, d_sae=d_sae, capacity=capacity), d_in)
    with torch.no_grad():  # some features more active than others, as after training
        sae.b_enc.copy_(torch.linspace(-1.5, 0.5, d_sae))
    sae.activity.copy_(torch.rand(d_sae))  # Zipf capacities follow an activity ranking
    acts = torch.randn(n, d_in)
    sae.eval()
    info = sae.calibrate(acts, batch, chunk=700)  # chunks smaller than the set: the running top-k must merge them
    z = sae.encode(acts)
    fires = (z != 0).sum(0)
    pre = sae.pre_activations(acts)
    if arch == "mutual_choice":
        assert int(fires.sum()) == k * n and info["tokens"] == n
    else:  # each feature its capacity's share of the tokens, or all its positive ones when it has fewer (ReLU)
        want = torch.minimum((sae.fires_per_token(batch) * n).round().long(), (pre > 0).sum(0))
        assert torch.equal(fires, want)
    # a feature fires where its pre-activation is among its (or the matrix's) largest: z is monotone in it
    on, off = pre[z != 0], pre[(z == 0) & (pre > 0)]
    if arch == "mutual_choice" and len(off):
        assert on.min() > off.max()
