"""The status page in a real headless browser (Debian's chromium and chromium-driver).

Skipped, saying why, where they are not installed or chromium cannot start (CI installs them:
.ci/run). The screenshot of the page after the run is kept as a test artefact.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _control_helpers import camera_on_cue, free_port
from test_control_server import post_raw, rclient_body

from pco_writer.control import ControlServer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless chromium driven by chromedriver; nothing is downloaded (Selenium offline)."""
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")  # fmt: skip
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium cannot start here: {exc.msg}")
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: Any, css: str) -> str:
    """The element's text, read in one step: the page redraws its parts every second, so an
    element found first may be gone when its text is asked for."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
    return str(driver.execute_script(script, css)).strip()


def number_in(driver: Any, css: str) -> int:
    text = text_of(driver, css).replace(",", "")
    return int(text) if text.isdigit() else -1


def test_the_page_shows_a_run_advancing_its_preview_and_how_it_ended(
    server: ControlServer,
    http: httpx.Client,
    browser: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)
    browser.get(f"{server.url}/")
    assert browser.title == "pco-writer"
    wait.until(lambda d: "writers running" in text_of(d, "#server-health"))
    port = free_port()
    with camera_on_cue(frames=80, fps=40) as (address, go):
        assert post_raw(http, rclient_body(address, port, n_frames="80"))["success"]
        card = f'.camera[data-camera="{address}"]'
        wait.until(lambda d: text_of(d, f"{card} .current .status") in ("receiving", "starting"))
        go()  # 2 s of frames
        first = wait.until(lambda d: (n := number_in(d, f"{card} .written")) > 0 and n)
        wait.until(lambda d: number_in(d, f"{card} .written") > first)  # it advances by itself
        assert text_of(browser, f"{card} .requested") == "80"
        shows_a_picture = (
            "const img = document.querySelector(arguments[0]);"
            "return img && img.complete && img.naturalWidth > 0;"
        )
        wait.until(lambda d: d.execute_script(shows_a_picture, f"{card} .preview img"))
        shown = number_in(browser, f"{card} .preview .frame-id")
        assert 1000 <= shown < 1080
        screenshots = [tmp_path / "status-page-running.png", tmp_path / "status-page-ended.png"]
        assert browser.save_screenshot(str(screenshots[0]))
        wait.until(lambda d: text_of(d, f"{card} .runs .end-reason") == "completed")
    assert text_of(browser, f"{card} .current") == "No acquisition running."
    wait.until(lambda d: number_in(d, f"{card} .preview .frame-id") == 1079)  # the last frame
    width = browser.execute_script(
        "return document.querySelector(arguments[0]).naturalWidth;", f"{card} .preview img"
    )
    assert width == 48  # the test camera's frames are 32 x 48: shown whole
    assert browser.save_screenshot(str(screenshots[1]))
    with capsys.disabled():
        print(f"\nstatus page screenshots: {' '.join(map(str, screenshots))}")
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "404" not in entry["message"]]  # fmt: skip
    assert errors == [], errors
