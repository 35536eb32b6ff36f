"""Defender against worm: a PettingZoo ``ParallelEnv`` over the same stepped simulation.

Owns: ``DefendAttackEnv`` -- agents ``defender`` (``testbed/Defend-v0``'s observation, action
and reward) and ``worm``, which each step picks one of its profile's safe target-choice tactics
(``WORM_TACTICS``; index 0 lets every brain choose as its profile does) for every active worm
brain, through the brain's own tactic choice (``Brain._choose_tactic``, the decision point of
its action space); a brain that wakes during a step follows the choice from the next step on.
The worm observes only what its brains know: active worms, probes planned, hosts they saw
infected (log1p). Its reward is the value the defender lost.
Must not: give the worm any power beyond the brain's tactics (rates, exploits, the safety
rules are the profile's), or show the defender anything ``DefendEnv`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from testbed.agent.brain import TACTIC_ARMS, Brain
from testbed.gym.env import DefendEnv
from testbed.model.load_scenario import Scenario

__all__ = ["WORM_TACTICS", "DefendAttackEnv"]

WORM_TACTICS: dict[str, tuple[str, ...]] = {
    "classic": ("uniform",),
    "local-preference": ("local", "sequential"),
    "hitlist": ("hitlist", "uniform", "sequential", "local"),
    "stealth": ("hitlist", "local"),
    "adaptive": TACTIC_ARMS,  # every arm its bandit has, the observing tactics included
}
"""Per profile, the tactics the worm agent may force (besides 0: the profile's own choice)."""
_WORM_FEATURES = 3


def steer(brain: Brain, tactic: str | None) -> None:
    """Make ``brain`` choose ``tactic`` for its next probes (None: its profile's own choice)."""
    if tactic is None:
        brain.__dict__.pop("_choose_tactic", None)
    else:
        brain._choose_tactic = lambda: tactic  # type: ignore[method-assign]


class DefendAttackEnv(ParallelEnv):  # type: ignore[misc]
    metadata = {"name": "testbed_defend_attack_v0", "render_modes": []}

    def __init__(self, scenario: str | Path | Scenario = "scenarios/smb-flat.yaml",
                 **kwargs: Any) -> None:
        self.defend = DefendEnv(scenario, **kwargs)
        self.tactics = WORM_TACTICS.get(self.defend.scenario.spec.worm.profile, ())
        self.possible_agents = ["defender", "worm"]
        self.agents: list[str] = []
        self._spaces = {
            "defender": (self.defend.observation_space, self.defend.action_space),
            "worm": (spaces.Box(0.0, 32.0, (_WORM_FEATURES,), np.float32),
                     spaces.Discrete(1 + len(self.tactics))),
        }
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space[Any]:  # the same object each call
        return self._spaces[agent][0]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._spaces[agent][1]

    def _worm_observation(self) -> np.ndarray:
        run = self.defend.run
        assert run is not None
        worms = run.simulation.worms
        planned = sum(w.brain.probes_planned for w in worms.values())
        seen = len(set().union(*(w.brain.infected for w in worms.values()))) if worms else 0
        return np.minimum(np.log1p(np.array([len(worms), planned, seen], np.float32)),
                          32.0).astype(np.float32)

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        observation, info = self.defend.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return ({"defender": observation, "worm": self._worm_observation()},
                {"defender": info, "worm": {}})

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float],
                                                     dict[str, bool], dict[str, bool],
                                                     dict[str, Any]]:
        run = self.defend.run
        assert run is not None
        choice = int(actions.get("worm", 0))
        tactic = self.tactics[choice - 1] if 0 < choice <= len(self.tactics) else None
        for worm in run.simulation.worms.values():
            steer(worm.brain, tactic)
        defender_action = actions.get("defender")
        if defender_action is None:
            defender_action = np.zeros(len(self.defend.layout.hosts), np.int64)
        observation, reward, terminated, truncated, info = self.defend.step(defender_action)
        observations = {"defender": observation, "worm": self._worm_observation()}
        rewards = {"defender": float(reward), "worm": float(info["value_lost"])}
        terminations = dict.fromkeys(self.agents, terminated)
        truncations = dict.fromkeys(self.agents, truncated)
        infos = {"defender": info, "worm": {"tactic": tactic or "profile"}}
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        self.defend.close()
