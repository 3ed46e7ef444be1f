"""The app in a real browser: a Streamlit server on a free loopback port, headless Chromium.

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) and the
selenium package; skips with the reason when one is missing.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from leaderboard.launch import build_command

pytestmark = pytest.mark.browser
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
WINDOW = (1600, 1100)
SERVER_START_S = 90
RENDER_S = 90


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(db: Path, log_path: Path):
    """Start the app (the command `harness leaderboard` runs) and stop it afterwards."""
    port = free_port()
    cmd = build_command(db, port=port, headless=True, address="127.0.0.1")
    env = {**os.environ, "HOME": str(log_path.parent)}   # no writes to the real ~/.streamlit
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"streamlit exited with {proc.returncode}:\n"
                                     + log_path.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("streamlit did not answer its health check:\n"
                                     + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def headless_chromium(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")        # never let Selenium Manager go online
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--user-data-dir={profile_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    try:
        # an exact viewport, so the screenshot's size is known
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, needles: list[str], charts: int = 0, timeout: float = RENDER_S) -> str:
    """Poll the page until its text contains every needle, `charts` Vega charts are drawn and
    Streamlit has stopped running."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    full = ""
    while time.monotonic() < deadline:
        try:
            # the main area only: the sidebar's filter labels must not satisfy a needle
            main = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stMain']")
            text = (main[0].get_attribute("innerText") or "") if main else ""
            grid = " ".join(e.get_attribute("textContent") or "" for e in
                            driver.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']"))
            running = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")
            drawn = driver.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg.marks")
        except StaleElementReferenceException:  # Streamlit re-rendered between find and read
            time.sleep(0.2)
            continue
        full = text + "\n" + grid
        if all(n in full for n in needles) and len(drawn) >= charts and not running:
            return full
        time.sleep(0.5)
    missing = [n for n in needles if n not in full]
    raise AssertionError(f"page never showed {missing}; it showed:\n{full[:4000]}")


def click_tab(driver, label: str, timeout: float = RENDER_S) -> None:
    """Click the tab whose text contains `label`, retrying while Streamlit re-renders the tabs."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        try:
            tab = next(t for t in driver.find_elements(By.CSS_SELECTOR, "[role='tab']") if label in t.text)
            tab.click()
            return
        except (StaleElementReferenceException, StopIteration):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def check_png(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    with Image.open(path) as img:
        assert img.size == size, f"screenshot is {img.size}, expected {size}"
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        # a blank or error page has a handful of colours; a rendered table and text many
        assert colours is None or len(colours) > 50, \
            f"screenshot looks blank ({len(colours)} colours)"


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} "
                    "(apt-get install chromium chromium-driver)")
@pytest.mark.skipif(not CHROMEDRIVER.exists(), reason=f"no chromedriver at {CHROMEDRIVER} "
                    "(apt-get install chromium-driver)")
def test_leaderboard_renders_in_headless_chromium(demo_db, tmp_path):
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("LEADERBOARD_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with streamlit_server(demo_db.path, tmp_path / "streamlit.log") as url, \
            headless_chromium(tmp_path / "profile") as driver:
        driver.get(url)
        # the first rows of the table (sorted by language: Estonian first) and, in the grid's
        # accessible text, a mean score equal to the one computed from the fixture's numbers
        text = wait_for_text(driver, ["Compressed multilingual encoders", "e5s-est-d6v10k",
                                      "multilingual-e5-small (4-bit)", "Download CSV"])
        assert "Traceback" not in text
        seeds = demo_db.scores[("me5-small-est-v20k", "topic", "est_Latn")].values()
        expected = statistics.mean(seeds)
        shown = [float(x) for x in re.findall(r"0\.\d{6,}", text)]
        assert any(abs(x - expected) < 1e-9 for x in shown), (expected, shown[:20])
        shot = shots / "leaderboard.png"
        driver.save_screenshot(str(shot))
        check_png(shot, WINDOW)

        # the other views render too
        for label, needles, n_charts in [
                ("Trade-offs", ["Pareto front", "Latency × score × memory"], 3),
                ("Degradation vs teacher data", ["Spearman rho", "Excluded from the fit"], 1),
                ("Distillation budget", ["compression shape", "Tokens seen"], 1),
                ("Model", ["Non-embedding", "Benchmarks"], 0)]:
            click_tab(driver, label)
            text = wait_for_text(driver, needles, charts=n_charts)
            assert "Traceback" not in text
            name = label.split()[0].lower().replace("-", "")
            driver.save_screenshot(str(shots / f"{name}.png"))
            check_png(shots / f"{name}.png", WINDOW)
