"""AppTest: the Interaction bases page builds PCA bases of rib's modular-addition model as a job, shows its
tables as stored and a share link to the same spec; on the digits MLP the graph follows the top-N slider and
the edge ablation shows; a model it cannot read gets a clear message."""
import json

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


def test_the_digits_mlp_graph_follows_the_top_n_slider(wb):
    from analyses.interaction_bases import InteractionBasesSpec

    at = _page(model="zoo-digits-mlp")
    assert at.multiselect(key="ib_node_layers").value == ["hook_input", "layers.2.hook_out", "layers.4.hook_out",
                                                          "layers.5.hook_out"]
    # Without the node-ablation curves: a spec no other test runs, so the shared workbench has no cached result
    # of it and the page must offer the job.
    at.checkbox(key="ib_edge_ablation").check()
    at.checkbox(key="ib_node_ablation").uncheck()
    at.run()
    button(at, "Build the bases (background job)").click()
    at.run()
    spec = InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                     "layers.4.hook_out", "layers.5.hook_out"),
                                last_pos_from="", edge_ablation=True, node_ablation=False)
    job = next(j for j in wb.jobs.list() if j.spec_hash == spec.hash)
    assert wb.jobs.wait(job.id, timeout=300).status == "done", wb.jobs.get(job.id).error
    at.run()
    assert not errors(at), errors(at)
    assert any("smallest_within_0.001" in d.value.columns for d in at.dataframe)

    def traces_per_graph():  # the page's own graphs: one line trace per edge drawn, then the nodes
        specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        return [len(f["data"]) for f in specs if "interaction graph" in f["layout"]["title"]["text"]]

    before = traces_per_graph()
    at.slider(key=f"ib_topn_{spec.hash}").set_value(5).run()
    after = traces_per_graph()
    assert len(before) == len(after) == 2 and all(a < b for a, b in zip(after, before)), (before, after)


def test_a_model_it_cannot_read_gets_a_clear_message():
    at = _page(model="zoo-digits-cnn")
    assert any("convolutions are not supported" in e for e in errors(at)), errors(at)
