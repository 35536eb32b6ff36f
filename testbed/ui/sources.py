"""Where the dashboard's runs come from: the run directories under ``runs/`` and, for a run still
going, its state directory.

Owns: ``RunCatalog`` (every run directory under a folder, addressed by its directory name, and
the live state directory of the ones a runner is still writing, found through the runner's
``runner.json`` heartbeat in ``state_root()``), ``RunSource`` (one run: where its alerts, actions
and manifest are right now, its scenario, and its clock) and ``RunClock`` (how a run's time
advances: a live simulated run's is ``testbed.sim.pacing.PacedClock``, which the page plays at
x1, x10 or pauses).

A live run's records are read from its state directory (the runner appends there); once the
runner collected them, from the run directory. Both hold the same files, so nothing else in the
dashboard cares which.

Must not touch: ground truth (the agents' ``events.jsonl``) and the scorer's records: this module
is on the defender's side of the wall (import contract ``dashboard-truth-view``). It reads the
manifest and the runner's heartbeat as plain JSON for that reason: their typed models live in
``testbed.results`` and ``testbed.runner.outputs``, behind the wall.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from testbed.backends.base import state_root
from testbed.backends.ledger import pid_alive
from testbed.errors import TestbedError
from testbed.model.load_scenario import Scenario, load_scenario
from testbed.records import read_json_lines
from testbed.sim.pacing import PacedClock

__all__ = ["PacedClock", "RealTimeClock", "RunCatalog", "RunClock", "RunFacts", "RunNotServed",
           "RunSource", "StoppedClock"]

MANIFEST_FILE = "manifest.json"
RESULTS_FILE = "results.json"  # its presence marks a finished run (written last)
RUNNER_FILE = "runner.json"
HEARTBEAT_STALE_S = 10.0  # a runner silent this long is gone (it writes about every second)


class RunNotServed(TestbedError):
    """No such run under the dashboard's folder (or not readable as a run)."""


class RunClock(Protocol):
    """How a run's time advances, in seconds since its t0.

    A real run's clock is the machine's (``RealTimeClock``, not controllable: the kernel does
    not wait for anybody). A live simulated run's clock (``PacedClock``) answers ``set_rate``
    (x1, x10, 0 to pause) so that a person can defend a simulated outbreak at human pace; the
    dashboard's ``/api/runs/{run}/playback`` endpoint calls it and refuses clocks that cannot."""

    @property
    def controllable(self) -> bool:
        """Whether ``set_rate`` can change it."""
        ...

    def now_s(self) -> float | None:
        """Seconds since t0 now; None before the outbreak started."""
        ...

    def set_rate(self, rate: float) -> None:
        """Play at ``rate`` times real time (0: paused). Raises ``TestbedError`` if fixed."""
        ...


@dataclass(frozen=True)
class RealTimeClock:
    """A live run's clock: CLOCK_MONOTONIC, which the runner's records use too (system-wide,
    so the dashboard's process and the runner's agree)."""

    t0_mono: float | None
    controllable: bool = False

    def now_s(self) -> float | None:
        return None if self.t0_mono is None else time.monotonic() - self.t0_mono

    def set_rate(self, rate: float) -> None:
        raise TestbedError("this run's clock is real time: only simulated runs can be paused "
                           "or sped up")


@dataclass(frozen=True)
class StoppedClock:
    """A finished run's clock: its end."""

    end_s: float | None
    controllable: bool = False

    def now_s(self) -> float | None:
        return self.end_s

    def set_rate(self, rate: float) -> None:
        raise TestbedError("a finished run is replayed with the time slider")


@dataclass(frozen=True)
class RunFacts:
    """What the dashboard needs of a run's manifest (read as JSON; see the module docstring)."""

    run_name: str | None = None
    scenario: str | None = None
    scenario_path: str | None = None
    backend: str | None = None
    duration_s: float | None = None
    t0_mono: float | None = None
    t0_wall: float | None = None
    end_mono: float | None = None
    automation: bool | None = None
    clock: str | None = None  # "virtual" for a simulated run

    @classmethod
    def read(cls, path: Path) -> RunFacts:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**known)

    def since_t0(self, mono: float | None) -> float | None:
        if mono is None or self.t0_mono is None:
            return None
        return mono - self.t0_mono

    @property
    def end_s(self) -> float | None:
        return self.since_t0(self.end_mono)


@dataclass(frozen=True)
class RunSource:
    """One run as the dashboard sees it at the moment it was looked up."""

    name: str  # its directory name under the catalog's folder
    run_dir: Path
    state_dir: Path | None  # while a runner is writing it
    facts: RunFacts

    @property
    def live(self) -> bool:
        return self.state_dir is not None

    @property
    def finished(self) -> bool:
        return (self.run_dir / RESULTS_FILE).is_file()

    @property
    def record_dir(self) -> Path:
        """Where its alerts and actions are now (the state directory while live)."""
        return self.state_dir if self.state_dir is not None else self.run_dir

    @property
    def alerts_path(self) -> Path:
        return self.record_dir / "alerts.jsonl"

    @property
    def actions_path(self) -> Path:
        return self.record_dir / "actions.jsonl"

    @property
    def hints_path(self) -> Path:
        """Exercise hints revealed so far (the dashboard's own file, in the run directory)."""
        return self.run_dir / "hints.jsonl"

    @property
    def phase(self) -> str:
        if self.finished:
            return "finished"
        if self.live:
            return "running" if self.facts.t0_mono is not None else "deploying"
        return "starting" if not any(self.run_dir.iterdir()) else "stopped"

    @property
    def simulated(self) -> bool:
        return self.facts.clock == "virtual"

    def clock(self) -> RunClock:
        if self.live and self.state_dir is not None and self.simulated:
            return PacedClock(self.state_dir)
        if self.live:
            return RealTimeClock(self.facts.t0_mono)
        return StoppedClock(self.facts.end_s)

    def scenario(self) -> Scenario | None:
        """The run's scenario, loaded from the file the manifest names (None if unknown)."""
        if not self.facts.scenario_path:
            return None
        return _load_scenario_cached(self.facts.scenario_path)


_SCENARIOS: dict[tuple[str, float], Scenario] = {}


def _load_scenario_cached(path: str) -> Scenario | None:
    try:
        stamp = Path(path).stat().st_mtime
    except OSError:
        return None
    key = (path, stamp)
    if key not in _SCENARIOS:
        try:
            _SCENARIOS[key] = load_scenario(path)
        except TestbedError:
            return None
    return _SCENARIOS[key]


class RunCatalog:
    """The runs under ``runs_dir`` (each a directory, addressed by its name)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)

    def names(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted((entry.name for entry in self.runs_dir.iterdir()
                       if entry.is_dir() and not entry.name.startswith(".")), reverse=True)

    def get(self, name: str) -> RunSource:
        """The run called ``name``; ``RunNotServed`` if it is not a run directory here."""
        if name in ("", ".", "..") or "/" in name or name.startswith("."):
            raise RunNotServed(f"no run {name!r}")
        run_dir = self.runs_dir / name
        if not run_dir.is_dir():
            raise RunNotServed(f"no run {name!r} under {self.runs_dir}")
        state_dir = self._live_state_dirs().get(run_dir.resolve())
        if (run_dir / RESULTS_FILE).is_file():
            state_dir = None  # collected and scored: the run directory is complete
        facts = RunFacts.read((state_dir or run_dir) / MANIFEST_FILE)
        return RunSource(name=name, run_dir=run_dir, state_dir=state_dir, facts=facts)

    def runs(self) -> Iterator[RunSource]:
        for name in self.names():
            try:
                yield self.get(name)
            except RunNotServed:
                continue

    def _live_state_dirs(self) -> dict[Path, Path]:
        """Output folder -> state directory, for every run whose runner is alive and watching
        (``runner.json``: pid and heartbeat, see ``testbed.runner.outputs.RunnerState``)."""
        root = state_root()
        found: dict[Path, Path] = {}
        if not root.is_dir():
            return found
        for entry in root.iterdir():
            runner = _read_json(entry / RUNNER_FILE)
            if not runner or not pid_alive(runner.get("pid")):
                continue
            alive = runner.get("alive_mono")
            if isinstance(alive, int | float) and time.monotonic() - alive > HEARTBEAT_STALE_S:
                continue
            out_dir = runner.get("out_dir")
            if isinstance(out_dir, str):
                found[Path(out_dir).resolve()] = entry
        return found


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's records (a torn last line skipped), none if absent."""
    return read_json_lines(path)
