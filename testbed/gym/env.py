"""``testbed/Defend-v0``: a Gymnasium environment in which a learning defender contains a worm
on the simulation backend.

Owns: ``DefendEnv`` -- one step is one decision interval of virtual time (default 1 s): the
per-host actions (``testbed.gym.observation.ACTIONS``; masked ones are no-ops) are carried out
at the start of the interval, the simulation runs to its end, and the observation
(``testbed.gym.observation``) and reward (``testbed.gym.reward``) follow. Terminates when a
scenario stop rule ends the run (contained, all infected, ...); truncates at the duration.
Episodes are reproducible: ``reset(seed=s)`` draws the simulation seed from the env's seeded
generator; ``reset(options={"sim_seed": n})`` runs the scenario's seed ``n`` exactly.
``contact_features=False`` keeps the first-contact columns at zero, as a policy responder in an
emulated run sees them (it receives alerts only): train so for sim-to-real parity.
``patient_zeros=(host, ...)`` draws each episode's patient zero among those hosts (from the
env's seeded generator), so a learner cannot memorise the scenario's one launch pad;
``plausible_patient_zeros`` lists the low-value hosts a worm plausibly starts from and
``split_patient_zeros`` sets some of them aside for held-out evaluation.
``stop_when=(...)`` replaces the scenario's stop rules (``()``: run every episode to its
duration): every episode then shows the policy the whole outbreak, not only its first
containment (a stop rule ends the run only if it still holds ``grace_s`` after it began to).
Must not: put ground truth into the observation or the ``info`` the policy could read as input
(``info`` carries reward terms for logging only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from detectors.base import SensorContext
from testbed.errors import Diagnostic, InputError
from testbed.gym.observation import ACTIONS, FEATURE_CEILING, ObservationBuilder
from testbed.gym.policies import containment_calls
from testbed.gym.reward import RewardModel
from testbed.gym.stepping import SteppedRun
from testbed.model.load_scenario import Scenario, load_scenario
from testbed.model.spec import Tier
from testbed.model.topology import Topology
from testbed.sim.timing import Timing, load_timing

__all__ = ["DefendEnv", "plausible_patient_zeros", "require_patient_zero", "scenario_of",
           "split_patient_zeros", "with_patient_zero", "with_stop_rules"]

_SEED_BOUND = 2**31 - 1
_LOW_VALUE_TIERS = (Tier.LAUNCH_PAD, Tier.WORKSTATION)


def scenario_of(scenario: str | Path | Scenario) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))


def plausible_patient_zeros(topology: Topology) -> tuple[str, ...]:
    """Hosts a worm plausibly starts from: the low-value tiers (launch pads, workstations), in
    the topology's order."""
    return tuple(name for name, host in topology.hosts.items() if host.tier in _LOW_VALUE_TIERS)


def split_patient_zeros(candidates: Sequence[str], *, every: int = 4
                        ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training, held out): every ``every``-th candidate from the third on is held out, so
    both launch pads and workstations land on each side of a list in topology order."""
    held_out = tuple(candidates[2::every])
    return tuple(c for c in candidates if c not in held_out), held_out


def with_stop_rules(scenario: Scenario, when: Sequence[str]) -> Scenario:
    """``scenario`` with other stop rules (``StopSpec.when``; validated as in a file)."""
    stop = scenario.spec.stop.model_validate({**scenario.spec.stop.model_dump(),
                                              "when": list(when)})
    return replace(scenario, spec=scenario.spec.model_copy(update={"stop": stop}))


def require_patient_zero(scenario: Scenario, host: str) -> None:
    """``InputError`` unless ``host`` is a host of the scenario's topology."""
    if host not in scenario.topology.hosts:
        raise InputError(Diagnostic(str(scenario.path), 0, 0,
                                    f"patient zero {host!r} is not a host of topology "
                                    f"{scenario.topology.name!r}", "worm.patient_zero"))


def with_patient_zero(scenario: Scenario, host: str) -> Scenario:
    """``scenario`` with the worm starting from ``host`` instead (everything else equal)."""
    require_patient_zero(scenario, host)
    worm = scenario.spec.worm.model_copy(update={"patient_zero": [host]})
    return replace(scenario, spec=scenario.spec.model_copy(update={"worm": worm}))


class DefendEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """See the module docstring. ``action``: one index of ``ACTIONS`` per host, in
    ``layout.hosts`` order; ``observation``: ``{"observation": hosts*columns float32,
    "mask": hosts*4 int8}``."""

    metadata = {"render_modes": []}

    def __init__(self, scenario: str | Path | Scenario = "scenarios/smb-flat.yaml", *,
                 decision_interval_s: float = 1.0, duration_s: float | None = None,
                 cutoff_cost: float = 0.5, action_cost: float = 0.1, alert_decay: float = 0.5,
                 contact_features: bool = True, timing: Timing | None = None,
                 patient_zeros: Sequence[str] | None = None,
                 stop_when: Sequence[str] | None = None) -> None:
        self.scenario = scenario_of(scenario)
        if stop_when is not None:
            self.scenario = with_stop_rules(self.scenario, stop_when)
        self.patient_zeros = tuple(patient_zeros or ())
        self._variants = {host: with_patient_zero(self.scenario, host)
                          for host in self.patient_zeros}
        self.interval = float(decision_interval_s)
        self.duration = float(duration_s if duration_s is not None
                              else self.scenario.spec.duration_s)
        self.timing = timing or load_timing()
        topology = self.scenario.topology
        self.detectors = tuple(d.name for d in self.scenario.spec.detectors)
        self._sensor_context = SensorContext.from_topology(topology)  # every episode's
        self.builder = ObservationBuilder(topology, self.detectors, decay=alert_decay,
                                          contacts=contact_features)
        self.layout = self.builder.layout
        self.rewards = RewardModel(topology, cutoff_cost=cutoff_cost, action_cost=action_cost)
        count, width = len(self.layout.hosts), self.layout.width
        self.observation_space = spaces.Dict({  # type: ignore[assignment]
            "observation": spaces.Box(0.0, FEATURE_CEILING, (count * width,), np.float32),
            "mask": spaces.Box(0, 1, (count * len(ACTIONS),), np.int8)})
        self.action_space = spaces.MultiDiscrete(np.full(count, len(ACTIONS), np.int64))
        self.run: SteppedRun | None = None
        self.sim_seed: int | None = None
        self.patient_zero: tuple[str, ...] = tuple(self.scenario.patient_zero())

    # ---- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray],
                                                               dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        sim_seed = options.get("sim_seed")
        self.sim_seed = (int(sim_seed) if sim_seed is not None
                         else int(self.np_random.integers(_SEED_BOUND)))
        scenario = self._episode_scenario(options.get("patient_zero"))
        self.patient_zero = tuple(scenario.patient_zero())
        self.run = SteppedRun(scenario, seed=self.sim_seed, timing=self.timing,
                              sensor_context=self._sensor_context)
        self.builder.reset()
        self.rewards.reset()
        self._fold(self.run.advance(0.0))
        return self._observation(), {"sim_seed": self.sim_seed, "time": 0.0}

    def _episode_scenario(self, patient_zero: str | None) -> Scenario:
        """The scenario of this episode: the one given, or its variant starting from the
        patient zero of ``options`` or drawn from ``patient_zeros``."""
        if patient_zero is None and self.patient_zeros:
            patient_zero = self.patient_zeros[int(self.np_random.integers(
                len(self.patient_zeros)))]
        if patient_zero is None:
            return self.scenario
        variant = self._variants.get(patient_zero)
        if variant is None:
            variant = self._variants[patient_zero] = with_patient_zero(self.scenario,
                                                                       patient_zero)
        return variant

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool,
                                                dict[str, Any]]:
        if self.run is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        run = self.run
        acted = self.apply(np.asarray(action).reshape(-1))
        start = run.now
        until = min(self.duration, start + self.interval)
        self._fold(run.advance(until))
        step = self.rewards.step(run.infected(), run.containment, acted, run.now - start)
        terminated = run.stopped
        truncated = not terminated and run.now >= self.duration - 1e-9
        info: dict[str, Any] = {"time": run.now, "value_lost": step.value_lost,
                "benign_cut_off": step.benign_cut_off, "actions": acted,
                "infected_total": step.infected_total}
        if terminated:
            info["stop_reason"] = run.stop_reason
        return self._observation(), step.reward, terminated, truncated, info

    # ---- pieces ----------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Per host and action, whether it is meaningful now (sb3-contrib's MaskablePPO reads
        this method)."""
        return self.builder.mask().astype(bool)

    def apply(self, action: np.ndarray) -> int:
        """Carry out the unmasked actions; returns how many hosts were acted on."""
        assert self.run is not None
        calls = containment_calls(action, self.builder.mask(), self.layout.hosts,
                                  self.run.containment)
        self.run.act_many(calls, {"policy": "gym"})
        return len({host for _, host in calls})

    def _fold(self, feed: Any) -> None:
        self.builder.fold(feed.alerts, feed.events, feed.containment)

    def _observation(self) -> dict[str, np.ndarray]:
        features, mask = self.builder.observe()
        return {"observation": features.reshape(-1), "mask": mask.reshape(-1)}
