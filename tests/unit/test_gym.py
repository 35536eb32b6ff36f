"""testbed.gym: Defend-v0 (check_env, make_vec, seeding, no ground truth in the observation),
the PettingZoo defender-vs-worm env, the policies and the RLlib registration helper."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from extras_support import require_extra

gymnasium = require_extra("gymnasium")
require_extra("pettingzoo")

import testbed.gym  # noqa: E402  (registers testbed/Defend-v0)
from testbed.gym.env import DefendEnv  # noqa: E402
from testbed.gym.observation import ACTIONS, QUARANTINE  # noqa: E402
from testbed.gym.policies import (  # noqa: E402
    MlpPolicy,
    RandomPolicy,
    RulePolicy,
    baselines,
    save_mlp,
)
from testbed.model import load_scenario  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "smb-flat.yaml"


def make(duration_s: float = 12.0, **kwargs: object) -> DefendEnv:
    return DefendEnv(SCENARIO, duration_s=duration_s, **kwargs)  # type: ignore[arg-type]


def episode(env: DefendEnv, seed: int, policy: object) -> tuple[list[np.ndarray], list[float],
                                                                  list[dict[str, object]]]:
    observation, _ = env.reset(seed=seed)
    observations, rewards, infos = [observation["observation"].copy()], [], []
    while True:
        observation, reward, terminated, truncated, info = env.step(
            policy.act(observation))  # type: ignore[attr-defined]
        observations.append(observation["observation"].copy())
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            return observations, rewards, infos


def test_registered_env_passes_check_env() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(testbed.gym.ENV_ID, scenario=str(SCENARIO), duration_s=8.0)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.layout.hosts == tuple(env.unwrapped.scenario.topology.hosts)


def test_make_vec_steps_two_envs() -> None:
    vector = gymnasium.make_vec(testbed.gym.ENV_ID, num_envs=2, vectorization_mode="sync",
                                scenario=str(SCENARIO), duration_s=5.0)
    observations, _ = vector.reset(seed=1)
    assert observations["observation"].shape[0] == 2
    for _ in range(6):  # past the duration: the vector env resets the finished ones itself
        observations, rewards, _, _, _ = vector.step(vector.action_space.sample())
    assert rewards.shape == (2,) and np.isfinite(rewards).all()
    vector.close()


def test_seeded_episodes_are_reproducible_and_seeds_differ() -> None:
    first = episode(make(), 5, RandomPolicy(seed=3, act_probability=0.1))
    again = episode(make(), 5, RandomPolicy(seed=3, act_probability=0.1))
    assert len(first[0]) == len(again[0])
    assert all(np.array_equal(a, b) for a, b in zip(first[0], again[0], strict=True))
    assert first[1] == again[1]
    other = episode(make(), 6, RandomPolicy(seed=3, act_probability=0.1))
    assert first[1] != other[1] or not all(
        np.array_equal(a, b) for a, b in zip(first[0], other[0], strict=False))


def test_sim_seed_option_runs_that_seed() -> None:
    env = make()
    _, info = env.reset(options={"sim_seed": 7})
    assert info["sim_seed"] == 7 and env.sim_seed == 7


def test_observation_holds_no_ground_truth() -> None:
    """With every sensor dark, the worm spreads but nothing the SOC sees changes: an
    observation that moved would be reading ground truth."""
    scenario = load_scenario(SCENARIO)
    monitoring = scenario.spec.monitoring.model_copy(update={"segments": []})
    dark = dataclasses.replace(scenario, spec=scenario.spec.model_copy(
        update={"monitoring": monitoring}))
    env = DefendEnv(dark, duration_s=30.0)
    observations, rewards, infos = episode(env, 0, RulePolicy(env.layout.columns, ["any"]))
    assert infos[-1]["infected_total"] > 1  # the outbreak happened, and the reward saw it
    assert sum(rewards) < 0
    assert all(np.array_equal(observations[0], each) for each in observations[1:])


def test_lit_sensors_move_the_observation() -> None:
    """The counterpart: with the scenario's sensors on, alerts and contacts show up."""
    env = make(duration_s=30.0)
    observations, _, _ = episode(env, 0, NoOp())
    columns = env.layout.columns
    dynamic = [i for i, c in enumerate(columns) if c.startswith(("alerts:", "first-contact",
                                                                  "fan-out"))]
    stacked = np.stack(observations).reshape(len(observations), -1, len(columns))
    assert stacked[:, :, dynamic].max() > 0


class NoOp:
    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros(observation["mask"].size // len(ACTIONS), np.int64)


def test_observation_and_policies_import_no_ground_truth() -> None:
    """The import-linter contract gym-observation-wall, checked without running lint-imports."""
    forbidden = ("testbed.truth", "testbed.scoring", "testbed.results", "testbed.sim.truth",
                 "testbed.gym.reward", "testbed.gym.env", "gymnasium", "torch",
                 "stable_baselines3")
    for name in ("observation.py", "policies.py"):
        tree = ast.parse((REPO / "testbed" / "gym" / name).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert not {m for m in imported if m.startswith(forbidden)}, name


def test_masked_actions_are_no_ops_and_quarantine_lands() -> None:
    env = make()
    observation, _ = env.reset(seed=0)
    action = np.zeros(len(env.layout.hosts), np.int64)
    action[0] = QUARANTINE
    action[1] = ACTIONS.index("release")  # masked: nothing to release
    observation, reward, _, _, info = env.step(action)
    assert info["actions"] == 1
    assert env.run is not None and env.layout.hosts[0] in env.run.containment.quarantined
    mask = observation["mask"].reshape(-1, len(ACTIONS))
    assert mask[0].tolist() == [1, 0, 1, 0] and mask[1].tolist() == [1, 1, 0, 1]
    assert reward <= -0.1  # the action's cost


def test_rule_policy_beats_doing_nothing_on_value_lost() -> None:
    env = make(duration_s=40.0)
    columns, detectors = env.layout.columns, env.detectors
    rule = RulePolicy(columns, detectors, "quarantine")
    lost = {}
    for policy in (NoOp(), rule):
        _, _, infos = episode(env, 11, policy)
        lost[type(policy).__name__] = sum(float(i["value_lost"]) for i in infos)
    assert lost["RulePolicy"] <= lost["NoOp"]
    names = [p.name for p in baselines(columns, detectors, env.scenario.spec.response.rules)]
    assert "no-op" in names and "rule:quarantine-on-trw+fanout" in names


def test_mlp_policy_file_round_trip_and_mask(tmp_path: Path) -> None:
    env = make()
    observation, _ = env.reset(seed=0)
    width = observation["observation"].size
    hosts = len(env.layout.hosts)
    rng = np.random.default_rng(0)
    weights = [(rng.normal(size=(8, width)), np.zeros(8)),
               (np.zeros((hosts * 4, 8)), np.tile([0.0, 0.0, 5.0, 0.0], hosts))]
    path = save_mlp(tmp_path / "p.npz", weights, {"hosts": env.layout.hosts,
                                                  "columns": env.layout.columns})
    policy = MlpPolicy.load(path)
    policy.check(env.layout.hosts, env.layout.columns)
    action = policy.act(observation)
    # "release" has the highest logit but is masked everywhere at the start: the best unmasked
    # action (no-op, first of the ties) wins
    assert action.shape == (hosts,) and set(action.tolist()) == {0}


def test_parallel_env_passes_parallel_api_test() -> None:
    from pettingzoo.test import parallel_api_test

    env = testbed.gym.parallel_env(scenario=str(SCENARIO), duration_s=10.0)
    parallel_api_test(env, num_cycles=15)
    observations, _ = env.reset(seed=2)
    assert set(observations) == {"defender", "worm"}
    assert env.action_space("worm").n == 1 + len(env.tactics)


def test_register_rllib_registers_the_env() -> None:
    require_extra("ray")
    from ray.tune.registry import ENV_CREATOR, _global_registry

    name = testbed.gym.register_rllib("testbed-defend-test")
    creator = _global_registry.get(ENV_CREATOR, name)
    env = creator({"scenario": str(SCENARIO), "duration_s": 3.0})
    observation, _ = env.reset(seed=0)
    assert observation["observation"].shape == env.observation_space["observation"].shape


def test_alerts_only_view_keeps_contact_columns_zero() -> None:
    """contact_features=False: the view an emulated policy responder has (alerts only)."""
    env = make(duration_s=30.0, contact_features=False)
    observations, _, _ = episode(env, 0, NoOp())
    columns = env.layout.columns
    stacked = np.stack(observations).reshape(len(observations), -1, len(columns))
    contacts = [columns.index("first-contact-failures"), columns.index("fan-out")]
    alerts = [i for i, c in enumerate(columns) if c.startswith("alerts:")]
    assert stacked[:, :, contacts].max() == 0 and stacked[:, :, alerts].max() > 0


def test_worm_agent_steers_every_active_brain() -> None:
    env = testbed.gym.parallel_env(scenario=str(SCENARIO), duration_s=20.0)
    env.reset(seed=0)
    hosts = len(env.defend.layout.hosts)
    for _ in range(6):  # patient zero wakes at 3 s
        env.step({"defender": np.zeros(hosts, np.int64), "worm": 2})
    worms = env.defend.run.simulation.worms
    assert worms and env.tactics[1] == "sequential"
    assert {w.brain._choose_tactic() for w in worms.values()} == {"sequential"}
    env.step({"defender": np.zeros(hosts, np.int64), "worm": 0})  # back to the profile's choice
    assert all("_choose_tactic" not in w.brain.__dict__ for w in worms.values())


def test_patient_zero_is_drawn_among_the_given_hosts_reproducibly() -> None:
    from testbed.gym.env import plausible_patient_zeros, split_patient_zeros

    scenario = load_scenario(SCENARIO)
    candidates = plausible_patient_zeros(scenario.topology)
    training, held_out = split_patient_zeros(candidates)
    assert "lobby-printer" in candidates and "finance-db" not in candidates
    assert held_out and not set(training) & set(held_out)
    assert set(training) | set(held_out) == set(candidates)
    env = make(patient_zeros=training)
    drawn = []
    for seed in range(12):
        env.reset(seed=seed)
        drawn.append(env.patient_zero)
        assert env.run is not None and env.run.simulation.patient_zero == list(env.patient_zero)
    assert {z for (z,) in drawn} <= set(training) and len(set(drawn)) > 3
    again, replayed = make(patient_zeros=training), []
    for seed in range(12):
        again.reset(seed=seed)
        replayed.append(again.patient_zero)
    assert replayed == drawn
    env.reset(options={"patient_zero": held_out[0], "sim_seed": 1})
    assert env.patient_zero == (held_out[0],)


def test_unknown_patient_zero_is_refused() -> None:
    from testbed.errors import InputError

    with pytest.raises(InputError, match="not a host"):
        make(patient_zeros=["no-such-host"])


def test_per_host_policy_file_applies_one_network_to_every_host(tmp_path: Path) -> None:
    env = make()
    observation, _ = env.reset(seed=0)
    columns, hosts = env.layout.columns, env.layout.hosts
    rng = np.random.default_rng(1)
    w0, b0 = rng.normal(size=(6, 2 * len(columns))), rng.normal(size=6)
    w1, b1 = rng.normal(size=(len(ACTIONS), 6)), rng.normal(size=len(ACTIONS))
    path = save_mlp(tmp_path / "shared.npz", [(w0, b0), (w1, b1)],
                    {"hosts": hosts, "columns": columns, "architecture": "per-host"})
    policy = MlpPolicy.load(path)
    policy.check(hosts, columns)
    rows = observation["observation"].reshape(len(hosts), -1).astype(np.float64)
    context = rows.mean(axis=0)
    for host in (0, 5, len(hosts) - 1):
        expected = w1 @ np.tanh(w0 @ np.concatenate((rows[host], context)) + b0) + b1
        assert np.allclose(policy.logits(observation["observation"])[host], expected)


def test_stop_when_replaces_the_scenarios_stop_rules() -> None:
    """Default: the episode stops once containment held for the grace period; with
    ``stop_when=()`` the same episode runs to its duration."""
    scenario_rules = make(duration_s=30.0)
    _, _, infos = episode(scenario_rules, 3, RulePolicy(scenario_rules.layout.columns, ["any"]))
    assert infos[-1].get("stop_reason") == "contained" and len(infos) < 30
    to_duration = make(duration_s=30.0, stop_when=())
    _, _, infos = episode(to_duration, 3, RulePolicy(to_duration.layout.columns, ["any"]))
    assert "stop_reason" not in infos[-1] and len(infos) == 30
