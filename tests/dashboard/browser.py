"""Headless Chromium through selenium, with the system's chromedriver (never a downloaded one).

Selenium's calls block, so tests run them in a thread (`asyncio.to_thread`) while the local horde
and the worker's output reader keep running on the test's event loop.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
WAIT_S = 60.0


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """A fresh browser (its own profile folder), quit and cleaned up on exit."""
    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    """The visible text of the element with this id."""
    return str(driver.find_element(By.ID, element_id).text)


def wait_until(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object], what: str) -> object:
    """Poll the page until `condition` holds (selenium's explicit wait), naming `what` on timeout."""
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=f"waited for {what}")
