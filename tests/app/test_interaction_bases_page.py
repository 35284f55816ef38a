"""AppTest: the Interaction bases page builds PCA bases of rib's modular-addition model as a job, shows its
tables as stored and a share link to the same spec; other models get a clear message."""
from tests.app.helpers import button, errors, metrics, new_app, open_page


def _page(**query):
    return open_page("interaction_bases", **query)


def test_build_pca_bases_as_a_job_then_reopen_the_link(wb):
    from analyses.interaction_bases import InteractionBasesSpec

    at = _page(model="rib-modadd")
    at.multiselect(key="ib_bases").set_value(["pca"])
    at.checkbox(key="ib_edges").uncheck()
    at.run()
    button(at, "Build the bases (background job)").click()
    at.run()
    assert not errors(at), errors(at)
    spec = InteractionBasesSpec(model="rib-modadd", bases=("pca",), edges=False)
    job = next(j for j in wb.jobs.list() if j.kind == "interaction_bases")
    assert job.spec_hash == spec.hash
    assert wb.jobs.wait(job.id, timeout=300).status == "done", wb.jobs.get(job.id).error
    at.run()
    assert not errors(at), errors(at)
    stored = wb.cached(spec)
    assert metrics(at)["test accuracy, nothing ablated"] == f"{stored.summary['unablated_accuracy']:.4f}"
    shown = [d.value for d in at.dataframe if "kept_dim" in d.value.columns][0]
    assert shown.reset_index(drop=True).equals(stored.tables["node_layers"].reset_index(drop=True))
    assert list(shown.kept_dim) == [115, 126, 129, 114]  # rib kept 115 / 127 / 129 (see tests/interaction)
    link = [c.value for c in at.code if "a=" in c.value][0]
    assert f"a={spec.hash}" in link
    again = new_app(a=spec.hash)
    again.run()
    assert not again.exception and not errors(again)
    assert metrics(again)["test accuracy, nothing ablated"] == metrics(at)["test accuracy, nothing ablated"]


def test_a_model_with_layernorm_gets_a_clear_message():
    at = _page(model="zoo-lm")
    assert any("TransformerLens-format checkpoints without LayerNorm" in i.value for i in at.info)
