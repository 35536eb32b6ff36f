"""Train a PPO defender on testbed/Defend-v0 with Stable-Baselines3, export it as a numpy policy
file, and place it on the held-out leaderboard next to the rule-based responders.

Needs the optional extra: ``pip install torch==2.13.0`` (the CPU build) then
``pip install -e '.[gym,rl]'``. The exported file (``MlpPolicy.load``) needs only numpy: it runs
as ``response: {policy: FILE}`` in an emulated run.

    python benchmarks/train_defender.py [--steps 60000] [--out runs/policies/smb-flat-ppo.npz]
                                        [--episodes 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gymnasium  # noqa: E402

from testbed.gym.env import DefendEnv  # noqa: E402
from testbed.gym.leaderboard import HELD_OUT_FROM, format_board, leaderboard  # noqa: E402
from testbed.gym.policies import MlpPolicy, baselines, save_mlp  # noqa: E402


class TrainingView(gymnasium.Wrapper):  # type: ignore[type-arg]
    """What PPO trains on: the feature vector only (masked actions are no-ops in the env), and
    simulation seeds below HELD_OUT_FROM (the leaderboard's are at or above it)."""

    def __init__(self, env: DefendEnv, seed: int) -> None:
        super().__init__(env)
        self.observation_space = env.observation_space["observation"]
        self._rng = np.random.default_rng(seed)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        kwargs.pop("seed", None)
        options = {"sim_seed": int(self._rng.integers(HELD_OUT_FROM))}
        observation, info = self.env.reset(options=options)
        return observation["observation"], info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation["observation"], reward, terminated, truncated, info


def export(model: Any, env: DefendEnv, path: Path, *, scenario: str, steps: int) -> Path:
    """The actor's layers (tanh MLP, then the action head) as numpy arrays."""
    import torch

    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    weights = [(layer.weight.detach().cpu().numpy().astype(np.float64),
                layer.bias.detach().cpu().numpy().astype(np.float64)) for layer in layers]
    meta = {"hosts": list(env.layout.hosts), "columns": list(env.layout.columns),
            "decision_interval_s": env.interval, "alert_decay": env.builder.decay,
            "contact_features": env.builder.contacts,
            "scenario": scenario, "trained_steps": steps, "algorithm": "PPO (stable-baselines3)"}
    return save_mlp(path, weights, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(REPO / "scenarios" / "smb-flat.yaml"))
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=30, help="held-out seeds to evaluate")
    parser.add_argument("--alerts-only", action="store_true",
                        help="train without the first-contact features (an emulated policy "
                             "responder receives alerts only)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "policies" /
                        "smb-flat-ppo.npz")
    args = parser.parse_args()
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = DefendEnv(args.scenario, contact_features=not args.alerts_only)
    model = PPO("MlpPolicy", TrainingView(env, args.seed), seed=args.seed, n_steps=1024,
                batch_size=256, learning_rate=3e-4, ent_coef=0.01, gamma=0.99,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}}, verbose=0)
    started = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    trained_s = time.perf_counter() - started
    path = export(model, env, args.out, scenario=args.scenario, steps=args.steps)
    print(f"trained {args.steps:,} steps in {trained_s:.0f} s "
          f"({args.steps / trained_s:,.0f} steps/s with learning); policy: {path}")
    learned = MlpPolicy.load(path)
    check = DefendEnv(args.scenario, contact_features=not args.alerts_only)
    observation, _ = check.reset(options={"sim_seed": HELD_OUT_FROM})
    with torch.no_grad():
        sb3, _ = model.predict(observation["observation"], deterministic=True)
    mask = observation["mask"].reshape(-1, 4)
    agrees = all(learned.act(observation)[i] == sb3[i] or not mask[i, sb3[i]]
                 for i in range(len(sb3)))
    print(f"numpy forward pass agrees with stable-baselines3 (where unmasked): {agrees}")
    policies = baselines(check.layout.columns, check.detectors,
                         check.scenario.spec.response.rules)
    policies.append(learned)
    seeds = list(range(HELD_OUT_FROM, HELD_OUT_FROM + args.episodes))
    print(f"leaderboard: {args.episodes} held-out seeds from {HELD_OUT_FROM}")
    print(format_board(leaderboard(check, policies, seeds)))


if __name__ == "__main__":
    main()
