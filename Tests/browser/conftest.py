"""Fixtures for the browser tests: one server with demo data, Chromium sessions through chromedriver."""
import os
import sys

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from harness import ROOT, Server  # noqa: E402

SCREENSHOTS = os.path.join(ROOT, "artifacts", "screenshots")


@pytest.fixture(scope="session")
def server():
    s = Server().start(demo=True)
    yield s
    s.stop()


def chromium(javascript=True, width=1280, height=900):
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture
def browsers():
    """Opens browsers on demand; closes them all after the test."""
    opened = []

    def open_browser(**kwargs):
        driver = chromium(**kwargs)
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()


def login(driver, server, username, tenant="acme", next_path=None):
    driver.get(server.base + "/login" + (f"?next={next_path}" if next_path else ""))
    driver.find_element(By.NAME, "tenant").send_keys(tenant)
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys("demo-password")
    driver.find_element(By.CSS_SELECTOR, "form.login-card button[type=submit]").click()
    WebDriverWait(driver, 10).until(EC.url_contains("/chat"))


def wait(driver, timeout=10):
    # Form posts navigate: an element found just before the new page replaces it is gone a moment later.
    return WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, WebDriverException))


def screenshot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SCREENSHOTS, name + ".png"))
