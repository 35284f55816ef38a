"""The shared core: specs that depend on fitted artifacts, nested runs through the cache, the re-entrant
device lock, range-checked fields, and the registry of kinds."""
import threading

import pytest

import tests.fake_analyses as fake
from analyses.registry import load_all, spec_from_dict
from compute.errors import BadInput
from compute.settings import Settings


@pytest.fixture
def fresh_wb(tmp_path):
    from analyses.workbench import Workbench

    return Workbench(Settings(home=tmp_path, max_loaded_models=2, device="cpu"))


def test_a_dependent_result_is_keyed_by_its_fit_and_the_fit_runs_once(fresh_wb):
    wb = fresh_wb
    spec = fake.UsesFitSpec(model="zoo-digits-cnn", size=3)
    out = wb.run(spec)
    fit = spec.fit()
    folder = wb.artifact_folder(fit)
    assert out.result.summary["fit_folder"] == str(folder)
    assert folder.parent == wb.settings.home / "test_fits" and (folder / "fitted").read_text() == "1"
    assert wb.cached(fit) is not None  # the nested run went through the result cache
    assert wb.run(spec).cached and wb.run(fake.UsesFitSpec(model="zoo-digits-cnn", size=4)).result is not None
    assert (folder / "fitted").read_text() == "1"  # a second look refits nothing
    # the consumer's key folds in the fit's fingerprint: another fit, another key
    other = fake.UsesFitSpec(model="zoo-digits-cnn", size=4)
    assert wb.result_key(spec) != wb.result_key(other)
    model_fp = wb.models.fingerprint("zoo-digits-cnn")
    from compute.specs import result_key

    assert wb.result_key(spec) == result_key(spec.hash, f"{model_fp}:{wb.result_key(fit)}")


def test_a_fit_folder_name_stays_inside_the_home(tmp_path):
    s = Settings(home=tmp_path, max_loaded_models=1, device="cpu")
    assert s.fit_dir("saes") == tmp_path / "saes"
    for bad in ("../etc", "a/b", "", "Saes"):
        with pytest.raises(ValueError):
            s.fit_dir(bad)


def test_the_device_lock_is_reentrant_and_still_excludes_other_threads(fresh_wb):
    lock = fresh_wb.models.device_lock("cuda:0")
    assert lock is fresh_wb.models.device_lock("cuda:0")
    got = []
    with lock:
        with lock:  # an analysis that requires another takes the lock again: no deadlock
            t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
            t.start()
            t.join()
    assert got == [False]  # another session waits while this one holds it


def test_bounded_fields_are_checked_with_their_range():
    with pytest.raises(BadInput, match="top_k must be between 1 and 50"):
        spec_from_dict({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": 51})
    with pytest.raises(BadInput, match="n_tokens must be between 1,000 and 4,000,000"):
        spec_from_dict({"kind": "sae_dashboards", "model": "zoo-lm", "sae": "x", "n_tokens": 10})
    with pytest.raises(BadInput, match="fit_fraction must be between 0.1 and 0.9"):
        spec_from_dict({"kind": "sae_error", "model": "zoo-lm", "sae": "x", "fit_fraction": 0.95})
    with pytest.raises(BadInput, match="skip_positions must be at least 0"):
        spec_from_dict({"kind": "sae_error", "model": "zoo-lm", "sae": "x", "skip_positions": -1})


def test_every_kind_is_found_without_naming_its_module():
    kinds = set(load_all())
    assert {"prompt", "model_check", "sae_train", "sae_eval", "sae_compare", "sae_dashboards", "sae_feature",
            "sae_prompt", "sae_steer", "sae_error", "attribution_text", "attribution_text_batch",
            "attribution_image", "attribution_image_batch"} <= kinds


def test_every_kind_names_a_page_that_exists():
    from app.pages import PAGE_ENTRIES

    names = {e.name for e in PAGE_ENTRIES}
    for kind, analysis in load_all().items():
        if not kind.startswith("test_"):
            assert analysis.spec_cls.PAGE in names, kind


def test_concurrent_first_lookups_see_every_kind():
    """Browser sessions are threads of one server: eight looking kinds up at once, in a fresh interpreter,
    all see the whole registry (a half-filled one made share links open on the wrong page)."""
    import subprocess
    import sys

    code = ("import threading\nfrom analyses import registry\nseen = []\nstart = threading.Barrier(8)\n"
            "def look():\n    start.wait()\n    seen.append(len(registry.load_all()))\n"
            "ts = [threading.Thread(target=look) for _ in range(8)]\n[t.start() for t in ts]\n[t.join() for t in ts]\n"
            "print(sorted(set(seen)), len(registry.ANALYSES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr[-2000:]
    seen, total = out.stdout.strip().rsplit(" ", 1)
    assert seen == f"[{total}]", out.stdout


def test_sessions_running_analyses_on_one_model_at_once_get_what_they_would_alone(fresh_wb):
    """Browser sessions are threads sharing one copy of a model, and analyses hang hooks on it: run together,
    each must get the result it gets alone (the device lock holds on the CPU too)."""
    import threading

    from analyses.attribution_text import AttributionTextSpec
    from analyses.prompt import PromptSpec

    specs = [PromptSpec(model="zoo-lm", prompt=f"def f{i}(x):\n    return x + {i}", top_k=3) for i in range(4)]
    specs += [AttributionTextSpec(model="zoo-lm", prompt=f"import os\nprint(os.path{i}", target=".",
                                  methods=("integrated_gradients", "attention_rollout"), ig_steps=8) for i in range(2)]
    alone = [fresh_wb.run(s, force=True).result.summary for s in specs]
    together, errors = [None] * len(specs), []

    def go(i):
        try:
            together[i] = fresh_wb.run(specs[i], force=True).result.summary
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(alone, together):
        assert {k: v for k, v in a.items() if "second" not in k} == {k: v for k, v in b.items() if "second" not in k}
