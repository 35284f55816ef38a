"""Browser-test fixtures: one app server and one Chromium for the whole e2e session.

Playwright drives Debian's Chromium (`make test` installs it); Playwright's own browser download
cannot work offline. The tests skip loudly only where no Chromium can be found.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BROWSER_PATH") or "/usr/bin/chromium"

HAVE_CHROMIUM = Path(CHROMIUM).exists()

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_home(tmp_path_factory) -> Path:
    """The app server's WORKBENCH_HOME: tests may prepare analyses there with their own Workbench."""
    return tmp_path_factory.mktemp("e2e-home")


@pytest.fixture(scope="session")
def server_workbench(server_home):
    from analyses.workbench import Workbench
    from compute.settings import Settings

    return Workbench(Settings(home=server_home, max_loaded_models=2, device="cpu"))


@pytest.fixture(scope="session")
def server(server_home):
    if not HAVE_CHROMIUM:  # tests/conftest.py prints a loud notice in the summary
        pytest.skip(f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM}")
    port = _free_port()
    home = server_home
    env = {**os.environ, "WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
                             "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not become healthy within 120 s:\n" + (home / "server.log").read_text()[-3000:])
    yield url
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        yield b
        b.close()


def settle(page, timeout=120_000):
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def wait_for_at_least(locator, n: int, timeout=120_000) -> int:
    """Wait until `locator` matches at least n elements (Streamlit draws a page in several deltas)."""
    locator.nth(n - 1).wait_for(timeout=timeout)
    return locator.count()


def metrics(page) -> dict[str, str]:
    out = {}
    for m in page.locator("[data-testid='stMetric']").all():
        label = m.locator("[data-testid='stMetricLabel']").inner_text().strip()
        out[label] = m.locator("[data-testid='stMetricValue']").inner_text().strip()
    return out


