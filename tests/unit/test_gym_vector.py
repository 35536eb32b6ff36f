"""testbed.gym.vector: the vectorised Defend-v0 (make_vec, spaces, seeding, autoreset, masks,
containment landing, the domain's refusals, no ground truth in the observation).

Its equivalence in distribution with the exact environment is benchmarks/
gym_vector_validation.py's (many episodes, stated margins), not these tests'."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from extras_support import require_extra

gymnasium = require_extra("gymnasium")

import testbed.gym  # noqa: E402,F401  (registers testbed/Defend-v0 and its vector entry point)
from testbed.gym.batched import VectorDomainError  # noqa: E402
from testbed.gym.env import DefendEnv  # noqa: E402
from testbed.gym.observation import BLOCK, QUARANTINE, RELEASE  # noqa: E402
from testbed.gym.vector import DefendVectorEnv  # noqa: E402
from testbed.model import load_scenario  # noqa: E402
from testbed.model.load_scenario import Scenario  # noqa: E402

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "smb-flat.yaml"
HOSTS = 28


def make_vec(num_envs: int = 8, **kwargs: object) -> DefendVectorEnv:
    envs = gymnasium.make_vec("testbed/Defend-v0", num_envs=num_envs,
                              vectorization_mode="vector_entry_point",
                              scenario=kwargs.pop("scenario", SCENARIO), **kwargs)
    assert isinstance(envs, DefendVectorEnv)
    return envs


def variant(**spec_updates: object) -> Scenario:
    scenario = load_scenario(SCENARIO)
    return dataclasses.replace(scenario, spec=scenario.spec.model_copy(update=spec_updates))


def noop(envs: DefendVectorEnv) -> np.ndarray:
    return np.zeros((envs.num_envs, HOSTS), np.int64)


def test_make_vec_returns_it_with_the_exact_envs_spaces() -> None:
    envs = make_vec(4)
    exact = DefendEnv(SCENARIO)
    assert envs.single_observation_space == exact.observation_space
    assert envs.single_action_space == exact.action_space
    assert envs.layout == exact.layout
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    observation, info = envs.reset(seed=0)
    assert observation in envs.observation_space
    first, exact_first = observation["observation"][0], exact.reset(seed=0)[0]["observation"]
    np.testing.assert_array_equal(first, exact_first)  # the static columns, nothing seen yet
    observation, rewards, terminated, truncated, info = envs.step(noop(envs))
    assert observation in envs.observation_space
    assert rewards.shape == terminated.shape == truncated.shape == (4,)
    for key in ("time", "value_lost", "benign_cut_off", "actions", "infected_total",
                "stop_reason"):
        assert len(info[key]) == 4 and f"_{key}" in info
    assert info["stop_reason"].dtype == object
    np.testing.assert_allclose(info["time"], 1.0)


def run(envs: DefendVectorEnv, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    observation, _ = envs.reset(seed=seed)
    actions = np.random.default_rng(7)
    seen, rewards = [observation["observation"]], []
    for _ in range(steps):
        observation, reward, _, _, _ = envs.step(actions.integers(0, 4, (envs.num_envs,
                                                                         HOSTS)))
        seen.append(observation["observation"])
        rewards.append(reward)
    return np.stack(seen), np.stack(rewards)


def test_seeded_batches_are_reproducible_and_seeds_differ() -> None:
    envs = make_vec(8)
    first = run(envs, 3, 12)
    again = run(make_vec(8), 3, 12)
    other = run(envs, 4, 12)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_next_step_autoreset_ignores_the_action_and_restarts() -> None:
    envs = make_vec(3, duration_s=2.0, stop_when=())
    envs.reset(seed=0)
    envs.step(noop(envs))
    _, _, terminated, truncated, info = envs.step(noop(envs))
    assert truncated.all() and not terminated.any()
    np.testing.assert_allclose(info["time"], 2.0)
    quarantine_all = np.full((3, HOSTS), QUARANTINE)
    observation, rewards, terminated, truncated, info = envs.step(quarantine_all)
    assert not (terminated | truncated).any()
    np.testing.assert_array_equal(rewards, 0.0)  # the reset step: no reward, action ignored
    np.testing.assert_allclose(info["time"], 0.0)
    assert not info["_value_lost"].any()
    assert not envs.engine.containment.quarantined.any()
    np.testing.assert_array_equal(observation["observation"],
                                  envs.reset(seed=0)[0]["observation"])
    _, rewards, _, _, info = envs.step(quarantine_all)  # and the next step acts again
    assert (info["actions"] == HOSTS).all() and (rewards < 0).all()


def test_same_step_autoreset_hands_back_the_final_observation() -> None:
    envs = make_vec(2, duration_s=1.0, stop_when=(), autoreset_mode="SameStep")
    envs.reset(seed=0)
    observation, _, _, truncated, info = envs.step(np.full((2, HOSTS), QUARANTINE))
    assert truncated.all() and info["_final_obs"].all()
    final = info["final_obs"][0]["observation"].reshape(HOSTS, -1)
    quarantined = envs.layout.columns.index("quarantined")
    assert (final[:, quarantined] == 1).all()  # the episode's last view
    assert (observation["observation"].reshape(2, HOSTS, -1)[:, :, quarantined] == 0).all()
    assert info["final_info"][1]["actions"] == HOSTS


def test_masked_actions_are_no_ops() -> None:
    envs = make_vec(2)
    envs.reset(seed=0)
    action = noop(envs)
    action[:, 0] = RELEASE  # nothing to release: masked
    _, rewards, _, _, info = envs.step(action)
    assert (info["actions"] == 0).all() and (rewards > -0.1).all()  # no action cost
    action[:, 0] = QUARANTINE
    observation, _, _, _, info = envs.step(action)
    assert (info["actions"] == 1).all()
    mask = observation["mask"].reshape(2, HOSTS, 4)
    assert (mask[:, 0] == [1, 0, 1, 0]).all()  # quarantined: no quarantine, no block
    action[:, 0] = BLOCK  # masked now
    _, _, _, _, info = envs.step(action)
    assert (info["actions"] == 0).all()
    assert not envs.engine.containment.blocked[:, 0].any()
    assert envs.engine.containment.quarantined[:, 0].all()


def test_quarantine_stops_infections_from_the_moment_it_lands() -> None:
    """Hand-computed: the patient zero's probe to a vulnerable neighbour is accepted until its
    quarantine lands at t = 0.5 + enforce_quarantine_s, and refused from then on."""
    envs = make_vec(1)
    envs.reset(seed=0)
    engine = envs.engine
    row = {name: i for i, name in enumerate(engine.names)}
    printer, kiosk = row["lobby-printer"], row["lobby-kiosk"]
    exploit = next(x for x, (vuln, _, _, _) in enumerate(engine.exploits)
                   if vuln == "MOCK-SMB-1")
    assert engine.vulnerable[kiosk, exploit]
    engine.now[:] = 0.5
    no_action = np.zeros((1, HOSTS), bool)
    quarantine = no_action.copy()
    quarantine[0, printer] = True
    engine.act(np.ones(1, bool), quarantine, no_action, no_action)
    lands = 0.5 + engine.timing.enforce_quarantine_s
    when = np.array([0.4999, lands - 1e-7, lands, lands + 0.2])
    source = np.full(4, printer)  # episode 0
    slot = np.full(4, engine.grid.slot_of[kiosk])
    accepted = engine._accepted(source, slot, np.full(4, exploit), when)
    assert accepted.tolist() == [True, True, False, False]
    # the other way round too: a quarantined target takes no exploit
    accepted = engine._accepted(np.full(1, kiosk), np.full(1, engine.grid.slot_of[printer]),
                                np.full(1, exploit), np.array([lands + 0.1]))
    assert not engine.vulnerable[printer, exploit] or not accepted.any()


def test_a_quarantined_patient_zero_infects_nobody() -> None:
    envs = make_vec(16, duration_s=20.0, stop_when=())
    envs.reset(seed=1)
    action = noop(envs)
    action[:, envs.layout.hosts.index("lobby-printer")] = QUARANTINE
    envs.step(action)  # lands long before the worm wakes at 3 s
    for _ in range(19):
        _, _, _, _, info = envs.step(noop(envs))
    assert (info["infected_total"] == 1).all()
    free = make_vec(16, duration_s=20.0, stop_when=())
    free.reset(seed=1)
    for _ in range(20):
        _, _, _, _, info = free.step(noop(free))
    assert (info["infected_total"] > 1).any()  # the counterpart spreads


@pytest.mark.parametrize(("update", "words"), [
    ("hitlist", ("worm profile 'hitlist'", "worm.profile")),
    ("darknet", ("detector 'darknet'", "detectors[2]")),
])
def test_out_of_domain_scenarios_are_refused_clearly(update: str,
                                                      words: tuple[str, str]) -> None:
    scenario = load_scenario(SCENARIO)
    if update == "hitlist":
        changed = variant(worm=scenario.spec.worm.model_copy(update={"profile": "hitlist"}))
    else:
        extra = scenario.spec.detectors[0].model_copy(update={"name": "darknet", "params": {}})
        changed = variant(detectors=[*scenario.spec.detectors, extra])
    with pytest.raises(VectorDomainError) as caught:
        DefendVectorEnv(changed, num_envs=2)
    message = str(caught.value)
    for word in words:
        assert word in message
    assert "testbed/Defend-v0" in caught.value.diagnostics[0].hint


def test_observation_reads_no_ground_truth() -> None:
    """The observation is a function of the sensor side and the containment: scrambling the
    ground truth (who is infected, the worms' state) leaves it unchanged."""
    envs = make_vec(8)
    envs.reset(seed=2)
    for _ in range(8):
        envs.step(np.random.default_rng(1).integers(0, 4, (8, HOSTS)))
    before = envs._observe()
    truth = envs.engine.truth
    rng = np.random.default_rng(0)
    for value in vars(truth).values():
        if isinstance(value, np.ndarray):
            if value.dtype == bool:
                value[...] = rng.random(value.shape) < 0.5
            else:
                value[...] = rng.integers(0, 100, value.shape)
    after = envs._observe()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_dark_sensors_leave_the_observation_still_while_the_worm_spreads() -> None:
    scenario = load_scenario(SCENARIO)
    dark = variant(monitoring=scenario.spec.monitoring.model_copy(update={"segments": []}))
    envs = make_vec(8, scenario=dark, duration_s=30.0, stop_when=())
    observation, _ = envs.reset(seed=0)
    start = observation["observation"].copy()
    total = 0.0
    for _ in range(30):
        observation, rewards, _, _, info = envs.step(noop(envs))
        total += rewards.sum()
        np.testing.assert_array_equal(observation["observation"], start)
    assert (info["infected_total"] > 1).any() and total < 0  # the reward saw the outbreak


def test_no_detectors_no_contact_columns() -> None:
    envs = make_vec(8, scenario=variant(detectors=[]), duration_s=30.0, stop_when=(),
                    contact_features=False)
    assert not any(c.startswith("alerts:") for c in envs.layout.columns)
    observation, _ = envs.reset(seed=0)
    start = observation["observation"].copy()
    for _ in range(30):
        observation, _, _, _, info = envs.step(noop(envs))
    np.testing.assert_array_equal(observation["observation"], start)
    assert (info["infected_total"] > 1).any()


def test_stop_rules_terminate_with_their_reason() -> None:
    """Quarantining the patient zero before it wakes: contained at the first check after the
    wake (3.25 s), the run ends grace_s (3 s) later, as the exact engine ends it."""
    envs = make_vec(4)
    envs.reset(seed=0)
    action = noop(envs)
    action[:, envs.layout.hosts.index("lobby-printer")] = QUARANTINE
    envs.step(action)
    for _ in range(10):
        _, _, terminated, _, info = envs.step(noop(envs))
        if terminated.any():
            break
    assert terminated.all()
    assert list(info["stop_reason"]) == ["contained"] * 4
    np.testing.assert_allclose(info["time"], 6.25)


def test_patient_zeros_are_drawn_and_forced_as_in_the_exact_env() -> None:
    envs = make_vec(64, patient_zeros=("pc-1", "pc-2", "door-camera"))
    envs.reset(seed=0)
    names = np.array(envs.layout.hosts)
    drawn = {str(names[row][0]) for row in envs.engine.truth.origin}
    assert drawn == {"pc-1", "pc-2", "door-camera"}
    envs.reset(seed=0, options={"patient_zero": "pc-9"})
    assert envs.engine.truth.origin[:, envs.layout.hosts.index("pc-9")].all()
    assert envs.engine.truth.origin.sum() == 64


def test_disabled_autoreset_resets_only_the_masked_episodes() -> None:
    envs = make_vec(3, autoreset_mode="Disabled", duration_s=2.0, stop_when=())
    envs.reset(seed=0)
    for _ in range(2):
        _, _, _, truncated, _ = envs.step(noop(envs))
    assert truncated.all()
    _, rewards, _, truncated, info = envs.step(noop(envs))  # nothing left to run
    assert not truncated.any() and (rewards == 0).all() and not info["_value_lost"].any()
    mask = np.array([False, True, False])
    _, info = envs.reset(options={"reset_mask": mask})
    np.testing.assert_allclose(info["time"], [2.0, 0.0, 2.0])
    _, _, _, _, info = envs.step(noop(envs))
    assert info["_value_lost"].tolist() == [False, True, False]
