"""A simulated run played against the wall clock, so that a person defends it at human pace
(``testbed run SCENARIO --backend sim --ui``).

Owns: :func:`simulate_paced` -- the engine's ``Simulation.run`` (same set-up, detectors,
responder, ground truth, end and action-wall rewrite) with its event loop advanced in steps
(``run_until``) to the virtual time of the run's :class:`testbed.sim.pacing.PacedClock`
(x1 by default; the dashboard plays x10 or pauses it), and, between steps, the defender's
actions from the page carried out at the current virtual time (``execute_action`` on the
simulator's ``SimDeployment``, logged to ``actions.jsonl`` with cause ``{"manual": user}``,
landing through ``schedule_actions`` like the responder's). While it goes, the run's records
are written where the dashboard reads a live run: the state directory ``state_root()/RUN``
with the runner's ``manifest.json`` and ``runner.json`` heartbeat (``testbed.runner.outputs``).
At the end they are copied into the run directory, which is then completed and scored as
``testbed.sim.run.simulate`` completes it; the state directory is removed.

Must not: re-implement the engine's loop or the scorer, or read the wall clock for anything but
pacing and ``wall`` fields.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from testbed.actions import Action, ActionLog, execute_action
from testbed.backends.base import state_root
from testbed.backends.ledger import pid_alive
from testbed.errors import RunError, TestbedError
from testbed.files import write_json_atomically
from testbed.model.load_scenario import Scenario
from testbed.runner.outputs import (
    RunnerState,
    read_runner_state,
    write_runner_state,
)
from testbed.sim.engine import SimDeployment, Simulation
from testbed.sim.pacing import PacedClock, PendingRequest, pending_requests, start_pace
from testbed.sim.run import SimulatedRun, claim_run_directory, complete_run_directory, sim_manifest
from testbed.sim.timing import Timing, load_timing

__all__ = ["PACE_STEP_S", "simulate_paced"]

PACE_STEP_S = 0.05  # wall seconds between two steps: actions and the clock show within this
HEARTBEAT_EVERY_S = 1.0  # as the runner's (testbed.ui.sources.HEARTBEAT_STALE_S is 10 s)
RECORD_FILES = ("events.jsonl", "alerts.jsonl", "actions.jsonl")


class _PacedSimulation(Simulation):
    """``Simulation.run`` with its loop played in steps of the paced clock (fast path off)."""

    def __init__(self, *args: Any, state_dir: Path, out_dir: Path, **kwargs: Any) -> None:
        super().__init__(*args, fast_path=False, **kwargs)
        self.state_dir = state_dir
        self.out_dir = out_dir
        self.clock = PacedClock(state_dir)
        self.deployment = SimDeployment(self.scenario, self.timing)
        self.action_log = ActionLog(state_dir / "actions.jsonl")
        self.interrupted = False
        self._stepping = False
        self._heartbeat_at = 0.0

    def _loop(self) -> float:
        if self._stepping:  # run_until's step: the engine's own loop
            return super()._loop()
        end = self.duration
        events = 0
        self._stepping = True
        try:
            while True:
                target = min(self.clock.now_s() or 0.0, end)
                if target > self.now:
                    stopped = self.run_until(target)
                    events += self.counters["events"]
                    if stopped:
                        break
                # after the step: an action asked for while paused lands at the paused moment
                self._serve_requests()
                self._heartbeat()
                if target >= end:
                    break
                time.sleep(PACE_STEP_S)
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop_reason = "interrupted"
            return self.now
        finally:
            self._stepping = False
            self.counters["events"] = events
        return self.now if self._stopped else end

    def _serve_requests(self) -> None:
        for request in pending_requests(self.state_dir):
            self._carry_out(request)

    def _carry_out(self, request: PendingRequest) -> None:
        """A defender's action from the page, now in virtual time (as ``testbed quarantine``
        would log it on a live network)."""
        try:
            action = Action.model_validate(request.action)
        except ValueError as err:
            request.answer({"error": f"not an action: {err}"})
            return
        try:
            record = execute_action(self.deployment, action,
                                    cause={"manual": request.user or "dashboard"},
                                    log=self.action_log, clock=lambda: self.now)
        except TestbedError as err:
            failed = getattr(err, "action_record", None)
            request.answer({"error": str(err), "record": failed.model_dump(mode="json")
                            if failed is not None else None})
            return
        self.schedule_actions([record])
        request.answer({"record": record.model_dump(mode="json")})

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            self._heartbeat_at = now
            write_runner_state(self.state_dir, RunnerState(
                pid=os.getpid(), out_dir=str(self.out_dir.resolve()), alive_mono=now))


def _claim_state_dir(run_name: str) -> Path:
    state_dir = state_root() / run_name
    if state_dir.is_dir():
        runner = read_runner_state(state_dir)
        if runner is not None and pid_alive(runner.pid):
            raise RunError(f"run {run_name} is already being played (pid {runner.pid})")
        shutil.rmtree(state_dir)  # left by a paced run that was killed
    state_dir.mkdir(parents=True)
    return state_dir


def simulate_paced(scenario: Scenario, seed: int | None = None, out_dir: Path | None = None,
                   duration: float | None = None, *, rate: float = 1.0,
                   timing: Timing | None = None) -> SimulatedRun:
    """Simulate ``scenario`` at ``rate`` times the wall clock (0: start paused), taking the
    defender's actions from the dashboard, then score it and complete its run directory.

    Raises ``RunError`` when the directory already holds results or the run is being played."""
    spec = scenario.spec
    seed = spec.seed if seed is None else seed
    duration = float(spec.duration_s if duration is None else duration)
    timing = timing or load_timing()
    run_dir, run_name, _ = claim_run_directory(scenario, seed, out_dir, mode="paced")
    state_dir = _claim_state_dir(run_name)
    wall_base = time.time()
    started = time.perf_counter()
    try:
        simulation = _PacedSimulation(scenario, seed=seed, timing=timing, run_dir=state_dir,
                                      duration=duration, wall_base=wall_base,
                                      run_name=run_name, state_dir=state_dir, out_dir=run_dir)
        manifest = sim_manifest(scenario, run_name=run_name, seed=seed, duration=duration,
                                wall_base=wall_base, state_dir=state_dir)
        write_json_atomically(state_dir / "manifest.json", manifest.model_dump(mode="json"))
        start_pace(state_dir, rate=rate, end_s=duration)
        simulation._heartbeat()
        outcome = simulation.run()
        simulation.clock.stop(outcome.end)
        simulate_s = time.perf_counter() - started
        for name in RECORD_FILES:
            shutil.copyfile(state_dir / name, run_dir / name)
        return complete_run_directory(run_dir, scenario, manifest, outcome=outcome,
                                      simulation=simulation, timing=timing,
                                      simulate_s=simulate_s, started=started,
                                      interrupted=simulation.interrupted, mode="paced")
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
