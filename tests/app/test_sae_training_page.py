"""AppTest: the SAE training page trains a tiny SAE as a job, shows it, compares runs, shares a link."""
import time

from tests.app.helpers import button, errors, metrics, new_app, open_page


def _sae_page(**query):
    return open_page("sae_training", **query)


def _train_tiny(at, arch):
    at.selectbox(key="sae_hook").set_value("blocks.1.hook_resid_post")
    at.radio(key="sae_arch").set_value(arch)
    at.number_input(key="sae_k").set_value(4.0)
    at.number_input(key="sae_d_sae").set_value(128)
    at.number_input(key="sae_tokens").set_value(16384)
    button(at, "Train as a background job").click()
    at.run()
    assert not errors(at), errors(at)
    job_id = at.session_state["sae_job"]
    from analyses.workbench import Workbench

    rec = Workbench().jobs.wait(job_id, timeout=240)
    assert rec.status == "done", rec.error
    return rec


def test_train_show_and_compare():
    at = _sae_page()
    rec_mc = _train_tiny(at, "mutual_choice")
    rec_tk = _train_tiny(at, "topk")
    at.run()
    m = metrics(at)  # the Runs tab shows the newest finished run: its stored summary, as stored
    from analyses.registry import spec_from_dict
    from analyses.workbench import Workbench

    wb = Workbench()
    assert at.selectbox(key="sae_run_pick").value == rec_tk.spec_hash
    newest = wb.cached(spec_from_dict(wb.store.get_spec(rec_tk.spec_hash), stored=True)).summary
    assert m["normalised MSE"] == f"{newest['nmse']:.4f}" and newest["nmse"] < 1.0
    assert m["mean L0"] == f"{newest['l0_mean']:.2f}"
    assert m["CE loss recovered"] == f"{newest['ce_loss_recovered']:.3f}"
    assert m["dead / underused"] == f"{newest['dead_fraction']:.1%} / {newest['underused_fraction']:.1%}"
    assert any(newest["sae_path"] in c.value and "SAELens format" in c.value for c in at.caption)
    picked = at.multiselect(key="sae_compare_pick")
    picked.set_value([rec_mc.spec_hash, rec_tk.spec_hash])
    at.run()
    assert not at.exception and not errors(at)
    table = [d.value for d in at.dataframe if "arch" in d.value.columns][0]
    assert set(table.arch) == {"mutual_choice", "topk"}
    assert any("nmse_vs_l0" in str(c.proto.spec) or "Reconstruction vs sparsity" in str(c.proto.spec)
               for c in at.get("plotly_chart"))


def test_share_link_opens_the_run():
    from analyses.sae_runs import SAETrainSpec
    from analyses.workbench import Workbench

    spec = SAETrainSpec(model="zoo-lm", hook="blocks.1.hook_resid_post", arch="feature_choice", k=4, d_sae=128,
                        n_tokens=16384, batch_size=4096, eval_tokens=2048)
    out = Workbench().run(spec)
    at = _sae_page(a=out.spec_hash)
    assert not errors(at)
    m = metrics(at)
    assert float(m["normalised MSE"]) == round(out.result.summary["nmse"], 4)


def test_bad_inputs_on_the_page():
    at = _sae_page()
    at.number_input(key="sae_k").set_value(4096.0)
    at.number_input(key="sae_d_sae").set_value(64)
    button(at, "Train as a background job").click()
    at.run()
    assert any("larger than d_sae" in e for e in errors(at))
    at.text_input(key="sae_source").input("/no/such/sae")
    button(at, "Evaluate (background job)").click()
    at.run()
    assert any("no SAE folder" in e for e in errors(at))  # in the page, before any job is queued
