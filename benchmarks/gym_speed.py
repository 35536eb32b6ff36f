"""Environment steps per second of testbed/Defend-v0 on one core (issue 14, goal 10,000/s).

Prints, for smb-flat, steps per CPU second of this process (and per wall second: the machine
is shared, so CPU time is the fair measure of one core) with resets included under three action
streams: uniform random
actions (``action_space.sample()``: masked choices are no-ops), sparse random actions (5 % of
hosts act per step) and no-ops (the worm spreads unopposed: the most simulation per step), and
where the time goes (shares of CPU time inside the simulation engine's ``run_until`` and in
resets, which build a new simulation each).

The vector section does the same for the vectorised environment (``testbed.gym.vector``,
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``) at a few batch sizes:
environment steps per CPU second are episode-steps summed over the batch (a step that only
autoresets a finished episode is not counted; the episodes' resets are in the time).

    python benchmarks/gym_speed.py [--scenario scenarios/smb-flat.yaml] [--seconds 10]
        [--vector 64,256,1024] [--no-exact]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium
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


def sparse_choices(mask: np.ndarray, rng: np.random.Generator,
                   probability: float = 0.05) -> np.ndarray:
    """``RandomPolicy`` over a batch: each host acts with ``probability``, uniformly among its
    unmasked actions."""
    allowed = mask[..., 1:] > 0
    scores = np.where(allowed, rng.random(allowed.shape), -1.0)
    choice = scores.argmax(axis=-1) + 1
    acts = (rng.random(choice.shape) < probability) & allowed.any(axis=-1)
    return np.where(acts, choice, 0).astype(np.int64)


def measure_vector(scenario: str, num_envs: int, stream: str,
                   seconds: float) -> dict[str, float]:
    """Episode-steps per CPU second of a batch of ``num_envs`` under one action stream."""
    envs = gymnasium.make_vec("testbed/Defend-v0", num_envs=num_envs,
                              vectorization_mode="vector_entry_point", scenario=scenario)
    envs.action_space.seed(0)
    rng = np.random.default_rng(0)
    hosts = len(envs.unwrapped.layout.hosts)  # type: ignore[attr-defined]
    observation, _ = envs.reset(seed=0)
    clock = time.process_time
    steps = episodes = 0
    started, wall_started = clock(), time.perf_counter()
    while clock() - started < seconds:
        if stream == "uniform random":
            actions = envs.action_space.sample()
        elif stream == "no-op":
            actions = np.zeros((num_envs, hosts), np.int64)
        else:
            actions = sparse_choices(observation["mask"].reshape(num_envs, hosts, -1), rng)
        observation, _, terminated, truncated, info = envs.step(actions)
        steps += int(info["_value_lost"].sum())  # the sub-envs that advanced an episode
        episodes += int((terminated | truncated).sum())
    cpu, wall = clock() - started, time.perf_counter() - wall_started
    envs.close()
    return {"steps_per_s": steps / cpu, "steps_per_wall_s": steps / wall, "steps": steps,
            "episodes": episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(REPO / "scenarios" / "smb-flat.yaml"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--vector", default="64,256,1024",
                        help="batch sizes of the vectorised environment ('' to skip)")
    parser.add_argument("--no-exact", action="store_true",
                        help="skip the exact environment's figures")
    args = parser.parse_args()
    if not args.no_exact:
        exact(args)
    sizes = [int(n) for n in args.vector.split(",") if n.strip()]
    if sizes:
        print(f"vectorised testbed/Defend-v0 (testbed.gym.vector) on {Path(args.scenario).name}"
              ", one core, episode-steps summed over the batch:")
        for stream in ("uniform random", "sparse random (5%)", "no-op"):
            for size in sizes:
                figures = measure_vector(args.scenario, size, stream, args.seconds)
                print(f"  {stream:<20} num_envs {size:>5}: {figures['steps_per_s']:>9,.0f} "
                      f"steps per CPU second ({figures['steps_per_wall_s']:,.0f} per wall "
                      f"second; {figures['steps']:,} steps, {figures['episodes']:,} episodes)")
    print("goal: 10,000 steps/s (issue 14)")


def exact(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    main()
