import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyses.registry import spec_from_dict
from analyses.model_check import ModelCheckSpec
from analyses.prompt import PromptSpec
from compute.errors import BadInput
from compute.specs import canonical_json, result_key, spec_hash


def test_hash_is_stable_and_order_independent():
    a = {"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": 5}
    b = {"top_k": 5, "prompt": "x", "model": "zoo-lm", "kind": "prompt"}
    assert spec_hash(a) == spec_hash(b)
    assert len(spec_hash(a)) == 16
    assert spec_hash(a) == spec_hash(json.loads(canonical_json(a)))
    # the literal hashes (of a canonical string, and of one full spec of every kind) are pinned in
    # tests/unit/test_links_before_core.py: a change of hashing or a new defaulted field fails there


def test_hash_differs_for_any_field_change():
    base = PromptSpec(model="zoo-lm", prompt="hello", top_k=5)
    assert base.hash != PromptSpec(model="zoo-lm", prompt="hello ", top_k=5).hash
    assert base.hash != PromptSpec(model="zoo-lm", prompt="hello", top_k=6).hash
    assert base.hash != PromptSpec(model="zoo-modadd", prompt="hello", top_k=5).hash
    assert base.hash != ModelCheckSpec(model="zoo-lm").hash


def test_result_key_depends_on_weights():
    assert result_key("abc", "fp1") != result_key("abc", "fp2")


@given(prompt=st.text(min_size=1, max_size=200).filter(lambda s: s.strip()), top_k=st.integers(1, 50),
       bos=st.booleans())
def test_spec_round_trips_through_json_with_same_hash(prompt, top_k, bos):
    spec = PromptSpec(model="zoo-lm", prompt=prompt, top_k=top_k, prepend_bos=bos)
    again = spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.hash == spec.hash


def test_ints_given_as_floats_or_strings_coerce():
    s = spec_from_dict({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": "7"})
    assert s.top_k == 7 and s.hash == PromptSpec(model="zoo-lm", prompt="x", top_k=7).hash


@pytest.mark.parametrize("bad, message", [
    ({"model": "zoo-lm"}, "kind"),
    ({"kind": "nope", "model": "zoo-lm"}, "unknown analysis kind"),
    ({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "colour": 1}, "unknown field"),
    ({"kind": "prompt", "model": "zoo-lm", "prompt": "   "}, "prompt is empty"),
    ({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": "many"}, "top_k"),
    ({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": 0}, "top_k"),
    ({"kind": "prompt", "prompt": "x"}, "missing field"),
])
def test_bad_specs_have_clear_messages(bad, message):
    with pytest.raises(BadInput, match=message):
        spec_from_dict(bad)


def test_nan_is_rejected():
    with pytest.raises(BadInput, match="finite"):
        spec_hash({"x": float("nan")})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_setting_is_named(value):
    with pytest.raises(BadInput, match="coefficients must be finite"):
        spec_from_dict({"kind": "sae_steer", "model": "zoo-lm", "sae": "x", "prompt": "a", "steer_features": [1],
                        "coefficients": [1.0, value]})
