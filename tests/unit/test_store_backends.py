"""The store's suite, run on both databases it supports: the embedded SQLite file and a real PostgreSQL server
(started by the tests; `WORKBENCH_DATABASE_URL` in a deployment)."""
from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from compute.errors import BadInput
from compute.store import Store


def test_specs_round_trip_and_the_first_creator_is_kept(store_target):
    store = Store(store_target)
    spec = {"kind": "prompt", "model": "zoo-lm", "prompt": "naïve café — 東京 <b>", "top_k": 5}
    h = store.put_spec(spec, creator="ann")
    assert store.put_spec(spec, creator="bob") == h
    assert store.get_spec(h) == spec
    assert store.spec_creator(h) == "ann"
    assert store.get_spec("0" * 16) is None and store.spec_creator("0" * 16) is None


def test_specs_are_listed_newest_first_by_kind(store_target):
    store = Store(store_target)
    hashes = []
    for i in range(5):
        hashes.append(store.put_spec({"kind": "prompt", "model": "zoo-lm", "prompt": f"p{i}"}))
        time.sleep(0.002)  # created times a few ms apart must still order (PostgreSQL's REAL would not)
    store.put_spec({"kind": "other", "model": "zoo-lm"})
    listed = store.list_specs("prompt")
    assert [h for h, _, _ in listed] == hashes[::-1]
    assert [h for h, _, _ in store.list_specs("prompt", limit=2)] == hashes[::-1][:2]
    assert all(spec["kind"] == "prompt" for _, spec, _ in listed)


def test_a_job_moves_through_its_states_and_the_first_final_state_wins(store_target):
    store = Store(store_target)
    spec = {"kind": "test_sleep", "model": "zoo-digits-cnn", "seconds": 1}
    rec = store.create_job("job00001", spec, "sleep", owner="ann")
    assert (rec.status, rec.progress, rec.owner, rec.active) == ("queued", 0.0, "ann", True)
    store.update_job("job00001", status="running", pid=4242, started=time.time(), progress=0.5, message="half")
    mid = store.get_job("job00001")
    assert (mid.status, mid.pid, mid.progress, mid.message) == ("running", 4242, 0.5, "half")
    assert store.finish_job("job00001", "done", result_key="rk1", message="finished")
    assert not store.finish_job("job00001", "failed", error="too late")
    done = store.get_job("job00001")
    assert (done.status, done.progress, done.result_key, done.error) == ("done", 1.0, "rk1", None)
    assert done.finished >= done.started >= done.created
    store.create_job("job00002", spec, "sleep")
    assert [j.id for j in store.list_jobs()] == ["job00002", "job00001"]
    assert store.get_job("nope") is None


def test_uploads_and_users_are_recorded(store_target):
    store = Store(store_target)
    store.record_upload("upload:abc", owner="ann")
    store.record_upload("upload:abc", owner="bob")
    assert store.upload_owner("upload:abc") == "ann" and store.upload_owner("upload:zzz") is None
    store.record_user("ann@lab.org")
    store.record_user("bob@lab.org", operator=True)
    time.sleep(0.002)
    store.record_user("ann@lab.org")
    users = store.list_users()
    assert [u["name"] for u in users] == ["ann@lab.org", "bob@lab.org"]
    assert users[0]["last_seen"] > users[0]["first_seen"] and users[1]["operator"] is True


def test_reopening_keeps_everything(store_target):
    h = Store(store_target).put_spec({"kind": "prompt", "model": "zoo-lm"}, creator="ann")
    again = Store(store_target)  # a second server (or a restarted one) on the same database
    assert again.get_spec(h) == {"kind": "prompt", "model": "zoo-lm"} and again.spec_creator(h) == "ann"


def _writer(target, n: int, worker: int, contested: str) -> None:
    store = Store(target)
    for i in range(n):
        store.create_job(f"w{worker}-{i}", {"kind": "test_sleep", "model": "m", "i": i, "w": worker}, "t")
        store.finish_job(f"w{worker}-{i}", "done", result_key=f"k{worker}-{i}")
    if store.finish_job(contested, "done", result_key=f"won-by-{worker}"):
        store.record_upload(f"winner:{worker}")


def test_five_processes_write_at_once_and_one_wins_a_contested_job(store_target):
    store = Store(store_target)
    store.create_job("contested", {"kind": "test_sleep", "model": "m"}, "race")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store_target, 20, w, "contested")) for w in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    jobs = store.list_jobs(limit=500)
    assert len(jobs) == 101 and all(j.status == "done" for j in jobs)
    winner = store.get_job("contested").result_key
    assert winner.startswith("won-by-")
    assert [w for w in range(5) if store.upload_owner(f"winner:{w}") is not None] == [int(winner[-1])]


def test_a_restarted_postgres_server_is_reconnected_to(postgres_server):
    store = Store(postgres_server.new_database())
    store.create_job("before01", {"kind": "test_sleep", "model": "m"}, "t")
    postgres_server.restart()  # drops every connection
    assert store.get_job("before01").status == "queued"
    store.finish_job("before01", "done")
    assert store.get_job("before01").status == "done"


def test_an_old_postgres_schema_gains_the_new_columns(postgres_server):
    import psycopg

    url = postgres_server.new_database()
    with psycopg.connect(url, autocommit=True) as c:  # the schema before sign-in existed
        c.execute("CREATE TABLE specs (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, json TEXT NOT NULL, "
                  "created DOUBLE PRECISION NOT NULL)")
        c.execute("INSERT INTO specs VALUES ('abc', 'prompt', '{\"kind\": \"prompt\"}', 1.0)")
    store = Store(url)
    assert store.get_spec("abc") == {"kind": "prompt"} and store.spec_creator("abc") == ""


def test_bad_database_urls_say_what_is_wrong(postgres_server):
    with pytest.raises(BadInput, match="must be a postgresql:// URL") as bad:
        Store("mysql://root:hunter2@db/workbench")
    assert "hunter2" not in str(bad.value)
    closed = f"postgresql://workbench:s3cret@127.0.0.1:{postgres_server.port + 1}/none"
    with pytest.raises(BadInput, match="cannot reach the database") as unreachable:
        Store(closed)
    assert "s3cret" not in str(unreachable.value) and "***" in str(unreachable.value)


def test_two_servers_share_links_jobs_and_users_through_one_database(postgres_server, tmp_path, monkeypatch):
    """Two workbench servers (own homes, one database): a link shared on one opens on the other."""
    from analyses.prompt import PromptSpec
    from analyses.workbench import Workbench
    from compute.settings import load_settings

    monkeypatch.setenv("WORKBENCH_DATABASE_URL", postgres_server.new_database())
    homes = []
    for name in ("a", "b"):
        monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / name))
        homes.append(Workbench(load_settings()))
    first, second = homes
    h = first.store.put_spec(PromptSpec(model="zoo-lm", prompt="shared across servers").to_dict(), creator="ann")
    assert second.store.get_spec(h)["prompt"] == "shared across servers"
    assert second.store.describe().startswith("PostgreSQL at postgresql://workbench@127.0.0.1:")
