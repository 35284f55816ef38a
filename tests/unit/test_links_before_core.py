"""Share links and result-cache entries written before the shared core (tests/fixtures/home_before_core:
a store and a result cache made by that code) still open, with the same hashes and keys."""
import json
import shutil
from pathlib import Path

import pytest

from analyses.registry import analysis_of
from compute.settings import Settings
from compute.specs import canonical_json, result_key, spec_hash
from compute.store import Store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "home_before_core"
RECORD = json.loads((FIXTURE / "links.json").read_text())


def test_a_canonical_string_and_its_hash_are_pinned():
    spec = {"kind": "prompt", "model": "zoo-lm", "prompt": "def f(x):", "top_k": 5.0, "tags": ("a", 1)}
    assert canonical_json(spec) == '{"kind":"prompt","model":"zoo-lm","prompt":"def f(x):","tags":["a",1],"top_k":5}'
    assert spec_hash(spec) == "578494047a937e66"


@pytest.mark.parametrize("kind", sorted(RECORD["pinned"]))
def test_one_full_spec_of_every_kind_keeps_its_hash(kind):
    """A default spec of each kind, written out in full by the old code and read back as the store reads
    it: adding a field without a legacy value (see `added` in analyses/base.py), which changes the
    canonical JSON of every stored spec of that kind and orphans every share link, fails here."""
    pinned = RECORD["pinned"][kind]
    cls = analysis_of(kind).spec_cls
    full = cls.from_dict(pinned["spec"], stored=True, validate=False)  # defaults alone need not be valid
    assert json.loads(json.dumps(full.to_dict())) == pinned["spec"]
    assert full.hash == pinned["hash"]
    # and a stored spec written with its defaults left out is the same spec
    given = ("kind", "model", "sae", "prompt", "prompts", "runs")
    assert cls.from_dict({k: v for k, v in pinned["spec"].items() if k in given}, stored=True,
                         validate=False).hash == pinned["hash"]


@pytest.fixture
def old_home(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home, ignore=shutil.ignore_patterns("links.json"))
    from analyses.workbench import Workbench

    return Workbench(Settings(home=home, max_loaded_models=3, device="cpu"))


@pytest.mark.parametrize("link", RECORD["links"], ids=[r["spec"]["kind"] for r in RECORD["links"]])
def test_stored_links_open_their_stored_results(old_home, link):
    wb = old_home
    spec = wb.load_shared(link["hash"])  # the spec as the old code stored it
    assert spec.hash == link["hash"]
    assert wb.result_key(spec) == link["result_key"]
    outcome = wb.run(spec)
    assert outcome.cached, "the result stored before the change was not found"
    assert sorted(outcome.result.summary) == link["summary_keys"]


def test_an_sae_result_key_still_folds_in_the_sae_weights(wb, small_sae):
    """The old rule, written out: result_key(spec hash, model fingerprint + ':' + SAE folder hash)."""
    from analyses.sae_dashboard import SAEFeatureSpec
    from analyses.sae_source import sae_location
    from compute.models import hash_files

    spec = SAEFeatureSpec(model="zoo-lm", sae=small_sae, feature=3)
    folder = Path(sae_location(wb, small_sae))
    assert folder.parent.parent == wb.settings.home / "saes"  # the run folders stay where they were
    assert wb.result_key(spec) == result_key(spec.hash, wb.models.fingerprint("zoo-lm") + ":" + hash_files(folder))


def test_a_stored_link_opens_on_its_page_in_the_app():
    """?a=<hash> alone (no page named) opens the stored analysis on the page its kind belongs to."""
    from analyses.workbench import Workbench
    from tests.app.helpers import errors, new_app

    wb = Workbench()  # the app's home (this test session's)
    old = Store(FIXTURE / "workbench.sqlite")
    for link in RECORD["links"]:
        wb.store.put_spec(old.get_spec(link["hash"]))
        src = FIXTURE / "results" / link["result_key"]
        if not wb.results.get(link["result_key"]):
            shutil.copytree(src, wb.results.path(link["result_key"]))
    prompt = next(r for r in RECORD["links"] if r["spec"]["kind"] == "prompt")
    at = new_app(a=prompt["hash"])
    at.run()
    assert not at.exception and not errors(at)
    assert any("loaded from the result cache" in c.value for c in at.caption)
    attr = next(r for r in RECORD["links"] if r["spec"]["kind"] == "attribution_text")
    at = new_app(a=attr["hash"])
    at.run()
    assert not at.exception and not errors(at)
    assert at.text_area(key="attr_prompt").value == attr["spec"]["prompt"]
    assert any("Kendall" in m.label for m in at.metric)
