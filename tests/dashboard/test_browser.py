"""The dashboard in a real browser, on the real worker CLI serving the local horde (fake backends).

The page must load through the token link, show figures that change as jobs run and the capability
level claimed with its kudos factor, name the fake backend and the horde's version, show the host's
CPU and memory, show the alchemist's section with its forms done and their kudos (and why caption is
not offered), pause popping (the local horde hands out no more jobs, the page and the status line say
paused) and resume it.
A screenshot is saved under pytest's tmp folder, and in REGEN_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from horde_worker_regen.dashboard.identity import FAKE_BACKEND_LABEL
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.localhorde.workers import SERVER_VERSION
from tests.alchemy.support import png
from tests.dashboard.browser import headless_chromium, text_of, wait_until
from tests.worker_support import WorkerProcess, queue, worker_folder

TOKEN = "a-dashboard-token-for-the-browser-test"
REQUESTS = 60
STEPS = 8
SECONDS_PER_STEP = 0.1  # about a second per job: slow enough to watch the steps advance
IDLE = "slots 0/1 busy, 0 waiting"
FORMS = ["caption", "nsfw", "interrogation", "RealESRGAN_x2plus", "strip_background"]
ALCHEMY_REQUESTS = 3
CHROME_BARS_PX = 150


def _handed_out(horde: RunningLocalHorde) -> int:
    return len(horde.state.generations)


def _int(driver: webdriver.Chrome, element_id: str) -> int:
    text = text_of(driver, element_id)
    return int(text) if text.isdigit() else -1


def _open_and_watch_jobs_run(driver: webdriver.Chrome, url: str) -> int:
    driver.get(f"{url}?token={TOKEN}")
    wait_until(driver, lambda d: text_of(d, "state") == "serving", "the page to show the worker serving")
    assert "token" not in driver.current_url  # the link's token became a cookie, not a lingering address
    wait_until(
        driver,
        lambda d: re.search(rf"\b[1-{STEPS - 1}]/{STEPS}\b", text_of(d, "slots")),
        "a slot to show a step part way through its job",
    )
    assert "CPU" in text_of(driver, "slots")  # the fake backend's child is not pinned to a GPU
    _identity_and_host(driver)
    first = _int(driver, "jobs")
    wait_until(driver, lambda d: _int(d, "jobs") > first, "the jobs count to go up")
    assert float(text_of(driver, "kudos-session").replace(",", "")) > 0
    # The capability level claimed and what the horde pays for it (the fake backend implements level 1).
    assert text_of(driver, "bridge-level") == "1"
    assert text_of(driver, "bridge-note").startswith("×0.90 kudos · the fake backend implements up to level 1")
    _watch_alchemy(driver)
    return _int(driver, "jobs")


def _identity_and_host(driver: webdriver.Chrome) -> None:
    """Under the header: the backend named as the fake it is, the local horde's version; the host's CPU and memory
    (shown whether or not this machine has GPUs to sample)."""
    wait_until(driver, lambda d: f"horde v{SERVER_VERSION}" in text_of(d, "identity"), "the horde's version")
    assert text_of(driver, "identity").startswith(FAKE_BACKEND_LABEL)
    wait_until(
        driver, lambda d: re.fullmatch(r"CPU \d+ % · RAM [\d.,]+ GB / [\d.,]+ GB", text_of(d, "host")), "the host"
    )


def _watch_alchemy(driver: webdriver.Chrome) -> None:
    """The alchemist's section: its name, forms done with their kudos (1 per nsfw, 3 per interrogation)."""
    wait_until(driver, lambda d: _int(d, "alchemy-done") == 2 * ALCHEMY_REQUESTS, "every analysis form to be done")
    assert text_of(driver, "alchemy-name") == "Browser Alchemist"
    assert text_of(driver, "alchemy-offered") == "4 / 5"  # caption is off
    assert float(text_of(driver, "alchemy-kudos")) == 4.0 * ALCHEMY_REQUESTS
    rows = {row.split(" ")[0]: row for row in text_of(driver, "alchemy-forms").splitlines()}
    assert rows["interrogation"].endswith(f"yes 0 {ALCHEMY_REQUESTS} 0 0 {3 * ALCHEMY_REQUESTS:.1f}")
    assert rows["caption"].startswith("caption no: needs alchemy_caption_enabled: true")


def _pause(driver: webdriver.Chrome) -> None:
    driver.find_element(By.ID, "toggle").click()
    wait_until(driver, lambda d: text_of(d, "state") == "paused", "the page to show the worker paused")
    wait_until(
        driver,
        lambda d: "busy" not in text_of(d, "slots") and text_of(d, "queue") == "empty",
        "the jobs in flight to finish",
    )


def _resume_and_watch_jobs_flow(driver: webdriver.Chrome, jobs_when_paused: int, screenshot: Path) -> None:
    assert driver.find_element(By.ID, "toggle").text == "Resume popping"
    driver.find_element(By.ID, "toggle").click()
    wait_until(driver, lambda d: text_of(d, "state") == "serving", "the page to show the worker serving again")
    wait_until(driver, lambda d: _int(d, "jobs") > jobs_when_paused, "jobs to flow again")
    wait_until(
        driver,
        lambda d: re.search(rf"\b[1-{STEPS - 1}]/{STEPS}\b", text_of(d, "slots")),
        "a running job's step, for the screenshot",
    )
    # The whole page in one picture: the window as tall as the page (the browser's own bars aside).
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, int(height) + CHROME_BARS_PX)
    driver.save_screenshot(str(screenshot))


async def _in_browser(call: Callable[[], object]) -> object:
    return await asyncio.to_thread(call)


async def test_the_dashboard_shows_live_figures_and_pauses_and_resumes_popping(tmp_path: Path) -> None:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=10_000_000)
        for index in range(REQUESTS):
            queue(horde, requester, f"dashboard {index}", width=512, height=512, steps=STEPS)
        for _ in range(ALCHEMY_REQUESTS):
            horde.queue_interrogation(requester, ["nsfw", "interrogation"], png(64, 64))
        folder = worker_folder(
            tmp_path,
            horde,
            owner,
            max_threads=1,
            queue_size=1,
            dashboard_token=TOKEN,
            fake_backend={"seconds_per_step": SECONDS_PER_STEP},
            alchemist=True,
            alchemist_name="Browser Alchemist",
            forms=FORMS,
        )
        worker = await WorkerProcess(folder).start()
        try:
            url = (await worker.wait_for_line("Dashboard on ")).split("Dashboard on ")[1].split()[0]
            assert TOKEN not in worker.output
            with headless_chromium() as driver:
                jobs = await _in_browser(lambda: _open_and_watch_jobs_run(driver, url))
                assert isinstance(jobs, int) and jobs > 0
                await _in_browser(lambda: _pause(driver))
                # Paused with the slot and the queue place free while the horde still has work: a popper
                # that still popped would take a job at once. Over two more status lines it takes none.
                line = await worker.wait_for_line(IDLE, after=len(worker.lines))
                assert line.endswith("| PAUSED (not popping)"), line
                handed_out = _handed_out(horde)
                for _ in range(2):
                    await worker.wait_for_line(IDLE, after=len(worker.lines))
                assert _handed_out(horde) == handed_out, "the paused worker popped a job"
                assert handed_out < REQUESTS
                jobs_paused = await _in_browser(lambda: _int(driver, "jobs"))
                assert isinstance(jobs_paused, int)
                screenshot = tmp_path / "dashboard.png"
                await _in_browser(lambda: _resume_and_watch_jobs_flow(driver, jobs_paused, screenshot))
                assert _handed_out(horde) > handed_out
            print(f"dashboard screenshot: {_keep_screenshot(screenshot)}")
            worker.send_signal(signal.SIGINT)
            assert await worker.wait() == 0, worker.output
        finally:
            await worker.kill()


def _keep_screenshot(screenshot: Path) -> Path:
    """The screenshot's final place: REGEN_SCREENSHOT_DIR when set, else where the test saved it."""
    assert screenshot.stat().st_size > 0
    folder = os.environ.get("REGEN_SCREENSHOT_DIR")
    if not folder:
        return screenshot
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(screenshot, Path(folder) / screenshot.name))
