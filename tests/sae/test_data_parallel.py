"""Data-parallel SAE training (sae.distributed): two processes under torchrun give the SAE one process gives on the
combined batch, for every architecture, Feature and Mutual Choice included (their selection is global: a
feature's capacity is filled from all processes' tokens)."""
from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import save_file

from compute.activations import ActivationSet
from sae import selection
from sae.ddp_launch import train_data_parallel
from sae.training import SAETrainer, TrainConfig
from tests.services import free_port



def _matrix(seed: int, rows: int = 64, features: int = 48) -> torch.Tensor:
    """Pre-activations with ties where they happen in practice: identical tokens (BOS rows) and zeros."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, features, generator=g)
    z[::8] = z[0]  # every 8th row the same token
    z[3, :5] = 0.0
    return z


def _selection_rank(rank: int, world: int, port: int, queue) -> None:
    from sae.distributed import Collective, sharded_feature_choice, sharded_mutual_choice

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        coll = Collective()
        out = {}
        for seed in range(4):
            z = _matrix(seed)
            share = len(z) // world
            mine = z[rank * share : (rank + 1) * share]
            caps = selection.zipf_capacities(4, len(z), z.relu().mean(0), 1.0) if seed % 2 else \
                selection.uniform_capacities(4, len(z), z.shape[1])
            fc, fc_counts, fc_small = sharded_feature_choice(mine, caps, coll)
            mc, mc_counts, mc_small = sharded_mutual_choice(mine, 4 * len(z), coll)
            out[seed] = (torch.cat(coll.gather(fc)), fc_counts, fc_small, torch.cat(coll.gather(mc)), mc_counts,
                         mc_small)
        if rank == 0:
            queue.put({k: tuple(t.clone() for t in v) for k, v in out.items()})
    finally:
        dist.destroy_process_group()


def test_the_sharded_selections_equal_the_selection_over_the_combined_batch():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_selection_rank, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = queue.get()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for seed, (fc, fc_counts, fc_small, mc, mc_counts, mc_small) in got.items():
        z = _matrix(seed)
        caps = selection.zipf_capacities(4, len(z), z.relu().mean(0), 1.0) if seed % 2 else \
            selection.uniform_capacities(4, len(z), z.shape[1])
        ref, ref_counts, ref_small = selection.feature_choice(z, caps, return_stats=True)
        assert torch.equal(fc, ref)  # ties between identical rows included: both give them to the earliest rows
        assert torch.equal(fc_counts, ref_counts) and torch.equal(fc_small, ref_small)
        mref = selection.mutual_choice(z, 4 * len(z))
        assert torch.equal(mc, mref)
        assert torch.equal(mc_counts, (mref != 0).sum(0)) and float(mc_small) == float(mref[mref > 0].min())


def test_ties_at_a_cut_off_go_to_the_earliest_tokens():
    z = torch.tensor([[0.5, 2.0], [0.75, 1.0], [0.75, 1.0], [0.75, 1.0], [0.1, 3.0]])  # rows 1-3: one token, thrice
    fc = selection.feature_choice(z, torch.tensor([2, 3]))
    assert fc[:, 0].tolist() == [0.0, 0.75, 0.75, 0.0, 0.0] and fc[:, 1].tolist() == [2.0, 1.0, 0.0, 0.0, 3.0]
    mc = selection.mutual_choice(z, 5)  # 3.0, 2.0 and the three 1.0s
    assert (mc != 0).sum() == 5 and mc[:, 1].tolist() == [2.0, 1.0, 1.0, 1.0, 3.0]
    mc = selection.mutual_choice(z, 4)
    assert mc[:, 1].tolist() == [2.0, 1.0, 1.0, 0.0, 3.0] and not mc[:, 0].any()
    guided = selection.mutual_choice_guided(z, 4, guess=0.8)
    assert torch.equal(guided, mc)


def _activation_set(folder, n: int = 8192, d: int = 24, seed: int = 0) -> ActivationSet:
    """Activations made of sparse ground-truth directions, with repeated rows (as BOS tokens repeat)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(96, d, generator=g), dim=-1)
    codes = torch.rand(n, 96, generator=g) * (torch.rand(n, 96, generator=g) < 0.05)
    acts = codes @ dictionary + 0.01 * torch.randn(n, d, generator=g)
    acts[::32] = acts[0]
    folder.mkdir(parents=True)
    save_file({"acts": acts.contiguous()}, folder / "acts_0000.safetensors")
    meta = {"shards": ["acts_0000.safetensors"], "d": d, "n_tokens": n}
    (folder / "meta.json").write_text(json.dumps(meta))
    return ActivationSet(folder, meta)


# Feature Choice with uniform capacities runs below on the zoo LM's activations (the whole job path)
ARCHS = [dict(arch="topk", k=4), dict(arch="feature_choice", k=4, capacity="zipf"),
         dict(arch="mutual_choice", k=4, aux_loss="aux_zipf")]


@pytest.mark.parametrize("options", ARCHS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_two_processes_train_the_sae_one_process_trains_on_the_combined_batch(tmp_path, options):
    acts = _activation_set(tmp_path / "acts")
    cfg = TrainConfig(d_sae=64, n_tokens=256 * 40, batch_size=256, lr=3e-3, warmup_steps=5, dead_tokens=256 * 4,
                      log_every=10, checkpoint_every=1000, seed=3, **options)
    one = SAETrainer(cfg, acts.load(), tmp_path / "one")
    one.train()
    train_data_parallel(cfg, acts, acts.meta["n_tokens"], tmp_path / "two", processes=2, device="cpu")
    two = SAETrainer(cfg, acts.load(), tmp_path / "two")
    assert two.try_resume() and two.step == one.step == cfg.n_steps
    a, b = one.sae.state_dict(), two.sae.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        scale = float(a[name].double().abs().max().clamp_min(1e-6))
        diff = float((a[name].double() - b[name].double()).abs().max())
        assert diff <= 1e-4 * scale + 1e-6, f"{name}: {diff:.3g} apart (scale {scale:.3g})"
    assert torch.equal(one.steps_since_fired, two.steps_since_fired)  # the same latents went dead
    for h1, h2 in zip(one.history, two.history, strict=True):  # the curves of the whole batch
        assert h1["step"] == h2["step"]
        for key in ("loss", "mse", "nmse", "l0", "dead_fraction"):
            assert h2[key] == pytest.approx(h1[key], rel=1e-4, abs=1e-6), key


def test_an_uneven_split_is_refused(tmp_path):
    from sae.distributed import Collective

    class Three:  # what SAETrainer reads of a collective
        world, rank = 3, 0

    assert Collective  # the real one needs a process group; the check comes before any collective call
    cfg = TrainConfig(arch="topk", k=4, d_sae=64, n_tokens=1024, batch_size=256)
    with pytest.raises(ValueError, match="must split evenly over 3 processes"):
        SAETrainer(cfg, torch.randn(1024, 8), tmp_path, collective=Three())


def test_a_data_parallel_run_of_the_zoo_lm_matches_the_one_process_run(wb):
    """The whole job path (SAETrainSpec with processes=2 → torchrun → calibration → evaluation), on real activations
    whose BOS rows repeat in every batch."""
    from analyses.sae_runs import SAETrainSpec
    from sae.loading import load_sae
    from tests.conftest import SMALL_SAE_HOOK

    common = dict(model="zoo-lm", hook=SMALL_SAE_HOOK, arch="feature_choice", k=8, d_sae=256, n_tokens=16_384,
                  batch_size=1024, lr=2e-3, eval_tokens=4096, seed=11)
    # the cache may hold more of this hook than the run asks for (other tests): both runs must train on the same rows
    wb.activations.get_or_build(wb.models.get("zoo-lm"), "zoo-stdlib", SMALL_SAE_HOOK, 50_000, seq_len=128)
    one = wb.run(SAETrainSpec(**common)).result.summary
    two_spec = SAETrainSpec(**common, processes=2)
    assert two_spec.hash != SAETrainSpec(**common).hash and "processes" not in SAETrainSpec(**common).to_dict()
    two = wb.run(two_spec).result.summary
    assert two["processes"] == 2 and "over 2 processes" in two_spec.describe()
    for key in ("final_train_nmse", "train_dead_fraction"):  # training itself: float tolerance
        assert two[key] == pytest.approx(one[key], rel=1e-3, abs=1e-5), key
    # held-out metrics go through the calibrated thresholds, each halfway between two calibration values: weights
    # 1e-5 apart may swap two nearly equal values
    for key in ("nmse", "l0_mean"):
        assert two[key] == pytest.approx(one[key], rel=2e-3), key
    a, b = load_sae(one["sae_path"]), load_sae(two["sae_path"])
    assert torch.allclose(a.W_enc, b.W_enc, atol=1e-4) and torch.allclose(a.W_dec, b.W_dec, atol=1e-4)
    # a threshold sits halfway between a feature's count-th and next calibration value: weights 1e-5 apart may swap
    # two nearly equal values (seen: one feature of 256, 0.1% apart)
    close = torch.isclose(a.threshold, b.threshold, atol=1e-4)
    assert int((~close).sum()) <= 3 and torch.allclose(a.threshold, b.threshold, rtol=5e-3)


def test_cancelling_a_data_parallel_job_stops_every_process_and_keeps_the_checkpoint(wb):
    import subprocess
    import time

    from analyses.sae_runs import SAETrainSpec
    from tests.conftest import SMALL_SAE_HOOK

    spec = SAETrainSpec(model="zoo-lm", hook=SMALL_SAE_HOOK, arch="mutual_choice", k=8, d_sae=256,
                        n_tokens=1_000_000, batch_size=1024, lr=2e-3, eval_tokens=4096, seed=12, processes=2)
    rec = wb.submit(spec)
    folder = wb.artifact_folder(spec)
    deadline = time.time() + 180
    while time.time() < deadline and not (folder / "history.jsonl").exists():
        assert wb.jobs.get(rec.id).active, wb.jobs.get(rec.id).error
        time.sleep(0.5)
    time.sleep(3)  # a few logged steps (the checkpoint is written on cancel)
    assert "processes" in wb.jobs.get(rec.id).message
    wb.jobs.cancel(rec.id)
    done = wb.jobs.wait(rec.id, timeout=60)
    assert done.status == "cancelled"

    def ranks() -> str:
        return subprocess.run(["pgrep", "-af", f"sae.ddp_worker {folder}/torchrun_plan.json"], capture_output=True, text=True).stdout

    for _ in range(40):
        if not ranks():
            break
        time.sleep(0.5)
    assert not ranks(), ranks()
    assert (folder / "checkpoint.pt").exists()  # submitting the same run again resumes it
