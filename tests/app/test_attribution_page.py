"""AppTest: the attribution page compares methods on a prompt, restores a share link, runs a batch job."""
from analyses.attribution_text import AttributionBatchSpec
from tests.app.helpers import button, errors, metrics, new_app, open_page, run_job

PROMPT = "import os\nimport sys\n\nprint(os.path"


def _page(**query):
    return open_page("attribution", **query)


def test_compare_two_methods_then_reopen_the_link(wb):
    at = _page()
    at.text_area(key="attr_prompt").set_value(PROMPT)
    at.text_input(key="attr_target").set_value(".")
    at.multiselect(key="attr_methods").set_value(["integrated_gradients", "attention_rollout"])
    button(at, "Compare").click()
    at.run()
    assert not errors(at), errors(at)
    m = metrics(at)
    assert m["target"] == "'.'" and m["methods"] == "2"
    table = [d.value for d in at.dataframe if "soft_ns" in d.value.columns][0]
    assert list(table.method) == ["integrated_gradients", "attention_rollout"]
    link = [c.value for c in at.code if "a=" in c.value][0]
    h = link.split("a=")[1].split("&")[0]
    again = _page(a=h, model="zoo-lm")
    assert metrics(again)["methods"] == "2"
    assert again.text_area(key="attr_prompt").value == PROMPT
    # the target links to the Influence page, which asks which training sequences taught it
    taught = [md.value for md in at.markdown if "Which training sequences taught" in md.value][0]
    query = wb.load_shared(taught.split("a=")[1].split("&")[0].rstrip(")"))
    assert (query.KIND, query.prompt, query.completion) == ("influence_lm", PROMPT, ".")


def test_empty_prompt_and_unknown_target_id_get_messages():
    at = _page()
    at.text_area(key="attr_prompt").set_value("   ")
    at.multiselect(key="attr_methods").set_value(["saliency"])
    button(at, "Compare").click()
    at.run()
    assert any("prompt is empty" in e for e in errors(at))


def test_batch_runs_as_a_job(wb):
    at = _page()
    at.multiselect(key="attr_batch_methods").set_value(["saliency", "attention_last"])
    at.text_area(key="attr_batch_prompts").set_value("import os\\nimport\nfor i in range(\tlen")
    at.run()
    button(at, "Compare on 2 prompts (background job)").click()
    at.run()
    assert not errors(at), errors(at)
    # what the page should have parsed: "\n" inside a prompt is a newline; the second line's TAB target is
    # kept though the first line has none (that one explains its greedy next token); the zoo LM's default
    # replacement is the zoo masked LM
    spec = AttributionBatchSpec(model="zoo-lm", prompts=("import os\nimport", "for i in range("),
                                targets=("", "len"), methods=("saliency", "attention_last"), replacement="zoo-mlm")
    jobs = [j for j in wb.jobs.list() if j.kind == "attribution_text_batch"]
    assert [j.spec_hash for j in jobs] == [spec.hash], [wb.store.get_spec(j.spec_hash) for j in jobs]
    job = jobs[0]
    assert wb.jobs.wait(job.id, timeout=240).status == "done", wb.jobs.get(job.id).error
    at.run()
    per_method = [d.value for d in at.dataframe if "soft_nc" in d.value.columns and "prompt" not in d.value.columns]
    assert per_method and set(per_method[0].method) == {"saliency", "attention_last"}
    per_prompt = wb.cached(spec).tables["per_prompt"]
    assert sorted(per_prompt.prompt.unique()) == [0, 1]


def test_image_model_compares_maps():
    at = _page(model="zoo-digits-cnn")
    at.text_input(key="img_source").set_value("digits:5")
    at.multiselect(key="img_methods").set_value(["gradcam", "occlusion"])
    button(at, "Compare").click()
    at.run()
    assert not errors(at), errors(at)
    m = metrics(at)
    assert m["image"].startswith("held-out digit #5") and float(m["p(class)"]) > 0.5
    table = [d.value for d in at.dataframe if "deletion_auc" in d.value.columns][0]
    assert list(table.method) == ["gradcam", "occlusion"]
    at.text_input(key="img_source").set_value("digits:99999")
    button(at, "Compare").click()
    at.run()
    assert any("out of range" in e for e in errors(at))


def test_image_batch_range_is_parsed_and_checked():
    at = _page(model="zoo-digits-cnn")
    at.text_input(key="img_batch").set_value("digits:3-1")
    at.run()
    assert any("not a range" in e for e in errors(at))
    at.text_input(key="img_batch").set_value("digits:0-4")
    at.run()
    assert any(b.label == "Compare on 5 images (background job)" for b in at.button)


def test_shap_spans_left_unresolved_by_the_budget_are_named_on_the_page():
    at = _page()
    at.text_area(key="attr_prompt").set_value("def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return")
    at.text_input(key="attr_target").set_value(" a")
    at.multiselect(key="attr_methods").set_value(["shap"])
    at.number_input(key="attr_shap_evals").set_value(50)
    button(at, "Compare").click()
    at.run()
    assert not errors(at), errors(at)
    warning = " ".join(w.value for w in at.warning)
    assert "did not split every span" in warning and "395 evaluations resolve every token" in warning


def test_the_page_says_which_faithfulness_definition_it_shows():
    at = _page()
    assert at.selectbox(key="attr_replacement").value == "zoo-mlm"  # the zoo LM's own masked LM
    assert at.selectbox(key="attr_faithfulness").value == "reagent_code"
    at.text_area(key="attr_prompt").set_value(PROMPT)
    at.multiselect(key="attr_methods").set_value(["saliency"])
    button(at, "Compare").click()
    at.run()
    assert not errors(at), errors(at)
    assert any("Faithfulness shown: **ReAGent paper's code" in c.value for c in at.caption)
    at.selectbox(key="attr_faithfulness").set_value("workbench")
    button(at, "Compare").click()
    at.run()
    assert any("Faithfulness shown: **workbench" in c.value and "Hellinger" in c.value for c in at.caption)


def test_vanilla_vs_robust_runs_as_a_job_and_reopens_from_its_link(wb):
    from analyses.attribution_robust import RobustComparisonSpec

    at = _page(model="zoo-digits-cnn")
    at.number_input(key="rob_n").set_value(3).run()
    spec = RobustComparisonSpec(model="zoo-digits-cnn", n_images=3)
    run_job(wb, at, spec, "Compare both models on 3 digits (background job)")
    m = metrics(at)
    assert m["insertion favours robust"].endswith("of 9")
    vanilla, robust = (float(m[k].split(" / ")[1].rstrip("%")) for k in ("vanilla: clean / PGD", "robust: clean / PGD"))
    assert robust > vanilla
    assert any("insertion_favours" in d.value.columns for d in at.dataframe)
    shared = _page(a=spec.hash)
    assert not errors(shared), errors(shared)
    assert shared.number_input(key="rob_n").value == 3 and "insertion favours robust" in metrics(shared)
