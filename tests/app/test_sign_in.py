"""AppTest: with WORKBENCH_TOKEN set the app is a served one: nothing shows until a user signs in with their
name and the token; a wrong token is refused; the operator's token signs in as an operator; signing out
returns to the form. Without it (every other test) the app is the single-user local tool."""
from tests.app.helpers import button, errors, new_app


def _form(monkeypatch):
    monkeypatch.setenv("WORKBENCH_TOKEN", "group-secret")
    monkeypatch.setenv("WORKBENCH_OPERATOR_TOKEN", "operator-secret")
    at = new_app()
    at.run()
    assert not at.exception
    return at


def _sign_in(at, name: str, token: str):
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_token").input(token)
    button(at, "Sign in").click()
    at.run()
    return at


def test_nothing_shows_before_sign_in_and_a_wrong_token_is_refused(monkeypatch):
    at = _form(monkeypatch)
    assert not at.metric and not at.dataframe and at.text_input(key="sign_in_token")
    _sign_in(at, "ann", "guess")
    assert any("not this server's" in e for e in errors(at)) and not at.dataframe


def test_the_token_signs_in_and_names_the_user_then_sign_out(monkeypatch):
    at = _form(monkeypatch)
    _sign_in(at, "ann", "group-secret")
    assert not at.exception and not errors(at)
    assert any("signed in as **ann**" in c.value for c in at.sidebar.caption)
    assert at.dataframe  # the Models page: the architecture and hook tables
    button(at, "Sign out").click()
    at.run()
    assert at.text_input(key="sign_in_token") and not at.dataframe


def test_the_operator_token_signs_in_an_operator_and_the_store_records_users(monkeypatch, wb):
    at = _form(monkeypatch)
    _sign_in(at, "olga", "operator-secret")
    assert any("signed in as **olga** (operator)" in c.value for c in at.sidebar.caption)
    at.run()  # a rerun does not record again
    olga = [u for u in wb.store.list_users() if u["name"] == "olga"]
    assert len(olga) == 1 and olga[0]["operator"] is True


def test_another_users_job_cannot_be_cancelled_from_the_jobs_page_but_an_operators_can(monkeypatch, wb):
    from analyses.acting import Acting, User
    from analyses.sae_runs import SAETrainSpec

    job = Acting(wb, User("ann")).submit(SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", d_sae=64,
                                                       k=4, n_tokens=4096, batch_size=1024, seed=424242))
    checked = []
    try:
        for name, token, may in (("bob", "group-secret", False), ("olga", "operator-secret", True)):
            at = _form(monkeypatch)
            at.query_params["page"] = "jobs"
            at.query_params["job"] = job.id
            _sign_in(at, name, token)
            assert not at.exception
            if wb.jobs.get(job.id).active:
                cancel = button(at, "Cancel job")
                assert cancel.disabled is (not may), (name, cancel.disabled)
                checked.append(name)
            assert "ann" in at.dataframe[0].value.by.tolist()  # the Jobs table says who started it
        assert "bob" in checked  # a worker takes seconds to start: the job was still queued or running for bob
    finally:
        wb.jobs.cancel(job.id)
