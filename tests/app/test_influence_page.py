"""AppTest: the Influence page runs an LM query as a job (its factors fitted inside it), shows the helpful and
harmful sequences token by token with a link to the Models page, restores from a share link; on the digits CNN
an image query and self-influence with flipped labels; a bad damping is refused before any job starts."""
from analyses.influence_image import InfluenceImageSpec, InfluenceSelfSpec
from analyses.influence_lm import InfluenceLMSpec
from tests.app.helpers import errors, metrics, open_page, run_job


def test_an_lm_query_its_share_link_and_bad_damping(wb):
    at = open_page("influence", model="zoo-lm")
    assert not errors(at), errors(at)
    at.number_input(key="inf_max_sequences").set_value(60).run()
    at.number_input(key="inf_tfidf_k").set_value(20).run()
    spec = InfluenceLMSpec(model="zoo-lm", max_sequences=60, tfidf_k=20, prompt="def __init__(self", completion=", name):")
    run_job(wb, at, spec, "Find the influential training sequences (background job)")
    m = metrics(at)
    assert m["training sequences scored"] == "20"
    assert 0 <= float(m["tfidf recall of unfiltered top10"]) <= 1
    html = "".join(md.value for md in at.markdown)
    assert "rgba(33,102,172" in html and "Open this sequence on the Models page" in html
    assert any(t.proto.label.startswith("#1 · score") for t in at.expander)

    shared = open_page("influence", a=spec.hash)
    assert not errors(shared), errors(shared)
    assert shared.text_input(key="inf_completion").value == ", name):"
    assert shared.number_input(key="inf_tfidf_k").value == 20
    assert metrics(shared)["training sequences scored"] == "20"

    shared.text_input(key="inf_damping").set_value("-1").run()
    assert any("damping must be positive" in e for e in errors(shared)), errors(shared)


def test_an_image_query_and_flipped_labels_on_the_digits_cnn(wb):
    at = open_page("influence", model="zoo-digits-cnn")
    assert not errors(at), errors(at)
    at.text_input(key="inf_image").set_value("digits:3").run()
    run_job(wb, at, InfluenceImageSpec(model="zoo-digits-cnn", image="digits:3"),
            "Find the influential training digits (background job)")
    assert metrics(at)["label"] == "9"
    at.radio(key="inf_view").set_value("self").run()
    at.number_input(key="inf_epochs").set_value(20).run()
    run_job(wb, at, InfluenceSelfSpec(model="zoo-digits-cnn", flip_share=0.05, epochs=20),
            "Compute self-influence (background job)")
    found = metrics(at)["found in the top 10% of self-influence"]
    assert int(found.rstrip("%")) >= 50


def test_a_feature_query_opened_from_the_sae_browser_link(wb, small_sae):
    from analyses.lm_inputs import prompt_tokens
    from analyses.sae_source import load_for_model
    from compute.hooks import activations_at

    prompt = "for item in items:\n    print(item"
    lm = wb.models.get("zoo-lm")
    sae, hook = load_for_model(wb, small_sae, lm)
    z = sae.encode(activations_at(lm.model, hook, prompt_tokens(lm, prompt))[0])
    feature = int(z[-1].argmax())
    spec = InfluenceLMSpec(model="zoo-lm", max_sequences=40, prompt=prompt, measure="feature", sae=small_sae,
                           feature=feature, position=-1)
    at = open_page("influence", a=wb.store.put_spec(spec.to_dict()))
    assert not errors(at), errors(at)
    assert at.radio(key="inf_measure").value == "feature" and at.text_input(key="inf_sae").value == small_sae
    run_job(wb, at, spec, "Find the influential training sequences (background job)")
    assert int(metrics(at)["training sequences scored"]) == 40
    assert any("activation of feature" in c.value for c in at.caption)
