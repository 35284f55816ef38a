"""Bad input through a browser on the live server: links with unknown models, folders, hashes, pages, jobs and
out-of-range values, and stored specs with wrong types or kinds. Each page shows a message (an alert, never a
Streamlit exception box), and after each the server still answers its health check and a normal page."""
from __future__ import annotations

import urllib.request

import pytest

from tests.e2e.conftest import settle
from tests.hardening.cases import record

pytestmark = pytest.mark.browser

CASES = [  # (query string, words one alert must hold)
    ("model=no-such-model", "unknown model"),
    ("model=/etc", "not a model folder"),
    ("model=local:/no/such/folder", "no model folder"),
    ("a=zzzz", "zzzz"),
    ("a=0123456789abcdef", "no analysis is stored"),
    ("page=nonexistent", "no page 'nonexistent'"),
    ("top_k=-5", "top_k=-5"),
    ("top_k=NaN", "top_k=NaN"),
    ("page=sae_browser&model=zoo-lm&sae=/no/such/sae", "no SAE folder"),
    ("page=sae_browser&model=zoo-lm&sae=0000000000000000", "no SAE run is stored"),
    ("page=attention_features&model=zoo-lm&sae=/no/such/sae", "no SAE folder"),
    ("page=jobs&job=nope", "no job 'nope'"),
    ("page=sae_browser&model=zoo-digits-cnn", "needs a language model"),
    ("page=influence&model=tabular:breast-cancer", "influence queries run on language models"),
    ("page=circuits&model=zoo-digits-cnn", "language model"),
    ("{wrong_types}", "top_k"),
    ("{unknown_kind}", "no_such_analysis"),
]


@pytest.fixture(scope="module")
def stored(server_workbench):
    store = server_workbench.store
    return {"wrong_types": "a=" + store.put_spec({"kind": "prompt", "model": "zoo-lm", "prompt": "x", "top_k": "five"}),
            "unknown_kind": "a=" + store.put_spec({"kind": "no_such_analysis", "model": "zoo-lm"})}


def _still_serving(server) -> None:
    assert urllib.request.urlopen(f"{server}/_stcore/health", timeout=10).read() == b"ok"
    assert urllib.request.urlopen(f"{server}/", timeout=10).status == 200


@pytest.mark.parametrize("query, words", CASES, ids=[q for q, _ in CASES])
def test_a_bad_link_gets_a_message_and_the_server_keeps_serving(server, browser, stored, query, words):
    query = query.format(**stored) if query.startswith("{") else query
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(f"{server}/?{query}")
        settle(page)
        page.wait_for_timeout(300)
        settle(page)
        alerts = [a.inner_text() for a in page.locator("[data-testid='stAlert']").all()]
        assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:1500]
        hit = next((a for a in alerts if words.lower() in a.lower()), None)
        record("page", "?" + query, hit or " | ".join(alerts) or "(no message)")
        assert hit is not None, alerts
        assert "Traceback" not in page.inner_text("body")
    finally:
        page.close()
    _still_serving(server)
