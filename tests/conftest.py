"""Test set-up: offline, a fresh workbench home per session, torch kept to the cores we have."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WORKBENCH_THREADS", "2")
_HOME = tempfile.mkdtemp(prefix="workbench-test-")
os.environ["WORKBENCH_HOME"] = _HOME
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def wb():
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    w = Workbench()
    w.startup()
    return w


@pytest.fixture(scope="session")
def zoo_lm(wb):
    return wb.models.get("zoo-lm")


SMALL_SAE_HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="session")
def small_sae(wb):
    """A small TopK SAE on the zoo LM (trained once per session, ~20 s): its run hash names it."""
    from analyses.sae_runs import SAETrainSpec

    spec = SAETrainSpec(model="zoo-lm", hook=SMALL_SAE_HOOK, arch="topk", k=8, d_sae=256, n_tokens=32_768,
                        batch_size=1024, lr=2e-3, eval_tokens=4096)
    wb.run(spec)
    return spec.hash


ATTENTION_SAE_HOOK = "blocks.1.attn.hook_z"


@pytest.fixture(scope="session")
def attention_sae(wb):
    """A TopK SAE on the zoo LM's layer-1 attention output (hook_z, 6 heads × 32), trained once (~10 s)."""
    from analyses.sae_runs import SAETrainSpec

    spec = SAETrainSpec(model="zoo-lm", hook=ATTENTION_SAE_HOOK, arch="topk", k=8, d_sae=256, n_tokens=65_536,
                        batch_size=1024, lr=2e-3, eval_tokens=4096)
    wb.run(spec)
    return spec.hash


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session (Debian's package; `make test` installs it)."""
    from tests.services.postgres import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a store lives, for each database the store runs on: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "workbench.sqlite"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def fresh_settings(tmp_path):
    from compute.settings import Settings

    return Settings(home=tmp_path, max_loaded_models=2, device="cpu")


def pytest_terminal_summary(terminalreporter):
    browser = os.environ.get("BROWSER_PATH") or "/usr/bin/chromium"
    if not Path(browser).exists():
        terminalreporter.write_line(f"!!! BROWSER TESTS SKIPPED: no Chromium at {browser}; install Debian's chromium "
                                    f"(make test does, as root) !!!", red=True, bold=True)


def pytest_sessionfinish(session):
    from tests.hardening.cases import REPORT

    if REPORT:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nbad inputs and the messages they got ({len(REPORT)}):")
            for where, given, message in REPORT:
                reporter.write_line(f"  [{where}] {given}  ->  {message}")
