"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, with the
few moves the viewer's tests make: open a page, log in, read the error banner, wait."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CROPAI_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CROPAI_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# On CI a missing browser fails the viewer's tests instead of skipping them (see .ci/run).
REQUIRE_BROWSER = os.environ.get("CROPAI_REQUIRE_BROWSER") == "1"
# Screenshots and the browser's console log land here (CI keeps the folder).
ARTIFACTS = Path(os.environ.get("CROPAI_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
WAIT_S = 30


class Browser:
    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.by = By

    def open(self, hash_path: str) -> None:
        self.driver.get(f"{self.base_url}/app/{hash_path}")

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def wait(self, condition: Callable[[], Any], timeout_s: float = WAIT_S, message: str = "") -> Any:
        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.2).until(
            lambda _: condition(), message or "the page did not get there; the error banner says: " + self.error()
        )

    def visible(self, css: str) -> Any:
        return self.wait(lambda: next((e for e in self.find_all(css) if e.is_displayed()), None), message=f"no {css}")

    def error(self) -> str:
        banners = self.find_all("#error")
        return banners[0].text if banners and banners[0].is_displayed() else ""

    def log_in(self, email: str, password: str) -> None:
        self.open("#/login")
        for name, value in (("username", email), ("password", password)):
            field = self.visible(f"#login-form input[name={name}]")
            field.clear()
            field.send_keys(value)
        self.find("#login-form button").click()

    def log_out(self) -> None:
        self.visible("#logout").click()
        self.visible("#login-form")

    def save(self, name: str) -> Path:
        """A screenshot and the console log so far, under ``ARTIFACTS``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.console.json").write_text(json.dumps(self.driver.get_log("browser"), indent=1))
        return ARTIFACTS / f"{name}.png"


@contextmanager
def chromium(base_url: str) -> Iterator[Browser]:
    """A headless Chromium window of 1400 x 900 px, US English (dates are typed month first)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = (
            f"Chromium ({CHROMIUM}) and ChromeDriver ({CHROMEDRIVER}) are needed: "
            "apt-get install chromium chromium-driver"
        )
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        "--lang=en-US",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver, base_url)
    finally:
        driver.quit()
