"""SAE training on the zoo LM: each architecture reaches a stated reconstruction quality; saved SAEs
reload through SAELens with the same outputs; bad input gets a clear message."""
import pytest
import torch

from analyses.sae_runs import SAEEvalSpec, SAETrainSpec
from compute.errors import BadInput

HOOK = "blocks.0.hook_resid_post"
# Stated targets: on the zoo LM's layer-0 residual stream (d_in 192), d_sae 768 and k 16, 240k training
# tokens reach a held-out normalised MSE below 0.35 for every architecture (measured: TopK 0.28, Feature
# Choice 0.31, Mutual Choice 0.29) at a held-out L0 within 5% of k (exactly 16 for TopK; 15.4 and 15.7 for
# the calibrated thresholds of Feature and Mutual Choice; before calibration, thresholds that averaged the
# batch cut-offs over the run gave 10.4 and 10.6 and NMSE 0.37), and CE loss recovered above 0.75 (0.86,
# 0.83, 0.86). This stream carries the previous token for the layer-1 induction head as well as the
# current one, so it takes more features than before the LM had induction heads.
TOKENS, K, D_SAE, NMSE_TARGET, CE_RECOVERED_TARGET = 240_000, 16, 768, 0.35, 0.75
L0_TOLERANCE = 0.05  # Feature / Mutual Choice thresholds are calibrated to the trained budget (k per token)


def train_spec(arch: str) -> SAETrainSpec:
    return SAETrainSpec(model="zoo-lm", hook=HOOK, arch=arch, k=K, d_sae=D_SAE, n_tokens=TOKENS,
                        batch_size=2048, lr=2e-3, eval_tokens=8192)


@pytest.fixture(scope="module", params=["topk", "feature_choice", "mutual_choice"])
def trained(request, wb):
    spec = train_spec(request.param)
    return spec, wb.run(spec)


def test_reaches_the_stated_nmse(trained):
    spec, outcome = trained
    s = outcome.result.summary
    assert s["nmse"] < NMSE_TARGET, (spec.arch, s["nmse"])
    assert abs(s["l0_mean"] - K) <= L0_TOLERANCE * K, (spec.arch, s["l0_mean"])
    assert s["ce_loss_recovered"] > CE_RECOVERED_TARGET
    assert s["dead_fraction"] < 0.2
    hist = outcome.result.tables["history"]
    assert hist.nmse.iloc[-1] < hist.nmse.iloc[0]  # it learned
    assert {"training_curves", "l0_histogram", "density_histogram"} <= set(outcome.result.figures)


def test_saved_sae_reloads_through_sae_lens_with_the_same_outputs(trained, wb, zoo_lm):
    import sae  # noqa: F401  (registers the architectures, as the issue asks)
    from sae_lens import SAE

    spec, outcome = trained
    loaded = SAE.load_from_disk(outcome.result.summary["sae_path"])
    assert loaded.cfg.architecture() == {"topk": "topk", "feature_choice": "feature_choice",
                                         "mutual_choice": "mutual_choice"}[spec.arch]
    x = wb.activations.get_or_build(zoo_lm, "zoo-stdlib-heldout", HOOK, 8192).load(512)
    from sae.loading import load_sae

    ours = load_sae(outcome.result.summary["sae_path"])  # the workbench's own loader: same object type
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), ours.encode(x))
        assert (loaded.encode(x) != 0).any()
    # the summary's numbers, recomputed from a fresh forward pass over the evaluation's own token rows
    # through the SAELens-loaded SAE: NMSE = Σ‖x − x̂‖² / Σ‖x − x̄‖², L0 = mean active features per token
    from analyses.sae_runs import EVAL_DATASET, EVAL_SPREAD, spread_rows

    held_out = wb.activations.get_or_build(zoo_lm, EVAL_DATASET, HOOK, EVAL_SPREAD * spec.eval_tokens)
    _, rows = spread_rows(held_out, spec.eval_tokens)
    with torch.no_grad():
        _, cache = zoo_lm.model.run_with_cache(rows, names_filter=[HOOK])
        fresh = cache[HOOK].reshape(-1, cache[HOOK].shape[-1]).float()
        z = loaded.encode(fresh)
        nmse = float((loaded.decode(z) - fresh).pow(2).sum() / (fresh - fresh.mean(0)).pow(2).sum())
    s = outcome.result.summary
    assert s["eval_tokens"] == len(fresh)
    assert nmse == pytest.approx(s["nmse"], rel=1e-3)
    assert float((z != 0).sum(-1).float().mean()) == pytest.approx(s["l0_mean"], rel=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(hook="blocks.7.hook_resid_post"), "unknown hook"),
    (dict(k=2000, d_sae=768), "larger than d_sae"),
    (dict(n_tokens=0), "n_tokens must be positive"),
    (dict(arch="relu"), "unknown architecture"),
    (dict(arch="topk", k=2.5), "integer k"),
])
def test_bad_training_input(wb, kwargs, message):
    spec = SAETrainSpec(**{"model": "zoo-lm", "hook": HOOK, "n_tokens": 4096, "batch_size": 2048, "d_sae": 64,
                           "k": 4, **kwargs})
    with pytest.raises(BadInput, match=message):
        wb.run(spec)


def test_sae_for_another_hook_width_is_refused(wb):
    # the TopK SAE of the module's fixture (the same spec: a cached run); the residual SAE has d_in 192,
    # the MLP's pre-activations are 768 wide
    path = wb.run(train_spec("topk")).result.summary["sae_path"]
    with pytest.raises(BadInput, match="expects d_in = 192 but blocks.0.mlp.hook_pre of zoo-lm has 768"):
        wb.run(SAEEvalSpec(model="zoo-lm", sae=path, hook="blocks.0.mlp.hook_pre", eval_tokens=1024))


def test_missing_or_offline_saes_fail_clearly(wb, tmp_path):
    with pytest.raises(BadInput, match="no SAE folder"):
        wb.run(SAEEvalSpec(model="zoo-lm", sae=str(tmp_path / "nothing")))
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(BadInput, match="cannot load the SAE"):
        wb.run(SAEEvalSpec(model="zoo-lm", sae=str(tmp_path)))
    with pytest.raises(BadInput, match="cannot load SAELens release 'gpt2-small-res-jb'"):
        wb.run(SAEEvalSpec(model="zoo-lm", sae="gpt2-small-res-jb:blocks.0.hook_resid_pre"))


@pytest.mark.parametrize("arch", ["topk", "feature_choice", "mutual_choice"])
def test_trained_sae_and_its_saelens_reload_agree(arch, tmp_path):
    """The in-memory SAE after training (inference rule) and the saved SAELens SAE give the same outputs."""
    import sae  # noqa: F401
    from sae_lens import SAE

    from sae.training import SAETrainer, TrainConfig

    g = torch.Generator().manual_seed(0)
    dictionary = torch.nn.functional.normalize(torch.randn(128, 32, generator=g), dim=-1)
    codes = (torch.rand(20_000, 128, generator=g) < 3 / 128).float() * torch.rand(20_000, 128, generator=g)
    acts = codes @ dictionary
    cfg = TrainConfig(arch=arch, k=3, d_sae=128, n_tokens=60_000, batch_size=1000, lr=3e-3, log_every=10)
    trainer = SAETrainer(cfg, acts, tmp_path / "run")
    trainer.train()
    trainer.save_inference(tmp_path / "sae")
    loaded = SAE.load_from_disk(str(tmp_path / "sae"))
    trainer.sae.eval()
    x = acts[:500]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), trainer.sae.encode(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loaded(x), trainer.sae(x), rtol=1e-5, atol=1e-5)
        assert (loaded.encode(x) != 0).float().sum(-1).mean() > 0


def test_cancelled_training_resumes_from_its_checkpoint(tmp_path):
    from compute.errors import JobCancelled
    from sae.training import SAETrainer, TrainConfig

    acts = torch.randn(8000, 16)
    cfg = TrainConfig(arch="mutual_choice", k=2, d_sae=32, n_tokens=40_000, batch_size=1000, log_every=5)
    calls = []

    def cancel_at_20(f, m=""):
        calls.append(f)
        if len(calls) == 20:
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        SAETrainer(cfg, acts, tmp_path, progress=cancel_at_20).train()
    resumed = SAETrainer(cfg, acts, tmp_path)
    assert resumed.try_resume() and resumed.step == 20
    history = resumed.train()
    assert resumed.step == 40 and [h["step"] for h in history] == list(range(5, 41, 5))
    # the same run without interruption ends in the same place (batches are a function of the step)
    straight = SAETrainer(cfg, acts, tmp_path / "straight")
    straight.train()
    torch.testing.assert_close(straight.sae.W_dec, resumed.sae.W_dec, rtol=1e-4, atol=1e-5)


def test_the_comparison_holds_each_runs_own_numbers_and_plots_them_at_measured_l0(wb):
    from analyses.sae_runs import SAECompareSpec

    specs = [train_spec(a) for a in ("topk", "feature_choice", "mutual_choice")]
    summaries = {s.hash: wb.run(s).result.summary for s in specs}  # cached by the module's fixture
    cmp = wb.run(SAECompareSpec(model="zoo-lm", runs=tuple(summaries))).result
    table = cmp.tables["runs"].set_index("run")
    for h, s in summaries.items():
        for col in ("l0_mean", "nmse", "ce_loss_recovered", "dead_fraction", "k", "d_sae"):
            assert table.loc[h, col] == pytest.approx(s[col]), (h, col)
        assert table.loc[h, "arch"] == s["arch"]
    best = min(summaries, key=lambda h: summaries[h]["nmse"])
    assert cmp.summary["best_nmse_run"] == best
    fig = cmp.figures["nmse_vs_l0"]
    xs = sorted(float(x) for tr in fig.data if tr.mode == "markers" or tr.mode is None for x in tr.x)
    assert xs == pytest.approx(sorted(s["l0_mean"] for s in summaries.values()))  # measured L0, not k
