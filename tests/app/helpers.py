from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def new_app(**query) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def button(at, label):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def open_page(page_file: str, **query) -> AppTest:
    """A fresh session on one page (views/<page_file>.py) with these URL parameters, run once without exceptions."""
    at = new_app(**query)
    at.switch_page(f"views/{page_file}.py")
    at.run()
    assert not at.exception, at.exception
    return at


def run_job(wb, at, spec, label: str) -> None:
    """Start `spec`'s job with the page's button (unless its result is stored already: another test may have
    made it), wait for it, and rerun the page on its result."""
    if wb.cached(spec) is None:
        button(at, label).click()
        at.run()
        job = next(j for j in wb.jobs.list() if j.spec_hash == spec.hash)
        assert wb.jobs.wait(job.id, timeout=300).status == "done", wb.jobs.get(job.id).error
        at.run()
    assert not errors(at), errors(at)
