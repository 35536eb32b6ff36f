"""``testbed/Defend-v0``, vectorised: many episodes of one scenario stepped at once in arrays.

Owns: ``DefendVectorEnv``, a ``gymnasium.vector.VectorEnv`` over
``testbed.gym.batched.BatchedOutbreak``, registered as the vector entry point of
``testbed/Defend-v0``::

    envs = gymnasium.make_vec("testbed/Defend-v0", num_envs=256,
                              vectorization_mode="vector_entry_point",
                              scenario="scenarios/smb-flat.yaml")

Each sub-environment is ``DefendEnv``'s: the same single observation and action spaces (the
columns of ``testbed.gym.observation.ObservationLayout``, ``FEATURE_CEILING``, log1p of
counts decayed by ``alert_decay`` per step), the same mask (no-op / quarantine / release /
block; masked choices are no-ops; release lifts a quarantine and a block), the same reward
(``testbed.gym.reward``'s terms: minus the value of the hosts newly infected in the step, minus
``cutoff_cost`` per second per benign host quarantined or blocked, minus ``action_cost`` per
host acted on), terminations on the scenario's stop rules and truncation at the duration. The
episodes are distributed like the exact environment's, not draw-for-draw identical (see
``testbed.gym.batched`` for the domain and the simplifications); a policy trained here is checked
on ``DefendEnv`` and netns as any other.

Autoreset: ``metadata["autoreset_mode"]`` (gymnasium 1.x), ``NEXT_STEP`` by default: the step
after an episode ended resets it (its action is ignored, its reward 0, its info only ``time``).
``SAME_STEP`` resets at once and puts the last observation and info in ``final_obs`` and
``final_info``; ``DISABLED`` leaves it to ``reset(options={"reset_mask": mask})``.
``infos`` follow gymnasium's vector convention: a dict of arrays, each with a ``_key`` mask.
Seeding: ``reset(seed=s)`` seeds one generator for the whole batch; the same seed and actions
give the same episodes.

Must not: build an observation or a mask from ground truth. They come from
``BatchedOutbreak.sensor`` (contact outcomes and alerts) and ``.containment`` only
(:meth:`DefendVectorEnv._observe`); ``.truth`` is read by the reward alone (:meth:`_reward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from testbed.gym.batched import STOP_REASONS, BatchedOutbreak
from testbed.gym.env import require_patient_zero, scenario_of, with_stop_rules
from testbed.gym.observation import (
    ACTIONS,
    BLOCK,
    FEATURE_CEILING,
    QUARANTINE,
    RELEASE,
    ObservationBuilder,
    action_mask,
    assemble_features,
)
from testbed.model.load_scenario import Scenario
from testbed.sim.timing import Timing, load_timing

__all__ = ["DefendVectorEnv"]

_STEP_KEYS = ("value_lost", "benign_cut_off", "actions", "infected_total", "stop_reason")


class DefendVectorEnv(VectorEnv[Any, Any, Any]):  # type: ignore[misc]
    """See the module docstring. ``actions``: (num_envs, hosts) indices of ``ACTIONS``."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, scenario: str | Path | Scenario = "scenarios/smb-flat.yaml", *,
                 num_envs: int = 8, decision_interval_s: float = 1.0,
                 duration_s: float | None = None, cutoff_cost: float = 0.5,
                 action_cost: float = 0.1, alert_decay: float = 0.5,
                 contact_features: bool = True, timing: Timing | None = None,
                 patient_zeros: Sequence[str] | None = None,
                 stop_when: Sequence[str] | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 render_mode: str | None = None) -> None:
        self.scenario = scenario_of(scenario)
        if stop_when is not None:
            self.scenario = with_stop_rules(self.scenario, stop_when)
        self.num_envs = int(num_envs)
        self.interval = float(decision_interval_s)
        self.duration = float(duration_s if duration_s is not None
                              else self.scenario.spec.duration_s)
        self.cutoff_cost, self.action_cost = float(cutoff_cost), float(action_cost)
        self.decay = float(alert_decay)
        self.contact_features = bool(contact_features)
        self.render_mode = render_mode
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.timing = timing or load_timing()
        topology = self.scenario.topology
        self.engine = BatchedOutbreak(self.scenario, self.num_envs, timing=self.timing,
                                      duration=self.duration)
        detectors = tuple(d.name for d in self.scenario.spec.detectors)
        builder = ObservationBuilder(topology, detectors, decay=alert_decay,
                                     contacts=contact_features)
        self.layout = builder.layout
        assert self.layout.hosts == tuple(self.engine.names)
        self._static = builder.static
        host_count, width = len(self.layout.hosts), self.layout.width
        self.single_observation_space = spaces.Dict({
            "observation": spaces.Box(0.0, FEATURE_CEILING, (host_count * width,), np.float32),
            "mask": spaces.Box(0, 1, (host_count * len(ACTIONS),), np.int8)})
        self.single_action_space = spaces.MultiDiscrete(np.full(host_count, len(ACTIONS),
                                                                np.int64))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.patient_zeros = tuple(patient_zeros or ())
        self._row = {name: i for i, name in enumerate(self.layout.hosts)}
        for name in (*self.patient_zeros, *self.scenario.patient_zero()):
            require_patient_zero(self.scenario, name)
        E, H, D = self.num_envs, host_count, len(detectors)
        self._alerts = np.zeros((E, H, D), np.float32)  # decayed sensor-side counts
        self._failures = np.zeros((E, H), np.float32)
        self._fanout = np.zeros((E, H), np.float32)
        self._counted = np.zeros((E, H), bool)  # the reward's hosts already paid for
        self._autoreset = np.zeros(E, bool)
        self._started = False

    # ---- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray],
                                                               dict[str, Any]]:
        if isinstance(seed, list | tuple):  # one generator for the batch: fold the list in
            seed = int(np.random.SeedSequence([int(s) for s in seed]).generate_state(1)[0])
        super().reset(seed=seed)
        self.engine.rng = self.np_random
        options = options or {}
        which = np.asarray(options.get("reset_mask", np.ones(self.num_envs, bool)), bool)
        self._reset_episodes(which, options.get("patient_zero"))
        self._started = True
        observation = self._observe()
        info = {"time": self.engine.now.copy(), "_time": which.copy()}
        return observation, info

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                          np.ndarray, dict[str, Any]]:
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        E, H = self.num_envs, len(self.layout.hosts)
        engine = self.engine
        resetting = self._autoreset.copy() if self.autoreset_mode == AutoresetMode.NEXT_STEP \
            else np.zeros(E, bool)
        if resetting.any():
            self._reset_episodes(resetting, None)
        stepping = ~resetting & ~engine.stopped & (engine.now < self.duration - 1e-9)
        choice = np.asarray(actions, np.int64).reshape(E, H)
        acted = self._act(choice, stepping)
        start, end = engine.advance(stepping, self.interval)
        self._fold(stepping)
        value_lost, benign_cut, infected_total = self._reward(stepping)
        rewards = np.where(stepping, -value_lost - self.cutoff_cost * (end - start) * benign_cut
                           - self.action_cost * acted, 0.0)
        terminated = stepping & engine.stopped
        truncated = stepping & ~terminated & (end >= self.duration - 1e-9)
        reasons = np.array([STOP_REASONS[r] if t else "" for r, t in
                            zip(engine.stop_reason.tolist(), terminated.tolist(), strict=True)],
                           dtype=object)
        infos: dict[str, Any] = {
            "time": engine.now.copy(), "_time": np.ones(E, bool),
            "value_lost": value_lost, "benign_cut_off": benign_cut, "actions": acted,
            "infected_total": infected_total, "stop_reason": reasons}
        for key in _STEP_KEYS:
            infos[f"_{key}"] = stepping.copy()
        infos["_stop_reason"] = terminated.copy()
        observation = self._observe()
        done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoreset = done
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.full(E, None, dtype=object)
            final_info = np.full(E, None, dtype=object)
            for row in np.flatnonzero(done).tolist():
                final_obs[row] = {k: v[row].copy() for k, v in observation.items()}
                final_info[row] = {k: infos[k][row] for k in ("time", *_STEP_KEYS)}
            self._reset_episodes(done, None)
            observation = self._observe()
            infos["time"] = engine.now.copy()
            infos.update({"final_obs": final_obs, "_final_obs": done.copy(),
                          "final_info": final_info, "_final_info": done.copy()})
        return (observation, rewards.astype(np.float64), terminated, truncated, infos)

    def action_masks(self) -> np.ndarray:
        """(num_envs, hosts, 4) bool: per host and action, whether it is meaningful now."""
        c = self.engine.containment
        return action_mask(c.quarantined, c.blocked).astype(bool)

    # ---- pieces ------------------------------------------------------------------------------
    def _reset_episodes(self, which: np.ndarray, patient_zero: str | None) -> None:
        E, H = self.num_envs, len(self.layout.hosts)
        origin = np.zeros((E, H), bool)
        if patient_zero is not None:
            origin[:, self._row[patient_zero]] = True
        elif self.patient_zeros:
            drawn = self.np_random.integers(len(self.patient_zeros), size=E)
            rows = np.array([self._row[name] for name in self.patient_zeros])[drawn]
            origin[np.arange(E), rows] = True
        else:
            origin[:, [self._row[name] for name in self.scenario.patient_zero()]] = True
        self.engine.reset(which, origin)
        for array in (self._alerts, self._failures, self._fanout, self._counted):
            array[which] = 0
        self._autoreset[which] = False

    def _act(self, choice: np.ndarray, stepping: np.ndarray) -> np.ndarray:
        """Decode and carry out the unmasked choices (``containment_calls``); returns how many
        hosts each episode acted on."""
        c = self.engine.containment
        mask = action_mask(c.quarantined, c.blocked).astype(bool)
        valid = (choice > 0) & (choice < len(ACTIONS)) & stepping[:, None]
        valid &= np.take_along_axis(mask, np.clip(choice, 0, len(ACTIONS) - 1)[..., None],
                                    axis=2)[..., 0]
        self.engine.act(stepping, valid & (choice == QUARANTINE), valid & (choice == BLOCK),
                        valid & (choice == RELEASE))
        return valid.sum(axis=1).astype(np.int64)

    def _fold(self, stepping: np.ndarray) -> None:
        """The step's sensor-side counts into the decayed counters (``ObservationBuilder.fold``)."""
        sensor = self.engine.sensor
        rows = stepping[:, None]
        self._alerts[stepping] *= self.decay
        self._alerts += np.where(rows[..., None], sensor.step_alerts, 0.0)
        if self.contact_features:
            self._failures[stepping] *= self.decay
            self._fanout[stepping] *= self.decay
            self._failures += np.where(rows, sensor.step_first_failed, 0.0)
            self._fanout += np.where(rows, sensor.step_first, 0.0)
        sensor.step_alerts.fill(0.0)
        sensor.step_first.fill(0.0)
        sensor.step_first_failed.fill(0.0)

    def _observe(self) -> dict[str, np.ndarray]:
        """The observation from the sensor-side counters and the containment only."""
        E = self.num_envs
        c = self.engine.containment
        features = assemble_features(self._alerts, self._failures, self._fanout,
                                     c.quarantined, c.blocked, self._static)
        return {"observation": features.reshape(E, -1),
                "mask": action_mask(c.quarantined, c.blocked).reshape(E, -1)}

    def _reward(self, stepping: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value lost, benign hosts cut off, infected total) per episode: ``RewardModel.step``'s
        terms. The one reader of ground truth."""
        infected = self.engine.truth.infected
        c = self.engine.containment
        new = infected & ~self._counted & stepping[:, None]
        self._counted |= new
        value_lost = new.astype(np.float64) @ self.engine.value
        benign_cut = ((c.quarantined | c.blocked) & ~infected).sum(axis=1)
        return value_lost, benign_cut.astype(np.int64), infected.sum(axis=1).astype(np.int64)
