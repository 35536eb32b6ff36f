"""Fixtures for the browser tier: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against dashboards this tier starts on 127.0.0.1.

- ``browser``: a fresh headless Chromium per test module (its own ``--user-data-dir``, no
  background networking, no component updates, no sync); skipped when Chromium, its driver or
  Selenium is missing, which ``CI=true`` turns into a failure (tests/conftest.py).
- ``wait_until(predicate, timeout, what)``: poll until true (tests never assert on timing; a
  timeout is a failure that names what did not happen).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1400,1000")


def _binary(preferred: Path, *names: str) -> str | None:
    if preferred.exists():
        return str(preferred)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = _binary(CHROMIUM, "chromium", "chromium-browser")
    driver_path = _binary(CHROMEDRIVER, "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs chromium and chromium-driver (scripts/install.sh system)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until_true(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # the page is still being built: an element may not exist yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture()
def wait_until() -> Callable[[Callable[[], Any], float, str], Any]:
    return wait_until_true
