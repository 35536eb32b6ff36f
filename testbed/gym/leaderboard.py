"""Policies compared on held-out simulation seeds, with confidence intervals.

Owns: ``evaluate`` (one policy, deterministic, over the scenario's seeds ``seeds``: per episode
its return, value lost, benign host-seconds cut off and actions), ``leaderboard`` (several
policies on the same seeds, best mean return first, 95 % percentile-bootstrap intervals from
``testbed.stats``) and its text table. ``python -m testbed.gym.leaderboard`` prints the
baselines' (and, with ``--policy FILE``, a trained policy's) board.
Held-out seeds: training (benchmarks/train_defender.py) draws simulation seeds below
``HELD_OUT_FROM``; the board uses seeds from it upwards. Held-out patients zero: with
``--patient-zero held-out`` episode ``i`` starts the worm from the ``i``-th (cyclically) of the
hosts ``testbed.gym.env.split_patient_zeros`` sets aside, which training never draws.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.gym.env import DefendEnv, plausible_patient_zeros, split_patient_zeros
from testbed.gym.policies import MlpPolicy, Policy, baselines
from testbed.stats import bootstrap_mean_ci

__all__ = ["HELD_OUT_FROM", "Entry", "evaluate", "format_board", "held_out_patient_zeros",
           "leaderboard"]

HELD_OUT_FROM = 1_000_000


@dataclass(frozen=True)
class Entry:
    policy: str
    returns: tuple[float, ...]
    value_lost: tuple[float, ...]
    cutoff_s: tuple[float, ...]  # benign host-seconds cut off
    actions: tuple[int, ...]

    def ci(self, values: Sequence[float]) -> tuple[float, float, float]:
        found = bootstrap_mean_ci(values)
        assert found is not None
        return found


def evaluate(env: DefendEnv, policy: Policy, seeds: Sequence[int],
             patient_zeros: Sequence[str] = ()) -> Entry:
    """``patient_zeros``: episode ``i`` starts from ``patient_zeros[i % len]`` (default: the
    env's own choice)."""
    returns, lost, cut, acted = [], [], [], []
    for index, seed in enumerate(seeds):
        options: dict[str, object] = {"sim_seed": int(seed)}
        if patient_zeros:
            options["patient_zero"] = patient_zeros[index % len(patient_zeros)]
        observation, _ = env.reset(options=options)
        total = value = cutoff = 0.0
        actions = 0
        while True:
            observation, reward, terminated, truncated, info = env.step(policy.act(observation))
            total += reward
            value += float(info["value_lost"])
            cutoff += float(info["benign_cut_off"]) * env.interval
            actions += int(info["actions"])
            if terminated or truncated:
                break
        returns.append(total)
        lost.append(value)
        cut.append(cutoff)
        acted.append(actions)
    return Entry(policy.name, tuple(returns), tuple(lost), tuple(cut), tuple(acted))


def leaderboard(env: DefendEnv, policies: Sequence[Policy], seeds: Sequence[int],
                patient_zeros: Sequence[str] = ()) -> list[Entry]:
    entries = [evaluate(env, policy, seeds, patient_zeros) for policy in policies]
    return sorted(entries, key=lambda e: -sum(e.returns) / len(e.returns))


def format_board(entries: Sequence[Entry]) -> str:
    lines = [f"{'policy':<34} {'return (95% CI)':>26} {'value lost':>22} {'benign cut s':>14}"]
    for entry in entries:
        ret, lo, hi = entry.ci(entry.returns)
        lost, llo, lhi = entry.ci(entry.value_lost)
        cut = sum(entry.cutoff_s) / len(entry.cutoff_s)
        lines.append(f"{entry.policy:<34} {ret:>8.1f} [{lo:>7.1f}, {hi:>7.1f}] "
                     f"{lost:>6.1f} [{llo:>5.1f}, {lhi:>5.1f}] {cut:>14.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Defender policies on held-out sim seeds.")
    parser.add_argument("--scenario", default="scenarios/smb-flat.yaml")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--policy", action="append", default=[], type=Path,
                        help="a trained policy file (.npz); repeatable")
    parser.add_argument("--alerts-only", action="store_true",
                        help="no first-contact features (as an emulated policy responder)")
    parser.add_argument("--patient-zero", choices=("scenario", "held-out"), default="scenario",
                        help="the scenario's patient zero, or the held-out ones in turn")
    args = parser.parse_args(argv)
    env = DefendEnv(args.scenario, contact_features=not args.alerts_only)
    policies = baselines(env.layout.columns, env.detectors, env.scenario.spec.response.rules)
    for path in args.policy:
        policy = MlpPolicy.load(path)
        policy.check(env.layout.hosts, env.layout.columns)
        policies.append(policy)
    seeds = range(HELD_OUT_FROM, HELD_OUT_FROM + args.episodes)
    patient_zeros = held_out_patient_zeros(env) if args.patient_zero == "held-out" else ()
    print(f"{env.scenario.name}: {args.episodes} held-out seeds from {HELD_OUT_FROM}; patient "
          f"zero: {', '.join(patient_zeros) or ', '.join(env.scenario.patient_zero())}")
    print(format_board(leaderboard(env, policies, list(seeds), patient_zeros)))


def held_out_patient_zeros(env: DefendEnv) -> tuple[str, ...]:
    """The plausible patients zero that training never starts from."""
    return split_patient_zeros(plausible_patient_zeros(env.scenario.topology))[1]


if __name__ == "__main__":
    main()
