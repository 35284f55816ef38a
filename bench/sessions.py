"""Five browser sessions at once on one server, each on its own journey, timed: how long from a click or a link
to a page that has finished running (Streamlit's script state `notRunning`, the expected element drawn).

The journeys (a researcher's common steps):
- prompt: the Models page, a new prompt typed, "Run prompt" → its metrics;
- share link: a colleague's link to a prompt analysis (cached) → its metrics;
- attribution: a link to an attribution comparison (cached) → its token rows;
- dashboard: a link to an SAE feature's dashboard (cached) → its top contexts;
- job: the Models page of zoo-modadd, "Run the quality check as a job" → "submitted".

`prepare(wb)` computes what the links open (in the server's home, before the server starts); `run_sessions`
drives Chromium through Playwright's async API, one context per session, and returns every step's seconds.
Used by tests/e2e/test_sessions_load.py (one round, no timing asserted) and bench/bench_sessions.py (rounds,
p50/p95).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"


@dataclass
class Prepared:
    prompt_hash: str
    attribution_hash: str
    sae: str
    feature: int


@dataclass
class Timings:
    steps: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loaded_captions: list[str] = field(default_factory=list)

    def add(self, journey: str, seconds: float) -> None:
        self.steps.setdefault(journey, []).append(seconds)


def prepare(wb) -> Prepared:
    from analyses.attribution_text import AttributionTextSpec
    from analyses.prompt import PromptSpec
    from analyses.sae_dashboard import SAEDashboardSpec
    from analyses.sae_runs import SAETrainSpec

    prompt = wb.run(PromptSpec(model="zoo-lm", prompt="import os\nimport sys\n", top_k=5))
    attribution = wb.run(AttributionTextSpec(model="zoo-lm", prompt="import os\nimport sys\n\nprint(os.path",
                                             target=".", methods=("integrated_gradients", "attention_rollout")))
    run = SAETrainSpec(model="zoo-lm", hook="blocks.0.hook_resid_post", arch="topk", k=8, d_sae=256,
                       n_tokens=32_768, batch_size=1024, lr=2e-3, eval_tokens=4096)
    wb.run(run)
    dash = wb.run(SAEDashboardSpec(model="zoo-lm", sae=run.hash, n_tokens=32_768)).result
    feature = int(dash.tables["features"].sort_values("fires").iloc[-1].feature)
    return Prepared(prompt.spec_hash, attribution.spec_hash, run.hash, feature)


async def _settled(page, timeout=180_000):
    await page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    await page.wait_for_selector(DONE, timeout=timeout)


async def _journey(browser, url: str, name: str, prep: Prepared, rounds: int, out: Timings, start: asyncio.Event):
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    try:
        await start.wait()
        for r in range(rounds):
            t0 = time.perf_counter()
            if name == "prompt":
                await page.goto(f"{url}/?model=zoo-lm")
                await _settled(page)
                await page.get_by_label("Prompt").fill(f"def add(a, b):\n    return a + b  # {r} {time.time_ns()}\n")
                t0 = time.perf_counter()  # the step timed: the click to its result
                await page.get_by_role("button", name="Run prompt").click()
                await page.locator("[data-testid='stMetric']").filter(has_text="top next token").first.wait_for(
                    timeout=180_000)
                await _settled(page)
                caption = await page.locator("[data-testid='stSidebar']").inner_text()
                out.loaded_captions.append(caption)
            elif name == "share link":
                await page.goto(f"{url}/?a={prep.prompt_hash}")
                await page.locator("[data-testid='stMetric']").filter(has_text="top next token").first.wait_for(
                    timeout=180_000)
                await _settled(page)
            elif name == "attribution":
                await page.goto(f"{url}/?a={prep.attribution_hash}")
                await page.locator("[data-testid='stMetric']").filter(has_text="methods").first.wait_for(
                    timeout=180_000)
                await _settled(page)
            elif name == "dashboard":
                await page.goto(f"{url}/?page=sae_browser&model=zoo-lm&sae={prep.sae}&feature={prep.feature}"
                                f"&tokens=32768")
                await page.get_by_text(f"Feature {prep.feature}:").first.wait_for(timeout=180_000)
                await _settled(page)
            elif name == "job":
                await page.goto(f"{url}/?model=zoo-modadd")
                await _settled(page)
                t0 = time.perf_counter()
                await page.get_by_role("button", name="Run the quality check as a job").click()
                await page.get_by_text("submitted").first.wait_for(timeout=180_000)
                await _settled(page)
            out.add(name, time.perf_counter() - t0)
            if await page.locator("[data-testid='stException']").count():
                out.errors.append(f"{name}: {await page.locator('[data-testid=stException]').first.inner_text()}")
    except Exception as e:  # noqa: BLE001 - a timeout is a finding, reported with what the page showed
        try:
            shown = " ".join((await page.inner_text("body")).split())[:600]
        except Exception:  # noqa: BLE001
            shown = "(page unreadable)"
        out.errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0]} at {page.url} showing: {shown}")
    finally:
        await ctx.close()


JOURNEYS = ("prompt", "share link", "attribution", "dashboard", "job")


async def _run(url: str, prep: Prepared, rounds: int, chromium: str) -> Timings:
    from playwright.async_api import async_playwright

    out = Timings()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROME_ARGS, headless=True)
        start = asyncio.Event()
        tasks = [asyncio.create_task(_journey(browser, url, j, prep, rounds, out, start)) for j in JOURNEYS]
        await asyncio.sleep(1.0)  # every context open before any journey starts: they run at once
        start.set()
        await asyncio.gather(*tasks)
        await browser.close()
    return out


def run_sessions(url: str, prep: Prepared, rounds: int = 1, chromium: str = "/usr/bin/chromium") -> Timings:
    """In a thread of its own, with its own event loop: the caller may already run one (Playwright's sync API,
    as the browser tests' session fixture does)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _run(url, prep, rounds, chromium)).result()


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")
