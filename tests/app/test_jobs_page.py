"""AppTest: the Jobs page lists jobs, follows one from the URL, shows its result, and cancels."""
import time

from tests.app.helpers import button, errors, new_app


def _submit(spec):
    from analyses.workbench import Workbench

    return Workbench().submit(spec)


def test_jobs_page_shows_a_finished_job_from_its_link():
    from analyses.model_check import ModelCheckSpec
    from analyses.workbench import Workbench

    rec = _submit(ModelCheckSpec(model="zoo-digits-cnn"))
    done = Workbench().jobs.wait(rec.id, timeout=120)
    assert done.status == "done", done.error
    at = new_app(job=rec.id)
    at.switch_page("views/jobs.py")
    at.run()
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value
    assert rec.id in set(table.job)
    assert at.selectbox(key="job_selected").value == rec.id
    assert any("confusion" in str(c.proto.spec) for c in at.get("plotly_chart"))
    assert at.query_params["job"] in (rec.id, [rec.id])


def test_cancel_from_the_page(monkeypatch):
    monkeypatch.setenv("WORKBENCH_EXTRA_ANALYSES", "tests.fake_analyses")
    import tests.fake_analyses as fake

    rec = _submit(fake.SleepSpec(model="zoo-digits-cnn", seconds=60))
    at = new_app(job=rec.id)
    at.switch_page("views/jobs.py")
    deadline = time.time() + 60
    while True:
        at.run()
        labels = [b.label for b in at.button]
        if "Cancel job" in labels or time.time() > deadline:
            break
        time.sleep(0.5)
    button(at, "Cancel job").click()
    at.run()
    from analyses.workbench import Workbench

    assert Workbench().jobs.wait(rec.id, timeout=30).status == "cancelled"


def test_batch_export_from_the_page():
    from analyses.prompt import PromptSpec
    from analyses.workbench import Workbench

    wb = Workbench()
    h = wb.run(PromptSpec(model="zoo-lm", prompt="x = [1, 2, 3]\n")).spec_hash
    at = new_app()
    at.switch_page("views/jobs.py")
    at.run()
    at.text_area(key="export_links").input(f"http://host/models?a={h}\n")
    at.multiselect(key="export_formats").set_value(["html"])
    button(at, "Build export").click()
    at.run()
    assert not at.exception and not errors(at)
    assert any("files from 1 analyses" in s.value for s in at.success)


def test_a_job_on_the_ray_cluster_says_where_it_runs(wb):
    rec = wb.store.create_job("rayjob0001", {"kind": "model_check", "model": "zoo-digits-cnn"}, "on the cluster",
                              runner="ray")
    at = new_app(job=rec.id)
    at.switch_page("views/jobs.py")
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table.set_index("job").loc["rayjob0001", "on"] == "Ray cluster"
    wb.store.finish_job("rayjob0001", "cancelled")
