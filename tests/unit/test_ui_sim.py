"""A simulated run played at human pace through the dashboard's API (``testbed.sim.paced``):
pause stops virtual time, x10 plays faster than x1, an action from the page lands in the
simulation at the current virtual time and changes the outcome, and the finished run directory
is complete and scored like any simulated run.

The run plays in a thread of this process (the dashboard finds it, as it finds a live run of
another process, through the heartbeat in the state directory)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette 1.x announces httpx2; httpx still drives it
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from testbed.detection import load_scenario
from testbed.errors import TestbedError
from testbed.sim.paced import simulate_paced
from testbed.sim.pacing import PacedClock, start_pace
from testbed.sim.run import SimulatedRun, simulate
from testbed.ui.server import TOKEN_HEADER, create_app

REPO = Path(__file__).resolve().parents[2]
EXERCISE = REPO / "scenarios" / "exercises" / "segment-the-flat-network.yaml"
TOKEN = "paced-sim-token"
DURATION_S = 40.0  # the worm starts at 20 s; unchecked, it has infected a second host by ~32 s
HEADERS = {TOKEN_HEADER: TOKEN}


@pytest.fixture()
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(root))
    return root


def _wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def paced_run(tmp_path: Path, state_root: Path) -> Iterator[dict[str, Any]]:
    """A paced run of the exercise started paused, in a thread; joined at the end."""
    scenario = load_scenario(EXERCISE)
    runs_dir = tmp_path / "runs"
    out = runs_dir / "paced"
    played: dict[str, Any] = {"out": out, "runs_dir": runs_dir, "scenario": scenario}

    def play() -> None:
        try:
            played["run"] = simulate_paced(scenario, out_dir=out, duration=DURATION_S, rate=0)
        except BaseException as err:  # reported by the test
            played["error"] = err

    thread = threading.Thread(target=play, name="paced-sim", daemon=True)
    thread.start()
    played["thread"] = thread
    yield played
    if thread.is_alive():  # a failed test: let the run end quickly
        for state_dir in state_root.glob("*"):
            PacedClock(state_dir).set_rate(1000)
        thread.join(timeout=20)


def _playback(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/runs/paced/playback", headers=HEADERS)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _set_rate(client: TestClient, rate: float) -> None:
    response = client.post("/api/runs/paced/playback", json={"rate": rate}, headers=HEADERS)
    assert response.status_code == 200, response.text


def _advance(client: TestClient, rate: float) -> float:
    """Virtual seconds played per wall second at ``rate`` (measured over a short sleep)."""
    _set_rate(client, rate)
    first, first_wall = _playback(client)["now_s"], time.monotonic()
    time.sleep(0.15)
    second, second_wall = _playback(client)["now_s"], time.monotonic()
    return float(second - first) / (second_wall - first_wall)


def test_a_paced_sim_run_is_played_paused_and_defended_from_the_page(
        paced_run: dict[str, Any], state_root: Path,
        check_run_directory: Callable[[Path], dict[str, Any]]) -> None:
    client = TestClient(create_app(paced_run["runs_dir"], TOKEN),
                        base_url="http://127.0.0.1:8765")
    scenario = paced_run["scenario"]
    patient_zero = scenario.patient_zero()[0]

    # The dashboard finds the live run through its heartbeat; its clock is controllable.
    def live_playback() -> dict[str, Any] | None:
        response = client.get("/api/runs/paced/playback", headers=HEADERS)
        if response.status_code != 200 or not response.json()["controllable"]:
            return None
        return dict(response.json())

    state = _wait_for(live_playback, "the live paced run")
    assert state["rate"] == 0.0
    defender = client.get("/api/runs/paced/defender", headers=HEADERS).json()
    assert defender["live"] is True and defender["playback_rate"] == 0.0

    # Paused: virtual time stands still.
    paused_at = _playback(client)["now_s"]
    time.sleep(0.2)
    assert _playback(client)["now_s"] == paused_at

    # x10 plays faster than x1 (about ten times).
    assert _advance(client, 10) > 3 * _advance(client, 1)

    # Quarantine patient zero while paused, before the worm wakes (start_s 20): the action is
    # logged at the current virtual time, with the page's cause.
    _set_rate(client, 0)
    action_at = _playback(client)["now_s"]
    assert action_at < 20.0
    response = client.post("/api/runs/paced/actions", headers=HEADERS,
                           json={"kind": "quarantine", "target": patient_zero,
                                 "user": "trainee"})
    assert response.status_code == 200, response.text
    record = response.json()["record"]
    assert record["mono"] == pytest.approx(action_at, abs=1e-6)
    assert record["cause"] == {"manual": "trainee"} and record["ok"] is True
    defender = client.get("/api/runs/paced/defender", headers=HEADERS).json()
    assert any(action["target"] == patient_zero for action in defender["actions"])
    # A live exercise: the truth view stays closed (the wall holds for simulated runs too).
    assert defender["truth_open"] is False
    assert client.get("/api/runs/paced/truth", headers=HEADERS).status_code == 403

    # An unknown host is refused before it reaches the simulation.
    refused = client.post("/api/runs/paced/actions", headers=HEADERS,
                          json={"kind": "quarantine", "target": "no-such-host"})
    assert refused.status_code == 400

    # Play it out fast; the finished run directory is complete and scored.
    _set_rate(client, 200)
    paced_run["thread"].join(timeout=30)
    assert "error" not in paced_run, paced_run.get("error")
    run: SimulatedRun = paced_run["run"]
    out: Path = paced_run["out"]
    results = check_run_directory(out)
    for name in ("events.jsonl", "alerts.jsonl", "actions.jsonl", "sim.json", "results.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "sim" and manifest["clock"] == "virtual"
    assert manifest["state_dir"] is None and manifest["interrupted"] is False
    assert 20.0 < manifest["end_mono"] <= DURATION_S  # a stop rule (contained) may end it early
    assert manifest["stop_reason"] == run.stop_reason == results["run"]["stop_reason"]
    logged = [json.loads(line) for line in
              (out / "actions.jsonl").read_text(encoding="utf-8").splitlines()]
    manual = [entry for entry in logged if entry["cause"] == {"manual": "trainee"}]
    assert len(manual) == 1 and manual[0]["target"] == patient_zero
    assert manual[0]["mono"] == pytest.approx(action_at, abs=1e-6)
    assert manual[0]["wall"] == pytest.approx(manifest["t0_wall"] + action_at, abs=1e-3)

    # The quarantined patient zero is cut off: the worm infects nobody else, whereas the same
    # run without the action (the plain simulation) loses a second host.
    assert results["infected_total"] == 1
    baseline = simulate(scenario, out_dir=out.parent / "unpaced", duration=DURATION_S)
    assert baseline.results.infected_total > 1
    assert run.results.infected_total == 1

    # Finished: served from the run directory with a fixed clock; the state directory is gone.
    finished = _playback(client)
    assert finished["controllable"] is False
    assert not any(state_root.iterdir())
    assert client.post("/api/runs/paced/playback", json={"rate": 1},
                       headers=HEADERS).status_code == 409


def test_the_paced_clock_refuses_rates_out_of_range_and_caps_at_the_end(tmp_path: Path) -> None:
    start_pace(tmp_path, rate=1000, end_s=2.0)
    clock = PacedClock(tmp_path)
    _wait_for(lambda: clock.now_s() == 2.0, "the end of a 2 s run played at x1000")
    with pytest.raises(TestbedError):
        clock.set_rate(-1)
    with pytest.raises(TestbedError):
        clock.set_rate(float("nan"))
    clock.set_rate(0)
    assert clock.rate == 0.0 and clock.now_s() == 2.0


def test_a_paced_clock_without_its_file_is_not_started(tmp_path: Path) -> None:
    clock = PacedClock(tmp_path)
    assert clock.now_s() is None
    with pytest.raises(TestbedError):
        clock.set_rate(1)
