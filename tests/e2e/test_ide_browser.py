"""GraphiQL and the API docs in headless Chromium that can reach nothing but the server itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.browser import chromium
from tests.e2e.test_serve import embedded_server
from tests.integration.test_graphql_orders import PLACE, placement
from tests.saga_harness import MOUSE

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
RESPONSE = (By.CSS_SELECTOR, ".graphiql-response")


@pytest.fixture
def browser() -> Iterator[Chrome]:
    """Chromium whose every host name fails to resolve: only 127.0.0.1, where the server is, answers."""
    only_the_server = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
    with chromium(more=[only_the_server], network_log=True) as chrome:
        yield chrome


def requested(browser: Chrome) -> list[str]:
    """The URLs (WebSockets too) the browser asked the network for since the last call.

    A request the page's own policy refused never left the browser, and is not counted.
    """
    log: list[dict[str, Any]] = browser.get_log("performance")  # type: ignore[no-untyped-call]  # untyped upstream
    messages = [json.loads(entry["message"])["message"] for entry in log]
    refused = {m["params"]["requestId"] for m in messages
               if m["method"] == "Network.loadingFailed" and m["params"].get("blockedReason") == "csp"}
    sent = [m["params"]["request"]["url"] for m in messages
            if m["method"] == "Network.requestWillBeSent" and m["params"]["requestId"] not in refused]
    return sent + [m["params"]["url"] for m in messages if m["method"] == "Network.webSocketCreated"]


def elsewhere(base: str, urls: list[str]) -> list[str]:
    ws = base.replace("http://", "ws://", 1)
    return [url for url in urls if not url.startswith((base, ws, f"blob:{base}", "data:"))]


def shot(browser: Chrome, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / name))


def run_in_graphiql(browser: Chrome, base: str, query: str, expected: str) -> str:
    """Opens GraphiQL with `query` in its editor, runs it, and waits for `expected` in the answer."""
    browser.get(f"{base}/graphql?q={quote(query)}")
    wait = WebDriverWait(browser, 30)
    wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror")))
    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
    wait.until(ready.text_to_be_present_in_element(RESPONSE, expected))
    answer: str = browser.find_element(*RESPONSE).text
    return answer


def test_graphiql_renders_and_answers_a_query_with_nothing_but_the_server_reachable(
    browser: Chrome, tmp_path: Path,
) -> None:
    with embedded_server(tmp_path) as (base, _):
        try:
            answer = run_in_graphiql(browser, base, "{ products { name available } }", "Wireless Mouse")
        finally:
            shot(browser, "graphiql.png")
        urls = requested(browser)

    assert '"products"' in answer
    assert any("asset=graphiql" in url for url in urls)
    assert elsewhere(base, urls) == []


def test_a_subscription_run_in_graphiql_follows_an_order_to_its_end(
    browser: Chrome, tmp_path: Path,
) -> None:
    with embedded_server(tmp_path, PAYMENT_FAILURE_RATE="0", SHIPPING_FAILURE_RATE="0",
                         NOTIFICATION_FAILURE_RATE="0") as (base, _):
        placed: dict[str, Any] = httpx.post(
            f"{base}/graphql", json={"query": PLACE, "variables": placement((MOUSE, 1))}).json()
        order_id = placed["data"]["placeOrder"]["order"]["id"]
        subscription = f'subscription {{ orderUpdated(id: "{order_id}") {{ id status }} }}'
        try:
            answer = run_in_graphiql(browser, base, subscription, "COMPLETED")
        finally:
            shot(browser, "graphiql-subscription.png")
        urls = requested(browser)

    assert order_id in answer
    assert f"{base.replace('http://', 'ws://', 1)}/graphql" in urls
    assert elsewhere(base, urls) == []


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .opblock"), ("/redoc", ".redoc-wrap")])
def test_the_api_docs_render_with_nothing_but_the_server_reachable(
    browser: Chrome, tmp_path: Path, path: str, rendered: str,
) -> None:
    with embedded_server(tmp_path) as (base, _):
        browser.get(f"{base}{path}")
        try:
            WebDriverWait(browser, 30).until(ready.presence_of_element_located((By.CSS_SELECTOR, rendered)))
        finally:
            shot(browser, f"docs{path.replace('/', '-')}.png")
        text = browser.find_element(By.TAG_NAME, "body").text
        urls = requested(browser)

    assert "/api/v1/orders" in text
    assert elsewhere(base, urls) == []
