"""Real browser: run a prompt on the Models page, take the share link, open it in a new browser context.

Playwright drives Debian's Chromium (`make test` installs it); Playwright's own browser download
cannot work offline. Skips loudly only where no Chromium can be found.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BROWSER_PATH") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    print(f"\n!!! BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM} (install Debian's chromium) !!!\n", file=sys.stderr)
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("e2e-home")
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        yield b
        b.close()


def _settle(page, timeout=120_000):
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def _metrics(page) -> dict[str, str]:
    out = {}
    for m in page.locator("[data-testid='stMetric']").all():
        label = m.locator("[data-testid='stMetricLabel']").inner_text().strip()
        out[label] = m.locator("[data-testid='stMetricValue']").inner_text().strip()
    return out


def test_prompt_share_link_reopens_in_a_new_browser(server, browser, tmp_path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{server}/")
    _settle(page)
    box = page.get_by_label("Prompt")
    box.fill("def f(x):\n    return x\n\ndef f(x):\n    return")
    page.get_by_role("button", name="Run prompt").click()
    page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    _settle(page)
    first = _metrics(page)
    assert first["tokens"].isdigit() and int(first["tokens"]) > 5
    link = page.locator("[data-testid='stCode']").first.inner_text().strip()
    assert re.search(r"/\?a=[0-9a-f]{16}", link), link
    assert link.startswith(server)
    assert "a=" in page.url  # the address bar holds the analysis too
    page.screenshot(path=str(tmp_path / "first.png"))
    ctx.close()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})  # no shared state with the first
    page2 = fresh.new_page()
    page2.goto(link)
    page2.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
    _settle(page2)
    assert _metrics(page2) == first
    assert page2.get_by_text("loaded from the result cache").count() >= 1
    assert page2.get_by_label("Prompt").input_value() == "def f(x):\n    return x\n\ndef f(x):\n    return"
    fresh.close()
