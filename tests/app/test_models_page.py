"""AppTest: the Models page runs a prompt, writes the analysis into the URL, and a link restores it."""
import json

import pytest

from tests.app.helpers import button, errors, metrics, new_app

PROMPT = "import os\nimport sys\nimport os\n"


@pytest.fixture(scope="module")
def ran():
    at = new_app()
    at.run()
    assert not at.exception and not errors(at)
    at.text_area(key="prompt_text").input(PROMPT)
    at.number_input(key="prompt_top_k").set_value(4)
    button(at, "Run prompt").click()
    at.run()
    return at


def test_default_page_shows_the_zoo_lm_architecture(ran):
    captions = " ".join(c.value for c in ran.caption)
    assert "zoo-lm" in captions and "parameters" in captions
    hooks = ran.dataframe[1].value
    assert "blocks.0.attn.hook_z" in set(hooks.hook)


def test_running_a_prompt_shows_predictions_and_sets_the_url(ran, zoo_lm):
    m = metrics(ran)
    n = len(zoo_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert m["tokens"] == str(n + 1)  # BOS first
    assert not errors(ran)
    h = ran.query_params["a"]
    h = h if isinstance(h, str) else h[0]
    assert len(h) == 16 and ran.query_params["model"] in ("zoo-lm", ["zoo-lm"])
    assert any(h in c.value for c in ran.code)  # the share link
    charts = ran.get("plotly_chart")
    assert len(charts) >= 4
    fig = json.loads(charts[0].proto.spec)
    assert fig["data"][0]["type"] == "heatmap"


def test_share_link_restores_the_same_analysis_from_cache(ran):
    h = ran.query_params["a"]
    h = h if isinstance(h, str) else h[0]
    again = new_app(a=h)
    again.run()
    assert not again.exception and not errors(again)
    assert metrics(again) == metrics(ran)
    assert again.text_area(key="prompt_text").value == PROMPT
    assert again.number_input(key="prompt_top_k").value == 4
    assert any("loaded from the result cache" in c.value for c in again.caption)


def test_unknown_share_hash_says_so():
    at = new_app(a="0123456789abcdef")
    at.run()
    assert not at.exception
    assert any("no analysis is stored under '0123456789abcdef'" in e for e in errors(at))


def test_empty_prompt_gives_a_message_not_a_crash():
    at = new_app()
    at.run()
    at.text_area(key="prompt_text").input("   ")
    button(at, "Run prompt").click()
    at.run()
    assert not at.exception
    assert any("prompt is empty" in e for e in errors(at))


def test_unknown_model_in_the_url_gives_a_message():
    at = new_app(model="gpt-7")
    at.run()
    assert not at.exception
    assert any("unknown model 'gpt-7'" in e for e in errors(at))


def test_offline_transformerlens_name_gives_a_message():
    at = new_app(model="gpt2")
    at.run()
    assert not at.exception
    assert any("not in the local Hugging Face cache" in e for e in errors(at))


def test_image_model_page_explains_prompts_do_not_apply():
    at = new_app(model="zoo-digits-cnn")
    at.run()
    assert not at.exception and not errors(at)
    assert any("image model" in i.value for i in at.info)


def test_quality_check_is_submitted_as_a_job():
    at = new_app(model="zoo-modadd")
    at.run()
    button(at, "Run the quality check as a job").click()
    at.run()
    assert not at.exception and not errors(at)
    assert any("submitted" in s.value for s in at.success)


@pytest.mark.parametrize("top_k", ["999999", "-5", "five"])
def test_an_out_of_range_top_k_in_the_link_is_said_and_not_used(top_k):
    at = new_app(top_k=top_k)
    at.run()
    assert not at.exception
    assert any(f"top_k={top_k}" in w.value and "using 5" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.number_input(key="prompt_top_k").value == 5


def test_an_unknown_page_in_the_link_is_said():
    at = new_app(page="nonexistent")
    at.run()
    assert any("no page 'nonexistent'" in w.value for w in at.warning)


def test_markdown_and_html_in_a_prompt_show_as_typed():
    at = new_app()
    at.run()
    at.text_area(key="prompt_text").input("**bold** $x$ [a](b) <b>hi</b>")
    button(at, "Run prompt").click()
    at.run()
    line = next(md.value for md in at.markdown if md.value.startswith("**Tokens**"))
    assert "&#42;&#42;" in line and "&#36;" in line and "&#60;" in line and "&#91;" in line
    assert "**bold" not in line and "<b>" not in line
