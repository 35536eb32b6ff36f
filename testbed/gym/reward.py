"""The defender's reward: the one place of ``testbed.gym`` that reads ground truth.

Owns: ``RewardModel`` -- per step, minus the value of the hosts infected during the step, minus
``cutoff_cost`` per second for every benign (not infected) host that is quarantined or blocked,
minus ``action_cost`` per action carried out. Ground truth comes from
``testbed.gym.stepping.SteppedRun.infected`` (the engine's infection record).
Must not: be imported by ``testbed.gym.observation`` (an import-linter contract), so the
observation never learns what only the reward may know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = ["RewardModel", "StepReward"]


@dataclass(frozen=True, slots=True)
class StepReward:
    reward: float
    value_lost: float
    benign_cut_off: int
    actions: int
    infected_total: int


class RewardModel:
    def __init__(self, topology: Topology, *, cutoff_cost: float = 0.5,
                 action_cost: float = 0.1) -> None:
        self._value = {name: host.value for name, host in topology.hosts.items()}
        self.cutoff_cost = cutoff_cost
        self.action_cost = action_cost
        self._counted: set[str] = set()

    def reset(self) -> None:
        self._counted = set()

    def step(self, infected: Mapping[str, float], containment: ContainmentState,
             actions: int, seconds: float) -> StepReward:
        new = [name for name in infected if name not in self._counted]
        self._counted.update(new)
        value_lost = float(sum(self._value[name] for name in new))
        cut = set(containment.quarantined)
        cut.update(b.source for b in containment.blocks if b.source in self._value)
        benign_cut = sum(1 for name in cut if name not in infected)
        reward = (-value_lost - self.cutoff_cost * seconds * benign_cut
                  - self.action_cost * actions)
        return StepReward(reward, value_lost, benign_cut, actions, len(infected))
