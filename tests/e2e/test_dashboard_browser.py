"""The dashboard in a real browser: headless Chromium places a test order and watches its saga complete,
and restocks a product from the stock panel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from infra.settings import Settings
from read_api.identity import mint_token
from tests.e2e.browser import chromium
from tests.e2e.test_serve import embedded_server
from tests.tokens import SECRET

PLACED = "[data-placed-order-id]"
MOUSE = "550e8400-e29b-41d4-a716-446655440002"
MOUSE_ROW = f'#stock tr[data-product-id="{MOUSE}"]'
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as chrome:
        yield chrome


def test_a_test_order_placed_from_the_dashboard_is_shown_completed_with_its_saga(
    browser: WebDriver, tmp_path: Path,
) -> None:
    with embedded_server(tmp_path, PAYMENT_FAILURE_RATE="0", SHIPPING_FAILURE_RATE="0",
                         NOTIFICATION_FAILURE_RATE="0") as (base, _):
        browser.get(f"{base}/")
        wait = WebDriverWait(browser, 30)
        wait.until(ready.url_to_be(f"{base}/dashboard"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "connection"), "connected"))
        try:
            browser.find_element(By.ID, "place-order").click()
            message = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, PLACED)))
            order_id = message.get_attribute("data-placed-order-id")
            completed = f'tr[data-order-id="{order_id}"][data-status="COMPLETED"]'
            wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, completed)))
            wait.until(ready.presence_of_element_located(
                (By.CSS_SELECTOR, '#detail-saga[data-status="COMPLETED"]')))
            detail = browser.find_element(By.ID, "detail").text
            count = browser.find_element(By.ID, "total").text  # at once: no poll has counted it yet
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert order_id is not None and order_id in detail
    for step in ("payment", "inventory", "shipping", "notification"):
        assert step in detail
    assert "Step Succeeded · payment" in detail
    assert count == "1 order(s)"


def test_in_required_mode_the_dashboard_asks_for_an_operator_token_and_then_works(
    browser: WebDriver, tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, auth_jwt_secret=SECRET)
    customer_token = mint_token(settings, subject=str(uuid4()), scopes=["customer"], ttl=timedelta(hours=1))
    operator_token = mint_token(settings, subject="ops", scopes=["operator"], ttl=timedelta(hours=1))
    with embedded_server(tmp_path, AUTH_JWT_SECRET=SECRET, PAYMENT_FAILURE_RATE="0",
                         SHIPPING_FAILURE_RATE="0", NOTIFICATION_FAILURE_RATE="0") as (base, _):
        browser.get(f"{base}/dashboard")
        wait = WebDriverWait(browser, 30)
        try:
            wait.until(ready.visibility_of_element_located((By.ID, "signin")))
            asked = browser.find_element(By.ID, "signin-reason").text
            live_before = browser.find_element(By.ID, "connection").text
            browser.find_element(By.ID, "token").send_keys(customer_token)
            browser.find_element(By.ID, "use-token").click()
            wait.until(ready.text_to_be_present_in_element((By.ID, "signin-reason"), "may not"))
            browser.find_element(By.ID, "token").send_keys(operator_token)
            browser.find_element(By.ID, "use-token").click()
            wait.until(ready.invisibility_of_element_located((By.ID, "signin")))
            wait.until(ready.text_to_be_present_in_element((By.ID, "connection"), "connected"))
            browser.find_element(By.ID, "place-order").click()
            message = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, PLACED)))
            order_id = message.get_attribute("data-placed-order-id")
            completed = f'tr[data-order-id="{order_id}"][data-status="COMPLETED"]'
            wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, completed)))
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "dashboard-required.png"))
    assert "operator token" in asked
    assert "need an operator token" in live_before or "connecting" in live_before


def test_a_product_restocked_from_the_stock_panel_shows_a_hundred_more_available(
    browser: WebDriver, tmp_path: Path,
) -> None:
    with embedded_server(tmp_path) as (base, _):
        browser.get(f"{base}/dashboard")
        wait = WebDriverWait(browser, 30)
        try:
            row = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, MOUSE_ROW)))
            before = int(row.get_attribute("data-available") or "0")
            row.find_element(By.CSS_SELECTOR, "button[data-restock]").click()
            wait.until(ready.presence_of_element_located(
                (By.CSS_SELECTOR, f'{MOUSE_ROW}[data-available="{before + 100}"]')))
            wait.until(ready.text_to_be_present_in_element((By.ID, "stock-message"), "Restocked"))
            said = browser.find_element(By.ID, "stock-message").text
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "dashboard-stock.png"))
    assert said == f"Restocked Wireless Mouse: +100, {before + 100} available."


def test_in_required_mode_an_operator_is_told_restocking_needs_an_admin_token_and_an_admin_restocks(
    browser: WebDriver, tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, auth_jwt_secret=SECRET)
    operator_token = mint_token(settings, subject="ops", scopes=["operator"], ttl=timedelta(hours=1))
    admin_token = mint_token(settings, subject="boss", scopes=["operator", "admin"], ttl=timedelta(hours=1))
    with embedded_server(tmp_path, AUTH_JWT_SECRET=SECRET) as (base, _):
        browser.get(f"{base}/dashboard")
        wait = WebDriverWait(browser, 30)
        try:
            wait.until(ready.visibility_of_element_located((By.ID, "signin")))
            browser.find_element(By.ID, "token").send_keys(operator_token)
            browser.find_element(By.ID, "use-token").click()
            wait.until(ready.invisibility_of_element_located((By.ID, "signin")))
            row = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, MOUSE_ROW)))
            before = int(row.get_attribute("data-available") or "0")
            browser.find_element(By.ID, "restock-all").click()
            wait.until(ready.text_to_be_present_in_element((By.ID, "stock-message"), "admin token"))
            refused = browser.find_element(By.ID, "stock-message").text
            signin_after_refusal = browser.find_element(By.ID, "signin").is_displayed()
            browser.find_element(By.ID, "use-admin-token").click()
            wait.until(ready.visibility_of_element_located((By.ID, "signin")))
            browser.find_element(By.ID, "token").send_keys(admin_token)
            browser.find_element(By.ID, "use-token").click()
            wait.until(ready.invisibility_of_element_located((By.ID, "signin")))
            wait.until(ready.element_to_be_clickable((By.ID, "restock-all"))).click()
            wait.until(ready.text_to_be_present_in_element((By.ID, "stock-message"), "Restocked"))
            done = browser.find_element(By.ID, "stock-message").text
            after = browser.find_element(By.CSS_SELECTOR, MOUSE_ROW).get_attribute("data-available")
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "dashboard-stock-required.png"))
    assert refused == ("Restocking needs an admin token; this token is not an admin's "
                       "(saga token --admin mints one).")
    assert not signin_after_refusal, "a refused restock is a message, not a plea for another operator token"
    assert done == "Restocked 5 products: +100 each."
    assert after == str(before + 100)
