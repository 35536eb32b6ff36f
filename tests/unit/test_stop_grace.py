"""A stop condition must still hold when its grace period ends (sim engine; the runner's watch
loop applies the same rule on the emulators): a release right after containment re-opens the
run instead of letting it end as contained."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from extras_support import require_extra

require_extra("gymnasium")

from testbed.gym.env import DefendEnv  # noqa: E402
from testbed.gym.observation import NOOP, RELEASE  # noqa: E402
from testbed.gym.policies import RulePolicy  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "smb-flat.yaml"
SEED = 3


class ReleaseAfterContaining:
    """Quarantine on any alert like the rule until ``release_at`` (virtual seconds, after the
    run became contained and before its grace period ends); then release every quarantined
    host once and do nothing more."""

    def __init__(self, env: DefendEnv, release_at: float) -> None:
        self.rule = RulePolicy(env.layout.columns, ["any"])
        self.quarantine_column = env.layout.columns.index("quarantined")
        self.width = len(env.layout.columns)
        self.release_at, self.now = release_at, 0.0
        self.released: list[int] = []

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        rows = observation["observation"].reshape(-1, self.width)
        now, self.now = self.now, self.now + 1.0  # one step is one second of virtual time
        if now < self.release_at:
            return self.rule.act(observation)
        if self.released:
            return np.full(len(rows), NOOP, dtype=np.int64)
        quarantined = rows[:, self.quarantine_column] > 0
        self.released = [int(h) for h in np.flatnonzero(quarantined)]
        return np.where(quarantined, RELEASE, NOOP).astype(np.int64)


def run(env: DefendEnv, policy: object) -> list[dict[str, object]]:
    observation, _ = env.reset(seed=SEED)
    infos = []
    while True:
        observation, _, terminated, truncated, info = env.step(
            policy.act(observation))  # type: ignore[attr-defined]
        infos.append(info)
        if terminated or truncated:
            return infos


def test_containment_that_holds_through_the_grace_period_ends_the_run() -> None:
    env = DefendEnv(SCENARIO, duration_s=30.0)
    infos = run(env, RulePolicy(env.layout.columns, ["any"]))
    assert infos[-1].get("stop_reason") == "contained" and len(infos) < 30


def test_a_release_inside_the_grace_period_cancels_the_stop() -> None:
    env = DefendEnv(SCENARIO, duration_s=30.0)
    contained = run(env, RulePolicy(env.layout.columns, ["any"]))
    stopped_at = float(contained[-1]["time"])  # type: ignore[arg-type]
    held_from = stopped_at - env.scenario.spec.stop.grace_s  # when containment began to hold
    release_at = float(np.ceil(held_from))
    assert held_from < release_at < stopped_at - 1.0  # a whole step of release inside the grace
    policy = ReleaseAfterContaining(env, release_at)
    infos = run(env, policy)
    assert policy.released  # the quarantined hosts really were released
    assert float(infos[-1]["time"]) > stopped_at  # type: ignore[arg-type]
    assert infos[-1].get("stop_reason") != "contained"
