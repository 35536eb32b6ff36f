"""The dashboard in a real browser, on a live netns run of a shipped exercise.

One run for the module (``testbed run EXERCISE --ui`` as a person starts it): the defender's page
shows the hosts, holds no ground truth while the exercise runs, and a click on quarantine lands
in the run's ``actions.jsonl`` (and comes back pushed to the page); then the run is stopped with
Ctrl-C and replayed with the time slider, in both views.

``TESTBED_UI_SCREENSHOT=PATH`` also saves the live defender's view there (docs/ui.png is made so).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXERCISE = REPO / "scenarios" / "exercises" / "segment-the-flat-network.yaml"
TARGET = "pc-5"  # a workstation: the test's defender quarantines it from the page
URL_LINE = re.compile(r"Dashboard: (http://127\.0\.0\.1:\d+)(/\S*)\?token=(\S+)")

Wait = Callable[[Callable[[], Any], float, str], Any]


@dataclass
class LiveRun:
    process: subprocess.Popen[str]
    state_dir: Path
    out: Path
    base: str
    path: str
    token: str

    @property
    def url(self) -> str:
        return f"{self.base}{self.path}?token={self.token}"

    def api(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path,
                                         headers={"X-Testbed-Token": self.token})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def actions(self) -> list[dict[str, Any]]:
        """The live run's action log (in its state directory)."""
        found = []
        for path in self.state_dir.glob("*/actions.jsonl"):
            found += [json.loads(line) for line in path.read_text().splitlines() if line]
        return found

    def stop(self) -> int:
        """Ctrl-C, as a person would; returns the exit status (130: interrupted, cleaned up)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    if os.geteuid() != 0:
        pytest.skip("a live netns run needs root")
    base_dir = tmp_path_factory.mktemp("dashboard")
    state_dir, out = base_dir / "state", base_dir / "runs" / "live-exercise"
    state_dir.mkdir()
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", str(EXERCISE), "--duration", "60", "--no-live",
         "--out", str(out), "--ui", "--ui-port", "0", "--no-browser"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = URL_LINE.search(first)
        assert match, f"no dashboard URL in the first line: {first!r}"
        run = LiveRun(process=process, state_dir=state_dir, out=out, base=match.group(1),
                      path=match.group(2), token=match.group(3))
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _host_tiles(browser: Any) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    return {tile.get_attribute("data-host"): tile
            for tile in browser.find_elements(By.CSS_SELECTOR, "#topology .host")}


def test_defender_quarantines_a_host_from_the_page_of_a_live_exercise(
        browser: Any, live_run: LiveRun, wait_until: Wait) -> None:
    from selenium.webdriver.common.by import By

    assert live_run.base.startswith("http://127.0.0.1:")  # loopback by default
    browser.get(live_run.url)
    assert "token=" not in browser.current_url  # moved into a cookie, out of the address bar
    tiles = wait_until(lambda: _host_tiles(browser), 60, "the hosts on the page")
    assert {"lobby-printer", "finance-db", TARGET} <= set(tiles)
    wait_until(lambda: browser.find_element(By.ID, "phase").text == "running", 90,
               "the run to be running")

    # The defender's page holds no ground truth while the exercise runs.
    status, closed = live_run.api(f"/api/runs/{live_run.out.name}/truth")
    assert status == 403 and "after the run" in closed["error"]
    assert browser.find_elements(By.CSS_SELECTOR, "#topology .host.infected") == []
    assert not browser.find_element(By.ID, "other-view").is_displayed()

    # Select the host, click quarantine: the action is logged like `testbed quarantine`.
    # The page redraws tiles and the action log as events arrive, so an element found a moment
    # ago may be gone: every read below looks it up again, inside a wait that retries.
    wait_until(lambda: _host_tiles(browser)[TARGET].click() is None, 10, "a click on the host")
    button = browser.find_element(By.ID, "act-quarantine")
    wait_until(button.is_enabled, 10, "the quarantine button to be enabled")
    button.click()
    logged = wait_until(lambda: [a for a in live_run.actions()
                                 if a["action"] == "quarantine" and a["target"] == TARGET], 30,
                        "the quarantine in actions.jsonl")
    assert logged[0]["ok"] is True and "manual" in logged[0]["cause"]
    # ... and it comes back to the page, pushed
    wait_until(lambda: "quarantined" in (_host_tiles(browser)[TARGET].get_attribute("class")
                                         or ""), 10, "the host shown as quarantined")
    wait_until(lambda: "quarantine" in browser.find_elements(
        By.CSS_SELECTOR, f'#action-log tr[data-target="{TARGET}"]')[0].text, 10,
        "the quarantine in the action log")
    assert browser.find_elements(By.CSS_SELECTOR, "#topology .host.infected") == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)")
    assert any(url.endswith("/topology") for url in fetched)  # (open streams are not listed)
    assert not [url for url in fetched if "/truth" in url or "view=truth" in url]
    if os.environ.get("TESTBED_UI_SCREENSHOT"):
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr"), 40,
                   "alerts for the screenshot")
        browser.save_screenshot(os.environ["TESTBED_UI_SCREENSHOT"])


def test_the_stopped_run_replays_with_a_slider_in_both_views(
        browser: Any, live_run: LiveRun, wait_until: Wait) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    assert live_run.stop() == 130
    assert (live_run.out / "results.json").is_file()
    actions = [json.loads(line) for line in
               (live_run.out / "actions.jsonl").read_text().splitlines() if line]
    assert [(a["action"], a["target"]) for a in actions] == [("quarantine", TARGET)]
    # the runner is gone: the dashboard it served went with it; serve the folder again
    from testbed.ui.server import DashboardServer

    with DashboardServer(live_run.out.parent, port=0) as server:
        browser.get(server.url(f"/runs/{live_run.out.name}/truth"))
        wait_until(lambda: browser.find_element(By.ID, "phase").text == "finished", 20,
                   "the finished run")
        slider = browser.find_element(By.ID, "slider")
        assert slider.is_displayed()
        wait_until(lambda: browser.find_element(By.ID, "truth-panel").is_displayed(), 20,
                   "the truth view of a finished run")
        end = float(slider.get_attribute("max"))
        assert end > 0
        wait_until(lambda: "quarantined" in (_host_tiles(browser)[TARGET].get_attribute("class")
                                             or ""), 10, "the quarantine at the end")
        slider.send_keys(Keys.HOME)  # back to t0: nothing was quarantined yet
        wait_until(lambda: "quarantined" not in (
            _host_tiles(browser)[TARGET].get_attribute("class") or ""), 10,
            "the replay at t0 without the quarantine")
        assert browser.find_element(By.ID, "clock").text in ("0.0", "0")
        status, truth = (200, None)
        request = urllib.request.Request(
            f"{server.base_url}/api/runs/{live_run.out.name}/truth?at=0",
            headers={"X-Testbed-Token": server.token})
        with urllib.request.urlopen(request, timeout=10) as response:
            status, truth = response.status, json.loads(response.read())
        assert status == 200 and truth["debrief"]["title"].startswith("Segment")
