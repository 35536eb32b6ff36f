"""Train a PPO defender on testbed/Defend-v0 with Stable-Baselines3, export it as a numpy policy
file, and place it on the held-out leaderboard next to the rule-based responders.

Needs the optional extra: ``pip install torch==2.13.0`` (the CPU build) then
``pip install -e '.[gym,rl]'``; ``--algo maskable`` (the default when installed) also needs
``sb3-contrib`` (MaskablePPO: masked choices are never sampled). The exported file
(``MlpPolicy.load``) needs only numpy: it runs as ``response: {policy: FILE}`` in an emulated
run.

Generalisation, not memorisation: by default every training episode draws its patient zero
among the plausible launch pads (``testbed.gym.env.plausible_patient_zeros``: launch-pad and
workstation hosts) less the held-out ones (``split_patient_zeros``), and the network is
``per-host``: one small network shared by every host (its row plus the mean row in, its four
logits out), so nothing ties a decision to a host's position. The leaderboard then runs on
held-out simulation seeds, once with the scenario's own patient zero and once with the
held-out patients zero; nothing is tuned on either.

    python benchmarks/train_defender.py [--steps 100000] [--alerts-only] [--episodes 30]
        [--algo maskable|ppo] [--architecture per-host|flat] [--patient-zero varied|scenario]
        [--run-to-duration] [--out runs/policies/smb-flat-ppo.npz]
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

from testbed.gym.env import DefendEnv, plausible_patient_zeros, split_patient_zeros  # noqa: E402
from testbed.gym.leaderboard import HELD_OUT_FROM, format_board, leaderboard  # noqa: E402
from testbed.gym.observation import ACTIONS  # noqa: E402
from testbed.gym.policies import MlpPolicy, baselines, save_mlp  # noqa: E402


class TrainingView(gymnasium.Wrapper):  # type: ignore[type-arg]
    """What PPO trains on: the feature vector (the mask goes through ``action_masks``), and
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

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks().reshape(-1)  # type: ignore[attr-defined]


def per_host_policy(base: type, hosts: int, width: int, hidden: tuple[int, ...]) -> type:
    """An SB3 actor-critic policy class whose actor is one network shared by every host (input:
    the host's row and the mean row; output: its 4 logits) and whose critic pools the same
    per-host features: what ``MlpPolicy`` evaluates for ``architecture: per-host``."""
    import torch
    from torch import nn

    def tower() -> nn.Sequential:
        layers: list[nn.Module] = []
        size = 2 * width
        for units in hidden:
            layers += [nn.Linear(size, units), nn.Tanh()]
            size = units
        return nn.Sequential(*layers)

    def rows(features: torch.Tensor) -> torch.Tensor:
        grid = features.reshape(-1, hosts, width)
        return torch.cat((grid, grid.mean(dim=1, keepdim=True).expand_as(grid)), dim=2)

    class Extractor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent_dim_pi = hosts * hidden[-1]
            self.latent_dim_vf = hidden[-1]
            self.policy_net, self.value_net = tower(), tower()

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.forward_actor(features), self.forward_critic(features)

        def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
            return self.policy_net(rows(features)).reshape(features.shape[0], -1)

        def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
            return self.value_net(rows(features)).mean(dim=1)

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(hidden[-1], len(ACTIONS))

        def forward(self, latent: torch.Tensor) -> torch.Tensor:
            grid = latent.reshape(latent.shape[0], hosts, hidden[-1])
            return self.linear(grid).reshape(latent.shape[0], hosts * len(ACTIONS))

    class PerHostPolicy(base):  # type: ignore[misc,valid-type]
        def _build_mlp_extractor(self) -> None:
            self.mlp_extractor = Extractor()

        def _build(self, lr_schedule: Any) -> None:
            super()._build(lr_schedule)
            self.action_net = Head()
            if self.ortho_init:
                self.action_net.apply(lambda m: self.init_weights(m, gain=0.01))
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                                  **self.optimizer_kwargs)

    return PerHostPolicy


def export(model: Any, env: DefendEnv, path: Path, *, meta: dict[str, Any]) -> Path:
    """The actor's layers as numpy arrays (tanh between them, the action head last)."""
    import torch

    policy = model.policy
    actor = policy.mlp_extractor.policy_net
    head = policy.action_net.linear if meta["architecture"] == "per-host" else policy.action_net
    layers = [m for m in actor if isinstance(m, torch.nn.Linear)] + [head]
    weights = [(layer.weight.detach().cpu().numpy().astype(np.float64),
                layer.bias.detach().cpu().numpy().astype(np.float64)) for layer in layers]
    return save_mlp(path, weights, {"hosts": list(env.layout.hosts),
                                    "columns": list(env.layout.columns),
                                    "decision_interval_s": env.interval,
                                    "alert_decay": env.builder.decay,
                                    "contact_features": env.builder.contacts, **meta})


def agreement(model: Any, learned: MlpPolicy, env: DefendEnv, seeds: range) -> float:
    """Share of held-out decisions where the numpy pass and SB3 pick the same unmasked
    action (deterministic), over a no-op rollout of each seed."""
    import torch

    same = total = 0
    for seed in seeds:
        observation, _ = env.reset(options={"sim_seed": seed})
        for _ in range(15):
            mask = observation["mask"].reshape(-1, len(ACTIONS))
            kwargs = {"action_masks": mask.reshape(-1).astype(bool)} if hasattr(
                model, "action_masks") or "Maskable" in type(model).__name__ else {}
            with torch.no_grad():
                theirs, _ = model.predict(observation["observation"], deterministic=True,
                                          **kwargs)
            ours = learned.act(observation)
            theirs = np.where(mask[np.arange(len(theirs)), theirs] > 0, theirs, 0)
            same += int(np.sum(ours == theirs))
            total += len(ours)
            observation, _, terminated, truncated, _ = env.step(ours)
            if terminated or truncated:
                break
    return same / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(REPO / "scenarios" / "smb-flat.yaml"))
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=30, help="held-out seeds to evaluate")
    parser.add_argument("--alerts-only", action="store_true",
                        help="train without the first-contact features (what a policy "
                             "responder sees when its runner hands it alerts only)")
    parser.add_argument("--algo", choices=("maskable", "ppo"), default=None,
                        help="MaskablePPO (sb3-contrib; the default when installed) or PPO")
    parser.add_argument("--architecture", choices=("per-host", "flat"), default="per-host")
    parser.add_argument("--patient-zero", choices=("varied", "scenario"), default="varied",
                        help="draw each episode's patient zero among the training launch pads,"
                             " or always start from the scenario's")
    parser.add_argument("--run-to-duration", action="store_true",
                        help="train on episodes that ignore the scenario's stop rules "
                             "(every episode runs its full duration); the leaderboard still "
                             "uses the scenario's rules")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "policies" /
                        "smb-flat-ppo.npz")
    args = parser.parse_args()
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy

    algo = args.algo
    if algo is None:
        try:
            import sb3_contrib  # noqa: F401
            algo = "maskable"
        except ImportError:
            algo = "ppo"
    torch.set_num_threads(1)
    contacts = not args.alerts_only
    probe = DefendEnv(args.scenario)
    training_zeros, held_out_zeros = split_patient_zeros(
        plausible_patient_zeros(probe.scenario.topology))
    env = DefendEnv(args.scenario, contact_features=contacts,
                    patient_zeros=training_zeros if args.patient_zero == "varied" else None,
                    stop_when=() if args.run_to_duration else None)
    hidden = (64, 64)
    if algo == "maskable":
        from sb3_contrib import MaskablePPO
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
        algorithm, base = MaskablePPO, MaskableActorCriticPolicy
    else:
        algorithm, base = PPO, ActorCriticPolicy
    if args.architecture == "per-host":
        policy_class: Any = per_host_policy(base, len(env.layout.hosts), env.layout.width, hidden)
        policy_kwargs: dict[str, Any] = {}
    else:
        policy_class = base
        policy_kwargs = {"net_arch": {"pi": list(hidden), "vf": list(hidden)}}
    model = algorithm(policy_class, TrainingView(env, args.seed), seed=args.seed, n_steps=1024,
                      batch_size=256, learning_rate=3e-4, ent_coef=0.01, gamma=0.99,
                      policy_kwargs=policy_kwargs, verbose=0)
    started = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    trained_s = time.perf_counter() - started
    label = {"maskable": "MaskablePPO (sb3-contrib)", "ppo": "PPO (stable-baselines3)"}[algo]
    path = export(model, env, args.out, meta={
        "architecture": args.architecture, "scenario": args.scenario,
        "trained_steps": args.steps, "algorithm": label, "training_seed": args.seed,
        "training_stop_rules": list(env.scenario.spec.stop.when),
        "patient_zeros": list(env.patient_zeros) or list(env.scenario.patient_zero())})
    model.save(path.with_suffix(".zip"))  # the trainer's own checkpoint, to train on later
    print(f"trained {label}, {args.architecture}, {args.steps:,} steps in {trained_s:.0f} s "
          f"({args.steps / trained_s:,.0f} steps/s with learning); policy: {path}")
    learned = MlpPolicy.load(path)
    check = DefendEnv(args.scenario, contact_features=contacts)
    share = agreement(model, learned, check, range(HELD_OUT_FROM, HELD_OUT_FROM + 3))
    print(f"numpy forward pass agrees with the trained model on {share:.1%} of decisions")
    policies = baselines(check.layout.columns, check.detectors,
                         check.scenario.spec.response.rules)
    policies.append(learned)
    seeds = list(range(HELD_OUT_FROM, HELD_OUT_FROM + args.episodes))
    for title, zeros in (("the scenario's patient zero", ()),
                         (f"held-out patients zero ({', '.join(held_out_zeros)})",
                          held_out_zeros)):
        print(f"leaderboard: {args.episodes} held-out seeds from {HELD_OUT_FROM}, {title}")
        print(format_board(leaderboard(check, policies, seeds, zeros)))


if __name__ == "__main__":
    main()
