"""A server for a group (issue 16): folders confined to the operator's roots (resolved after symlinks, with a
refusal that does not tell an existing path from a missing one), jobs and links recording who made them, only
a job's owner or an operator cancelling it, per-user and global job limits and a token budget per job, and an
old store gaining the new columns on open."""
import shutil
import sqlite3

import pytest

from analyses.acting import Acting, User
from analyses.model_check import ModelCheckSpec
from analyses.workbench import Workbench
from compute.errors import BadInput, WorkbenchError
from compute.models import ModelNotFound, resolve
from compute.settings import ASSETS, Limits, Settings

ANN, BOB, OPERATOR = User("ann"), User("bob"), User("olga", operator=True)


@pytest.fixture
def served(tmp_path):
    home = tmp_path / "home"
    roots = (home / "models", home / "saes", home / "data")
    for r in roots:
        r.mkdir(parents=True)
    return Settings(home=home, max_loaded_models=2, device="cpu", path_roots=roots,
                    limits=Limits(jobs_per_user=1, jobs_total=2, job_tokens=100_000))


def test_model_folders_only_inside_the_roots_and_the_refusal_says_nothing_about_existence(served, tmp_path):
    shutil.copytree(ASSETS / "zoo" / "digits_mlp", served.home / "models" / "mine")
    assert resolve("mine", served).source == "local"
    assert resolve(str(served.home / "models" / "mine"), served).source == "local"
    outside = tmp_path / "elsewhere"
    shutil.copytree(ASSETS / "zoo" / "digits_mlp", outside)
    (served.home / "models" / "link").symlink_to(outside, target_is_directory=True)
    messages = set()
    for name in (str(outside), str(tmp_path / "missing"), "local:../../elsewhere", "local:link", "/etc",
                 "../../../etc", "~/", str(served.home / "models" / "missing")):
        with pytest.raises(ModelNotFound) as e:
            resolve(name, served)
        messages.add(str(e.value))
    assert len(messages) == 1 and "operator's folders" in messages.pop()
    # a plain name whose folder is a symlink out reads like any unknown name
    for name in ("link", "no-such-model"):
        with pytest.raises(ModelNotFound, match="unknown model"):
            resolve(name, served)
    assert resolve("zoo-lm", served).source == "zoo" and resolve("gpt2", served).source == "transformerlens"
    # the CLI and the local tool (no roots) take any folder
    local = Settings(home=served.home, max_loaded_models=2, device="cpu")
    assert resolve(str(outside), local).source == "local"


def test_sae_folders_and_training_files_outside_the_roots_are_refused_before_a_job(served, tmp_path):
    from analyses.influence_lm import InfluenceLMSpec
    from analyses.sae_runs import SAEEvalSpec

    wb = Acting(Workbench(served), ANN)
    text = tmp_path / "train.txt"
    text.write_text("some text")
    for path in (text, tmp_path / "missing.txt"):
        with pytest.raises(BadInput, match="training files are read only from the operator's folders"):
            wb.submit(InfluenceLMSpec(model="zoo-lm", train=f"text:{path}", prompt="a", completion="b"))
    (tmp_path / "sae").mkdir()
    for path in (tmp_path / "sae", tmp_path / "nope"):
        with pytest.raises(BadInput, match="SAE folders are read only from the operator's folders"):
            wb.submit(SAEEvalSpec(model="zoo-lm", sae=str(path)))
    assert wb.jobs.list() == []


def test_jobs_record_their_owner_and_only_the_owner_or_an_operator_cancels(served):
    wb = Workbench(served)
    ann, bob, olga = Acting(wb, ANN), Acting(wb, BOB), Acting(wb, OPERATOR)
    job = ann.submit(ModelCheckSpec(model="zoo-modadd"))
    try:
        assert job.owner == "ann" and wb.store.spec_creator(job.spec_hash) == "ann"
        assert not bob.may_cancel(job) and ann.may_cancel(job) and olga.may_cancel(job)
        with pytest.raises(BadInput, match="started by ann; only they or an operator"):
            bob.cancel(job.id)
        assert wb.jobs.get(job.id).cancel_requested == 0
        olga.cancel(job.id)
        assert wb.jobs.get(job.id).cancel_requested > 0
    finally:
        wb.jobs.cancel(job.id)


def test_job_limits_per_user_and_in_all_and_the_token_budget(served):
    from analyses.sae_runs import SAETrainSpec

    wb = Workbench(served)
    ann, bob = Acting(wb, ANN), Acting(wb, BOB)
    first = ann.submit(ModelCheckSpec(model="zoo-modadd"))
    try:
        assert ann.submit(ModelCheckSpec(model="zoo-modadd")).id == first.id  # the same analysis: the same job
        with pytest.raises(BadInput, match="WORKBENCH_MAX_JOBS_PER_USER"):
            ann.submit(ModelCheckSpec(model="zoo-digits-mlp"))
        second = bob.submit(ModelCheckSpec(model="zoo-digits-mlp"))
        with pytest.raises(BadInput, match="WORKBENCH_MAX_JOBS\\)"):
            Acting(wb, User("cy")).submit(ModelCheckSpec(model="zoo-digits-cnn"))
        wb.jobs.cancel(second.id)
    finally:
        wb.jobs.cancel(first.id)
    big = SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", n_tokens=200_000)
    for attempt in (ann.submit, ann.run):
        with pytest.raises(BadInput, match="200,000 tokens.*at most 100,000.*WORKBENCH_MAX_JOB_TOKENS"):
            attempt(big)


def test_an_old_store_gains_owner_and_creator_columns(tmp_path):
    from compute.store import Store

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as c:  # the schema before sign-in existed
        c.executescript("""
            CREATE TABLE specs (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, json TEXT NOT NULL, created REAL NOT NULL);
            CREATE TABLE jobs (id TEXT PRIMARY KEY, spec_hash TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
                status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', error TEXT,
                pid INTEGER, cancel_requested REAL NOT NULL DEFAULT 0, result_key TEXT, created REAL NOT NULL,
                started REAL, finished REAL);
            INSERT INTO specs VALUES ('abc', 'prompt', '{"kind": "prompt"}', 1.0);
            INSERT INTO jobs(id, spec_hash, kind, title, status, created) VALUES ('j1', 'abc', 'prompt', 't', 'done', 1.0);
        """)
    store = Store(path)
    assert store.get_job("j1").owner == "" and store.spec_creator("abc") == ""
    assert store.get_spec("abc") == {"kind": "prompt"}


def test_errors_are_workbench_errors():
    assert issubclass(ModelNotFound, WorkbenchError)
