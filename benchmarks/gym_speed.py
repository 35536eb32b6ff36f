"""Environment steps per second of testbed/Defend-v0 on one core (issue 14, goal 10,000/s).

Prints, for smb-flat, steps per CPU second of this process (and per wall second: the machine
is shared, so CPU time is the fair measure of one core) with resets included under three action
streams: uniform random
actions (``action_space.sample()``: masked choices are no-ops), sparse random actions (5 % of
hosts act per step) and no-ops (the worm spreads unopposed: the most simulation per step), and
where the time goes (shares of CPU time inside the simulation engine's ``run_until`` and in
resets, which build a new simulation each).

    python benchmarks/gym_speed.py [--scenario scenarios/smb-flat.yaml] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import testbed.gym  # noqa: E402,F401  (registers the env)
from testbed.gym.env import DefendEnv  # noqa: E402
from testbed.gym.policies import RandomPolicy  # noqa: E402


def measure(env: DefendEnv, choose: object, seconds: float) -> dict[str, float]:
    """Step for ``seconds`` of this process's CPU time (the machine is shared: CPU time, not
    wall time, is what one core gives); resets count as part of the stepping."""
    engine = resets = 0.0
    clock = time.process_time

    def timed_engine() -> None:
        """Time the engine's share: wrap this episode's ``Simulation.run_until``."""
        assert env.run is not None
        simulation = env.run.simulation
        run_until = simulation.run_until

        def timed(until: float) -> bool:
            nonlocal engine
            mark = clock()
            try:
                return run_until(until)
            finally:
                engine += clock() - mark

        simulation.run_until = timed  # type: ignore[method-assign]

    observation, _ = env.reset(seed=0)
    timed_engine()
    steps = episodes = 0
    started, wall_started = clock(), time.perf_counter()
    while clock() - started < seconds:
        observation, _, terminated, truncated, _ = env.step(choose(observation))  # type: ignore[operator]
        steps += 1
        if terminated or truncated:
            episodes += 1
            mark = clock()
            observation, _ = env.reset()
            resets += clock() - mark
            timed_engine()
    cpu, wall = clock() - started, time.perf_counter() - wall_started
    return {"steps_per_s": steps / cpu, "steps_per_wall_s": steps / wall, "steps": steps,
            "episodes": episodes, "engine_share": engine / cpu, "reset_share": resets / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(REPO / "scenarios" / "smb-flat.yaml"))
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    env = DefendEnv(args.scenario)
    env.action_space.seed(0)
    sparse = RandomPolicy(seed=0)
    streams = {
        "uniform random": lambda _observation: env.action_space.sample(),
        "sparse random (5%)": sparse.act,
        "no-op": lambda _observation: np.zeros(len(env.layout.hosts), np.int64),
    }
    print(f"testbed/Defend-v0 on {Path(args.scenario).name}: {len(env.layout.hosts)} hosts, "
          f"{env.interval:g} s decision interval, {env.duration:g} s episodes, one core")
    for label, choose in streams.items():
        figures = measure(env, choose, args.seconds)
        print(f"  {label:<20} {figures['steps_per_s']:>9,.0f} steps per CPU second "
              f"({figures['steps_per_wall_s']:,.0f} per wall second; {figures['steps']:,} "
              f"steps, {figures['episodes']} episodes; time: "
              f"{figures['engine_share']:.0%} simulation engine, "
              f"{figures['reset_share']:.0%} resets, the rest the env and the actions)")
    print("goal: 10,000 steps/s (issue 14)")


if __name__ == "__main__":
    main()
