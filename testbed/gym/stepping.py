"""A simulated run advanced one decision interval at a time, for learning environments.

Owns: :class:`SteppedRun` -- a ``testbed.sim.engine.Simulation`` set up as ``Simulation.run``
sets it up (detectors over the simulated sensor; no file is written: ground truth goes to a
null log, alerts to memory), driven with ``start_stepped`` / ``run_until`` /
``schedule_actions``, and what a security operations centre receives between two steps: the
alerts and the sensor's connection events (:class:`SocFeed`), plus containment actions carried
out through ``testbed.actions.execute_action`` on the simulator's ``SimDeployment``.
Must not: hand ground truth to the observation side. ``SocFeed`` carries only sensor output,
containment state and the topology; ground truth (who is infected) is read only through
:meth:`SteppedRun.infected`, which only ``testbed.gym.reward`` calls.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from detectors.base import Alert, ConnEvent, SensorContext
from testbed.actions import Action, ActionRecord, execute_action
from testbed.detection import DetectorSet
from testbed.errors import TestbedError
from testbed.model.load_scenario import Scenario
from testbed.policy import ContainmentState
from testbed.sim.engine import SimDeployment, Simulation
from testbed.sim.sensor import SimSensor
from testbed.sim.timing import Timing, load_timing

__all__ = ["SocFeed", "SteppedRun"]

_RUN_DIR = Path(tempfile.gettempdir()) / "testbed-gym"  # never written: configs stay in memory


class _NullTruth:
    """Ground truth is not needed as a file while learning; the engine's state holds it."""

    def emit(self, *args: Any, **kwargs: Any) -> None:
        return None


class _AlertBuffer:
    """The engine's alert log, in memory: alerts since the last step."""

    def __init__(self) -> None:
        self.pending: list[Alert] = []

    def write(self, alerts: list[Alert]) -> None:
        self.pending.extend(alerts)


@lru_cache(maxsize=4096)
def _action(kind: str, host: str) -> Action:
    """The (frozen) containment action ``kind`` on ``host``; built once, as a learner repeats
    the same few thousand."""
    if kind in ("block", "unblock"):
        return Action(kind=kind, target=host, destination="any")  # type: ignore[arg-type]
    return Action(kind=kind, target=host)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SocFeed:
    """What the defender receives for one step: nothing else may reach an observation."""

    now: float
    alerts: tuple[Alert, ...]
    events: tuple[ConnEvent, ...]
    containment: ContainmentState


class SteppedRun:
    """One episode of ``scenario`` in virtual time, advanced by ``advance(until)``."""

    def __init__(self, scenario: Scenario, *, seed: int, timing: Timing | None = None,
                 sensor_context: SensorContext | None = None) -> None:
        """``sensor_context``: ``SensorContext.from_topology(scenario.topology)``, which an
        environment that resets often builds once."""
        self.scenario = scenario
        timing = timing or load_timing()
        sim = Simulation(scenario, seed=seed, timing=timing, run_dir=_RUN_DIR,
                         duration=float(scenario.spec.duration_s), wall_base=0.0,
                         run_name=f"gym-{seed}", record_probes=False, fast_path=False,
                         observer=self._observe)
        self.simulation = sim
        self._events: list[ConnEvent] = []
        self._alerts = _AlertBuffer()
        monitored = scenario.monitored_segments()
        if scenario.spec.detectors and monitored:  # as Simulation.run sets them up
            context = sensor_context or SensorContext.from_topology(scenario.topology)
            sim.detectors = DetectorSet.from_specs(scenario.spec.detectors, context, seed=seed)
            want_data = any("data" in d.KINDS for d in sim.detectors.detectors)
            sim.sensor = SimSensor(monitored, want_data=want_data)
            sim.network.sink = sim.sensor.packet
        sim.responder = None  # the learning defender acts instead
        self.deployment = SimDeployment(scenario, timing)
        sim.start_stepped(_NullTruth(), self._alerts)
        self.stopped = False

    def _observe(self, events: list[ConnEvent]) -> None:
        self._events.extend(events)

    @property
    def now(self) -> float:
        return self.simulation.now

    @property
    def containment(self) -> ContainmentState:
        return self.simulation.network.state

    def act(self, kind: str, host: str, cause: dict[str, Any]) -> ActionRecord:
        """Carry out one containment action now; it lands after its enforcement time."""
        return self.act_many([(kind, host)], cause)[0]

    def act_many(self, calls: list[tuple[str, str]], cause: dict[str, Any]
                 ) -> list[ActionRecord]:
        """Carry out several containment actions now, in order (one scheduling pass)."""
        records = []
        for kind, host in calls:
            try:
                records.append(execute_action(self.deployment, _action(kind, host),
                                              cause=cause, clock=self._clock))
            except TestbedError as err:
                records.append(err.action_record)  # type: ignore[attr-defined]
        if records:
            self.simulation.schedule_actions(records)
        return records

    def _clock(self) -> float:
        return self.simulation.now

    def advance(self, until: float) -> SocFeed:
        """Run to virtual time ``until`` (or a stop rule); what the SOC saw meanwhile."""
        if not self.stopped:
            self.stopped = self.simulation.run_until(until)
        feed = SocFeed(self.simulation.now, tuple(self._alerts.pending), tuple(self._events),
                       self.containment)
        self._alerts.pending.clear()
        self._events.clear()
        return feed

    @property
    def stop_reason(self) -> str:
        return self.simulation.stop_reason

    def infected(self) -> dict[str, float]:
        """Ground truth: host -> infection time. For the reward only (``testbed.gym.reward``)."""
        return self.simulation.infected
