"""AppTest: the Attention features page reads a hook_z SAE's heads as a job and opens one feature from a
readable link, with a link back to its SAE-browser dashboard; DFA on a prompt, and one step back through a residual SAE; an SAE on another hook gets a clear message; the
Circuit heads page finds the induction circuit as a job and rejects a task file that does not parse."""
from tests.app.helpers import button, errors, metrics, open_page, run_job


def test_attention_features_job_then_a_feature_from_a_link(wb, attention_sae):
    from analyses.attention_features import AttentionFeaturesSpec

    at = open_page("attention_features", model="zoo-lm", sae=attention_sae)
    assert not errors(at), errors(at)
    spec = AttentionFeaturesSpec(model="zoo-lm", sae=attention_sae)
    run_job(wb, at, spec, "Read every feature's heads (background job)")
    assert not errors(at), errors(at)
    stored = wb.cached(spec)
    assert metrics(at)["induction"] == str(stored.summary["induction_features"])
    assert any("top_induction" in d.value.columns for d in at.dataframe)

    feats = stored.tables["features"]
    feat = int(feats[(feats.family == "induction") & (feats.top_head == "L1H1")].feature.iloc[0])
    one = open_page("attention_features", model="zoo-lm", sae=attention_sae, feature=str(feat))
    assert not errors(one), errors(one)
    assert one.radio(key="af_view").value == "Feature"
    assert metrics(one)["family"] == "induction" and metrics(one)["top head"] == "L1H1"
    assert any(f"page=sae_browser" in m.value and f"feature={feat}" in m.value for m in one.markdown)


def test_dfa_on_a_prompt_and_an_sae_on_another_hook(wb, attention_sae, small_sae):
    at = open_page("attention_features", model="zoo-lm", sae=attention_sae)
    at.radio(key="af_view").set_value("On a prompt").run()
    button(at, "Attribute").click()
    at.run()
    assert not errors(at), errors(at)
    assert float(metrics(at)["DFA + bias − pre-activation"]) < 1e-3
    # one step back through a residual-stream SAE on the stream entering layer 1
    at.selectbox(key="af_upstream").set_value(small_sae).run()
    assert not errors(at), errors(at)
    assert float(metrics(at)["parts − pre-activation"]) < 1e-3
    assert any("page=sae_browser" in m.value and f"sae={small_sae}" in m.value for m in at.markdown)
    other = open_page("attention_features", model="zoo-lm", sae=small_sae)
    assert any("attention-output SAE" in e for e in errors(other)), errors(other)


def test_circuit_heads_job_and_a_bad_task_file(wb):
    from analyses.circuits import CircuitsSpec

    at = open_page("circuits", model="zoo-lm")
    at.multiselect(key="ci_methods").set_value(["patching"]).run()
    spec = CircuitsSpec(model="zoo-lm", methods=("patching",))
    run_job(wb, at, spec, "Find the circuit heads (background job)")
    assert not errors(at), errors(at)
    assert metrics(at)["circuit (patching)"] == "L0H1, L1H1"
    at.selectbox(key="ci_task").set_value("custom (type or upload)").run()
    at.text_area(key="ci_task_text").set_value('{"pairs": [').run()
    assert any("does not parse as JSON" in e for e in errors(at)), errors(at)
