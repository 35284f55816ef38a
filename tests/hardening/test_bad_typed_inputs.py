"""Bad input typed into the pages' own boxes (AppTest, the page scripts as a browser session runs them): empty,
huge and control-character prompts, hooks, features and numbers that are not, server paths, releases that
cannot be fetched offline, corrupt and truncated SAE folders, unknown groups and malformed task text. Each
gets an error message of the workbench's own (a WorkbenchError, never "Something went wrong inside the
workbench", which is how a page reports a bug) naming what is wrong, and no exception box.

Numbers outside a box's range never reach the pages: the browser's number box refuses them and Streamlit's
server resets a value outside [min, max] to the value the box declares (test_out_of_range_numbers_are_reset)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyses.sae_source import sae_location
from tests.app.helpers import new_app
from tests.hardening.cases import record

HUGE = "def f(x):\n    return x\n" * 12_000  # ≈ 290k characters: over every prompt limit


@dataclass(frozen=True)
class Typed:
    id: str
    page: str
    fills: tuple  # (widget kind, key, value); "{sae}" / "{attention_sae}" / "{tmp}" are filled in
    words: str  # the message must hold these (case-insensitive)
    click: str | None = None  # a button's label (its start); None: the page reacts to the fill itself
    query: dict = field(default_factory=dict)


CASES = [
    # Models
    Typed("models: empty prompt", "models", (("text_area", "prompt_text", "   "),), "prompt is empty", "Run prompt"),
    Typed("models: huge prompt", "models", (("text_area", "prompt_text", HUGE),), "characters", "Run prompt"),
    Typed("models: unknown model typed in the model box", "models", (("state", "model", "no-such-model"),),
          "unknown model"),
    Typed("models: a folder that is not a model", "models", (("state", "model", "{tmp}"),), "not a model folder"),
    # SAE training: load an existing SAE
    Typed("sae load: missing folder", "sae_training", (("text_input", "sae_source", "{tmp}/no-such-sae"),),
          "no SAE folder", "Evaluate"),
    Typed("sae load: unknown SAE of a release", "sae_training", (("text_input", "sae_source", "gpt2-small-res-jb:nope"),),
          "has no SAE 'nope'", "Evaluate"),
    Typed("sae load: unknown release", "sae_training", (("text_input", "sae_source", "no-such-release:x"),),
          "knows no release", "Evaluate"),
    Typed("sae load: release offline", "sae_training", (("text_input", "sae_source",
                                                         "gpt2-small-res-jb:blocks.0.hook_resid_pre"),),
          "offline", "Evaluate"),
    Typed("sae load: corrupt cfg.json", "sae_training", (("text_input", "sae_source", "{tmp}/corrupt-sae"),),
          "cfg.json", "Evaluate"),
    Typed("sae load: truncated weights", "sae_training", (("text_input", "sae_source", "{tmp}/truncated-sae"),),
          "sae_weights.safetensors", "Evaluate"),
    Typed("sae load: wrong hook", "sae_training", (("text_input", "sae_source", "{sae_folder}"),
                                                   ("text_input", "sae_load_hook", "blocks.9.hook_resid_post")),
          "blocks.9.hook_resid_post", "Evaluate"),
    # Attribution (text)
    Typed("attribution: empty prompt", "attribution", (("text_area", "attr_prompt", ""),), "prompt is empty",
          "Compare"),
    Typed("attribution: huge prompt", "attribution", (("text_area", "attr_prompt", HUGE),), "characters", "Compare"),
    Typed("attribution: huge target", "attribution", (("text_area", "attr_prompt", "import os"),
                                                      ("text_input", "attr_target", "x" * 5000)), "target", "Compare"),
    Typed("attribution: batch too long", "attribution", (("text_area", "attr_batch_prompts", "a\n" * 5000),),
          "prompts"),
    # Attribution (images)
    Typed("image: digit out of range", "attribution", (("text_input", "img_source", "digits:999999"),), "digits",
          "Compare", {"model": "zoo-digits-cnn"}),
    Typed("image: a server path", "attribution", (("text_input", "img_source", "/etc/passwd"),), "upload",
          "Compare", {"model": "zoo-digits-cnn"}),
    Typed("image batch: reversed range", "attribution", (("text_input", "img_batch", "digits:9-2"),), "digits:9-2",
          None, {"model": "zoo-digits-cnn"}),
    Typed("image batch: not an image", "attribution", (("text_input", "img_batch", "digits:1, banana"),), "banana",
          None, {"model": "zoo-digits-cnn"}),
    # Tabular
    Typed("tabular: unknown group feature", "tabular", (("text_area", "tb_groups", "no_such_feature|mean radius"),),
          "no_such_feature", None, {"model": "tabular:breast-cancer"}),
    Typed("tabular: shift value without a feature", "tabular", (("text_input", "tb_shift_value", "abc"),), "shift",
          None, {"model": "tabular:breast-cancer"}),
    # Circuits
    Typed("circuits: malformed pairs", "circuits", (("selectbox", "ci_task", "custom (type or upload)"),
                                                   ("text_area", "ci_task_text", "this is not a task")), "pair"),
    Typed("circuits: JSON of the wrong shape", "circuits", (("selectbox", "ci_task", "custom (type or upload)"),
                                                           ("text_area", "ci_task_text", '{"positive": 3}')), "pair"),
    # Influence
    Typed("influence: damping not a number", "influence", (("text_input", "inf_damping", "lots"),), "damping"),
    Typed("influence: damping NaN", "influence", (("text_input", "inf_damping", "nan"),), "damping"),
    Typed("influence: negative damping", "influence", (("text_input", "inf_damping", "-1"),), "damping"),
    Typed("influence: feature query on an empty prompt", "influence", (("radio", "inf_measure", "feature"),
                                                                       ("text_input", "inf_sae", "{sae}"),
                                                                       ("text_area", "inf_prompt", "")), "give a prompt"),
    Typed("influence: training file missing", "influence", (("text_input", "inf_train", "text:{tmp}/none.txt"),),
          "training file not found", "Find the influential"),
    Typed("influence: training file not text", "influence", (("text_input", "inf_train", "text:{tmp}/corrupt-sae/sae_weights.safetensors"),),
          "not a text file", "Find the influential"),
    Typed("influence: unknown training set", "influence", (("text_input", "inf_train", "wikipedia"),), "wikipedia"),
    Typed("influence: SAE that is not one", "influence", (("radio", "inf_measure", "feature"),
                                                         ("text_input", "inf_sae", "{tmp}/no-such-sae")), "no SAE folder",
          "Find the influential"),
    Typed("influence: image digit out of range", "influence", (("text_input", "inf_image", "digits:-3"),),
          "out of range", "Find the influential", {"model": "zoo-digits-cnn"}),
    # SAE browser (the session's small SAE)
    Typed("browser: empty prompt", "sae_browser", (("state", "browser_view", "On a prompt"), ("text_area", "browser_prompt", ""),), "prompt is empty",
          "Show features", {"sae": "{sae}"}),
    Typed("browser: huge prompt", "sae_browser", (("state", "browser_view", "On a prompt"), ("text_area", "browser_prompt", HUGE),), "characters",
          "Show features", {"sae": "{sae}"}),
    Typed("steering: feature not a number", "sae_browser", (("state", "browser_view", "Steering"), ("text_area", "browser_steer_prompt", "import os"),
                                                           ("text_input", "browser_steer_features", "seven")),
          "seven", "Compare with", {"sae": "{sae}"}),
    Typed("steering: feature beyond d_sae", "sae_browser", (("state", "browser_view", "Steering"), ("text_area", "browser_steer_prompt", "import os"),
                                                           ("text_input", "browser_steer_features", "99999")),
          "99999", "Compare with", {"sae": "{sae}"}),
    Typed("steering: negative feature", "sae_browser", (("state", "browser_view", "Steering"), ("text_area", "browser_steer_prompt", "import os"),
                                                       ("text_input", "browser_ablate", "-4")),
          "-4", "Compare with", {"sae": "{sae}"}),
    Typed("steering: NaN coefficient", "sae_browser", (("state", "browser_view", "Steering"), ("text_area", "browser_steer_prompt", "import os"),
                                                      ("text_input", "browser_steer_features", "3"),
                                                      ("text_input", "browser_coef", "nan")),
          "coefficient", "Compare with", {"sae": "{sae}"}),
    Typed("steering: more coefficients than features", "sae_browser", (
        ("state", "browser_view", "Steering"), ("text_area", "browser_steer_prompt", "import os"), ("text_input", "browser_steer_features", "3, 4"),
        ("text_input", "browser_coef", "1, 2, 3")), "coefficient", "Compare with", {"sae": "{sae}"}),
    # Attention features (the session's hook_z SAE)
    Typed("attention: empty prompt", "attention_features", (("state", "af_view", "On a prompt"), ("text_area", "af_prompt", "")), "prompt is empty",
          "Attribute", {"sae": "{attention_sae}"}),
    Typed("attention: SAE folder that is missing", "attention_features",
          (("state", "af_sae", "{tmp}/no-such-sae"),), "no SAE folder"),
    # Jobs: batch export
    Typed("export: not a link or hash", "jobs", (("text_area", "export_links", "zzzz"),), "zzzz", "Build export"),
    Typed("export: unknown hash", "jobs", (("text_area", "export_links", "0123456789abcdef"),), "0123456789abcdef",
          "Build export"),
    Typed("export: nothing given", "jobs", (("text_area", "export_links", "  \n "),), "link", "Build export"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, small_sae, attention_sae, wb):
    """The folders the cases name: a corrupt SAE (cfg.json not JSON), a truncated one (weights cut short), and
    the session's SAE as a SAELens folder."""
    tmp = tmp_path_factory.mktemp("typed")
    sae_folder = Path(sae_location(wb, small_sae))
    corrupt = tmp / "corrupt-sae"
    corrupt.mkdir()
    (corrupt / "cfg.json").write_text("{ not json")
    (corrupt / "sae_weights.safetensors").write_bytes((sae_folder / "sae_weights.safetensors").read_bytes())
    truncated = tmp / "truncated-sae"
    truncated.mkdir()
    (truncated / "cfg.json").write_text((sae_folder / "cfg.json").read_text())
    weights = (sae_folder / "sae_weights.safetensors").read_bytes()
    (truncated / "sae_weights.safetensors").write_bytes(weights[: len(weights) // 3])
    return {"tmp": str(tmp), "sae": small_sae, "attention_sae": attention_sae, "sae_folder": str(sae_folder)}


def _filled(value, places):
    for name, place in places.items():
        value = value.replace("{" + name + "}", place)
    return value


def _fill(at, kind, key, value):
    """Type `value` into the box; a box that a previous fill reveals (a view, a custom task) appears on a rerun.
    No rerun otherwise: a value typed into a form counts only when its button is clicked."""
    try:
        widget = getattr(at, kind)(key=key)
    except KeyError:
        at.run()
        widget = getattr(at, kind)(key=key)
    if kind in ("text_area", "text_input"):
        widget.input(value)
    else:
        widget.set_value(value)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_typed_input_gets_a_message(case, places):
    at = new_app(**{k: _filled(v, places) for k, v in case.query.items()})
    for kind, key, value in case.fills:
        if kind == "state":  # what a box without an AppTest handle holds (a typed new option, a view)
            at.session_state[key] = _filled(value, places)
    at.switch_page(f"views/{case.page}.py")
    at.run()
    assert not at.exception, at.exception
    for kind, key, value in case.fills:
        if kind != "state":
            _fill(at, kind, key, _filled(value, places))
    if case.click is not None:
        if not any(b.proto.is_form_submitter for b in at.button if b.label.startswith(case.click)):
            at.run()  # as a browser does when a box loses focus: a job's button is keyed by the spec it would start
        buttons = [b for b in at.button if b.label.startswith(case.click)]
        assert buttons, f"no button {case.click!r}; have {[b.label for b in at.button]}"
        buttons[0].click()
    at.run()
    assert not at.exception, at.exception
    messages = [e.value for e in at.error] + [w.value for w in at.warning]
    bugs = [m for m in messages if "Something went wrong" in m]
    hit = next((m for m in messages if case.words.lower() in m.lower()), None)
    record("typed", case.id, hit or " | ".join(messages) or "(no message)")
    assert not bugs, bugs
    assert hit is not None, messages


NUMBER_PAGES = [("models", {}), ("sae_training", {}), ("attribution", {}), ("attribution", {"model": "zoo-digits-cnn"}),
                ("tabular", {"model": "tabular:breast-cancer"}), ("circuits", {}), ("interaction_bases", {}),
                ("influence", {})]


@pytest.mark.parametrize("page, query", NUMBER_PAGES, ids=[f"{p} {q}" if q else p for p, q in NUMBER_PAGES])
def test_out_of_range_numbers_are_reset(page, query):
    """Every number box on the page, given a negative value below its range, a huge one and (for decimals) NaN,
    as a crafted websocket client could: Streamlit's server puts a value outside [min, max] back to the box's
    declared value (its min where it declares none), so no spec ever holds it, and the page runs on. A box
    without a max (a seed) keeps a huge value, which its spec accepts."""
    at = new_app(**query)
    at.switch_page(f"views/{page}.py")
    at.run()
    boxes = [(n.key, n.value, n.min, n.max) for n in at.number_input]
    assert boxes, f"{page} has no number boxes"
    for key, default, lo, hi in boxes:
        integral = isinstance(default, int)
        became = []
        for bad in ((-10**12, 10**15) if integral else (-1e12, 1e15, math.nan)):
            at.number_input(key=key).set_value(bad)
            at.run()
            assert not at.exception, (key, bad, at.exception)
            now = at.number_input(key=key).value
            assert math.isfinite(now) and (lo is None or now >= lo) and (hi is None or now <= hi), (key, bad, now)
            became.append(f"{bad:g} → {now:g}")
        record("typed", f"{page}: {key} (range {lo}..{hi})", "; ".join(became))
