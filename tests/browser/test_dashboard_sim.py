"""The dashboard in a real browser on a simulated run played at human pace (no root needed):
``testbed run EXERCISE --backend sim --ui`` shows pause / x1 / x10 next to the clock, and a click
on x10 (then pause) changes the run's playback rate."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXERCISE = REPO / "scenarios" / "exercises" / "segment-the-flat-network.yaml"
URL_LINE = re.compile(r"Dashboard: (http://127\.0\.0\.1:\d+)(/\S*)\?token=(\S+)")

Wait = Callable[[Callable[[], Any], float, str], Any]


def test_x10_and_pause_from_the_page_of_a_paced_sim_run(
        browser: Any, tmp_path: Path, wait_until: Wait) -> None:
    from selenium.webdriver.common.by import By

    env = {**os.environ, "TESTBED_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", str(EXERCISE), "--backend", "sim",
         "--out", str(tmp_path / "runs" / "paced"), "--ui", "--ui-port", "0", "--no-browser"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = URL_LINE.search(first)
        assert match, f"no dashboard URL in the first line: {first!r}"
        base, path, token = match.groups()

        def rate() -> float | None:
            request = urllib.request.Request(f"{base}/api/runs/paced/playback",
                                             headers={"X-Testbed-Token": token})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read()).get("rate")

        browser.get(f"{base}{path}?token={token}")
        wait_until(lambda: browser.find_element(By.ID, "playback").is_displayed(), 15,
                   "the playback buttons of a live simulated run")
        assert rate() == 1.0  # x1 by default
        browser.find_element(By.ID, "play-x10").click()
        wait_until(lambda: rate() == 10.0, 10, "x10 after the click")
        wait_until(lambda: "active" in (browser.find_element(By.ID, "play-x10")
                                        .get_attribute("class") or ""), 5, "x10 shown active")
        browser.find_element(By.ID, "play-pause").click()
        wait_until(lambda: rate() == 0.0, 10, "paused after the click")
    finally:
        for _ in range(4):  # Ctrl-C ends the run (scored), a second one the debrief's dashboard
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=4)
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is None:
            process.kill()
            process.wait()
