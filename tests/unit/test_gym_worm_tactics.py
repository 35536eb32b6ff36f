"""The PettingZoo worm agent on an adaptive worm: it may force every arm of the adaptive bandit
(the observing tactics recon, mimic and planned included), and a forced tactic is what it
reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from extras_support import require_extra

import testbed.gym
from testbed.agent.brain import TACTIC_ARMS

require_extra("pettingzoo")

REPO = Path(__file__).resolve().parents[2]
FLAGSHIP = REPO / "scenarios" / "basement-launchpad.yaml"  # its worm is adaptive


@pytest.mark.unit
def test_the_worm_agent_of_an_adaptive_worm_may_force_every_bandit_arm() -> None:
    env = testbed.gym.parallel_env(scenario=str(FLAGSHIP), duration_s=12.0)
    assert env.tactics == TACTIC_ARMS
    assert env.action_space("worm").n == 1 + len(TACTIC_ARMS)
    env.reset(seed=3)
    reported = []
    for choice in range(1, 1 + len(TACTIC_ARMS)):
        if not env.agents:
            break
        actions = {"defender": env.action_space("defender").sample() * 0, "worm": choice}
        _, _, _, _, infos = env.step(actions)
        reported.append(infos["worm"]["tactic"])
    assert reported == list(TACTIC_ARMS[:len(reported)]) and len(reported) >= 3
