"""The aux losses in real training runs on the zoo LM: Mutual Choice at d_sae 2048, k 4 leaves a third of
its latents dead within 131k tokens, which is when aux_k and aux_zipf act. With the same seed the runs
start from the same weights, so a latent dead in both runs keeps its initial decoder row without an aux
loss (no gradient reaches it) and moves with one (the aux loss trains dead latents on the residual)."""
import pytest
import torch

from analyses.sae_runs import SAETrainSpec


@pytest.fixture(scope="module")
def runs(wb):
    out = {}
    for aux in ("none", "aux_k", "aux_zipf"):
        spec = SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", arch="mutual_choice", k=4, d_sae=2048,
                            n_tokens=131_072, batch_size=1024, lr=2e-3, aux_loss=aux, eval_tokens=8192)
        out[aux] = wb.run(spec).result
    return out


def _decoder(result) -> torch.Tensor:
    from sae.loading import load_sae

    return load_sae(result.summary["sae_path"]).W_dec.detach()


def test_the_aux_term_is_logged_only_when_an_aux_loss_is_chosen(runs):
    assert (runs["none"].tables["history"].aux == 0).all()
    for aux in ("aux_k", "aux_zipf"):
        h = runs[aux].tables["history"]
        assert (h.aux > 0).any() and (h.dead_fraction > 0).any(), aux


@pytest.mark.parametrize("aux", ["aux_k", "aux_zipf"])
def test_dead_latents_are_trained_by_the_aux_loss_only(runs, aux):
    dead_none = torch.tensor(runs["none"].tables["features"].dead.to_numpy())
    dead_aux = torch.tensor(runs[aux].tables["features"].dead.to_numpy())
    both = dead_none & dead_aux
    assert both.sum() > 50  # plenty of latents dead in both runs
    W_none, W_aux = _decoder(runs["none"]), _decoder(runs[aux])
    moved = (W_aux[both] - W_none[both]).norm(dim=-1)
    # without an aux loss their rows are the shared initial ones; the aux loss moved (nearly) all of them
    assert (moved > 1e-3).float().mean() > 0.9, moved


@pytest.mark.parametrize("hook, path", [("blocks.1.attn.hook_z", "decoder · W_O (all heads)"),
                                        ("blocks.0.mlp.hook_post", "decoder · W_out")])
def test_sae_on_hook_z_and_mlp_post_reads_logits_through_w_o_and_w_out(wb, zoo_lm, hook, path):
    """An SAE trained on a hook that is not the residual stream: its dashboards' direct logits are the decoder
    row carried into the residual stream by the layer's own output weights, then through W_U (by hand)."""
    from analyses.sae_dashboard import SAEDashboardSpec
    from sae.loading import load_sae

    train = SAETrainSpec(model="zoo-lm", hook=hook, arch="topk", k=4, d_sae=128, n_tokens=16_384, batch_size=1024,
                         lr=2e-3, eval_tokens=2048)
    trained = wb.run(train).result
    assert trained.summary["d_in"] == (192 if hook.endswith("hook_z") else 768)
    dash = wb.run(SAEDashboardSpec(model="zoo-lm", sae=train.hash, n_tokens=4096)).result
    assert dash.summary["logit_path"] == path
    W_dec = load_sae(trained.summary["sae_path"]).W_dec.detach().float()
    layer = int(hook.split(".")[1])
    m = zoo_lm.model
    if hook.endswith("hook_z"):
        W_O = m.W_O[layer].detach().float()  # [heads, d_head, d_model]
        resid = sum(W_dec[:, h * W_O.shape[1] : (h + 1) * W_O.shape[1]] @ W_O[h] for h in range(W_O.shape[0]))
    else:
        resid = W_dec @ m.W_out[layer].detach().float()
    logits = resid @ m.W_U.detach().float()
    table = dash.tables["logits"]
    for f in (0, 17, 101):
        top = table[(table.feature == f) & (table.side == "top")].sort_values("rank")
        values, ids = logits[f].topk(len(top))
        assert top.token_id.tolist() == ids.tolist()
        assert top.logit.to_numpy() == pytest.approx(values.numpy(), rel=1e-4, abs=1e-5)
