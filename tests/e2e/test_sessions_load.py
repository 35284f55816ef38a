"""Five browser sessions at once on the live server, each on its own journey (a prompt typed and run, a share
link, an attribution link, an SAE dashboard link, a job started): every one finishes with no error and no
exception box, and the zoo LM is loaded once in the server for all of them. Timing is the benchmark's
(bench/bench_sessions.py, BENCHMARKS.md), not asserted here."""
from __future__ import annotations

import pytest

from bench.sessions import JOURNEYS, prepare, run_sessions
from tests.e2e.conftest import CHROMIUM

pytestmark = pytest.mark.browser


def test_five_sessions_at_once(server, server_workbench):
    prep = prepare(server_workbench)  # what the links open, computed in the server's home
    timings = run_sessions(server, prep, rounds=1, chromium=CHROMIUM)
    assert not timings.errors, timings.errors
    assert set(timings.steps) == set(JOURNEYS)
    for caption in timings.loaded_captions:  # the sidebar lists the server's loaded models: zoo-lm, once
        loaded = caption.split("loaded:")[-1].split("\n")[0]
        assert [m.strip() for m in loaded.split(",")].count("zoo-lm") == 1, caption
