"""A reduced, deterministic version of ``benchmarks/gym_vector_validation.py`` (issue 14): the
exact ``testbed/Defend-v0`` against a candidate vector env, fixed seeds on both sides, through
the benchmark's own functions (no second implementation).

- The exact env in a ``SyncVectorEnv`` against the exact env (independent seeds) is equivalent
  on robust metrics: the comparison passes what it must pass.
- A deliberately different candidate (the exact env with the worm starting 3 s later) is
  flagged: the comparison can fail.
- The vectorised env (``vector_entry_point``) is equivalent on the same robust metrics.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("gymnasium")

from testbed.gym.env import DefendEnv, scenario_of
from testbed.stats import DIFFERENT, EQUIVALENT

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCENARIO = str(REPO / "scenarios" / "smb-flat.yaml")
EPISODES = 80
EXACT_SEEDS = range(0, EPISODES)
CANDIDATE_SEEDS = range(500_000, 500_000 + EPISODES)
# Robust metrics: whole-outbreak or detection figures with little variance per episode under
# these policies (return and value lost swing by a crown jewel's 100 and need the full run).
ROBUST = {"no-op": ("alerted", "first alert (s)", "infected at 10 s"),
          "rule": ("infected at end", "alerted", "first alert (s)", "terminated early",
                   "termination time (s)")}


@pytest.fixture(scope="module")
def validation() -> ModuleType:
    benchmarks = str(REPO / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    return importlib.import_module("gym_vector_validation")


@pytest.fixture(scope="module")
def exact_env() -> DefendEnv:
    return DefendEnv(SCENARIO)


@pytest.fixture(scope="module")
def policies(validation: ModuleType, exact_env: DefendEnv) -> dict[str, Any]:
    rule = next(p for p in validation.baselines(exact_env.layout.columns, exact_env.detectors,
                                                exact_env.scenario.spec.response.rules)
                if isinstance(p, validation.RulePolicy))  # the scenario's own rule
    return {"no-op": lambda seed: validation.NoOpPolicy(), "rule": lambda seed: rule}


@pytest.fixture(scope="module")
def exact_episodes(validation: ModuleType, exact_env: DefendEnv,
                   policies: dict[str, Any]) -> dict[str, list[Any]]:
    layout = validation.Layout.of(exact_env)
    return {name: validation.run_exact(exact_env, layout, make, EXACT_SEEDS, [])
            for name, make in policies.items()}


def _verdicts(validation: ModuleType, exact: list[Any], candidate: list[Any]) -> dict[str, Any]:
    return {row.metric: row for row in validation.compare(exact, candidate)}


def _candidate(validation: ModuleType, factory: Any, env_kwargs: dict[str, Any],
               exact_env: DefendEnv, make: Any) -> list[Any]:
    layout = validation.Layout.of(exact_env)
    return validation.run_candidate(factory, env_kwargs, layout, make, CANDIDATE_SEEDS,
                                    EPISODES, [])


def test_recorder_reads_the_episode_back(validation: ModuleType) -> None:
    # two hosts; columns: alerts, first-contact failures, fan-out; counters decay by half
    layout = validation.Layout(alert_columns=(0,), failures_column=1, fanout_column=2,
                               width=3, hosts=2, decay=0.5)
    recorder = validation.EpisodeRecorder(7, layout)

    def features(*counts: tuple[float, float, float]) -> list[float]:
        return [math.log1p(c) for row in counts for c in row]

    recorder.start(features((0, 0, 1), (0, 0, 0)))                  # one contact at time 0
    base = {"value_lost": 0.0, "benign_cut_off": 1, "actions": 0}
    # step 1: 0.5 left of the first contact plus 2 new ones, one of them failed
    assert recorder.step(features((0, 1, 2.5), (0, 0, 0)), -1.0, False, False,
                         {**base, "time": 1.0, "infected_total": 1}) is None
    # step 2: the second host's first alert; the first host's counters decay untouched
    episode = recorder.step(features((0, 0.5, 1.25), (1, 0, 0)), -2.0, True, False,
                            {**base, "time": 2.5, "infected_total": 3, "stop_reason": "x"})
    assert episode is not None
    assert episode.first_alert_s == 2.5
    assert (episode.alerts_seen, episode.first_contacts_seen,
            episode.failed_first_contacts_seen) == (1, 3, 1)
    assert episode.infected_at == (3, 3, 3)          # ended at 2.5 s: the last count carries
    assert episode.benign_cut_off_s == pytest.approx(2.5)  # one host over 1 s then 1.5 s
    assert episode.terminated and episode.stop_reason == "x" and episode.steps == 2


@pytest.mark.parametrize("policy", ["no-op", "rule"])
@pytest.mark.parametrize("candidate", ["sync_exact_candidate", "vector_candidate"],
                         ids=["exact-env-against-itself", "vector-env"])
def test_candidate_is_equivalent_on_robust_metrics(validation: ModuleType,
                                                   exact_env: DefendEnv,
                                                   policies: dict[str, Any],
                                                   exact_episodes: dict[str, list[Any]],
                                                   candidate: str, policy: str) -> None:
    """The exact env against itself (the comparison passes what it must pass) and the
    vectorised env: equivalent on the robust metrics."""
    episodes = _candidate(validation, getattr(validation, candidate), {"scenario": SCENARIO},
                          exact_env, policies[policy])
    rows = _verdicts(validation, exact_episodes[policy], episodes)
    assert {m: rows[m].verdict for m in ROBUST[policy]} == dict.fromkeys(ROBUST[policy],
                                                                          EQUIVALENT)


def test_a_later_worm_is_flagged(validation: ModuleType, exact_env: DefendEnv,
                                policies: dict[str, Any],
                                exact_episodes: dict[str, list[Any]]) -> None:
    # The exact env with the worm starting 3 s later: everything else equal, so the first alert
    # comes ~3 s later (a worm 4x as fast shows it too, but costs a minute of CPU to simulate).
    scenario = scenario_of(SCENARIO)
    worm = scenario.spec.worm.model_copy(update={"start_s": scenario.spec.worm.start_s + 3.0})
    later = dataclasses.replace(scenario, spec=scenario.spec.model_copy(update={"worm": worm}))
    candidate = _candidate(validation, validation.sync_exact_candidate, {"scenario": later},
                           exact_env, policies["no-op"])
    rows = _verdicts(validation, exact_episodes["no-op"], candidate)
    first_alert = rows["first alert (s)"]
    assert first_alert.verdict == DIFFERENT
    assert first_alert.difference == pytest.approx(3.0, abs=0.5)
    assert rows["alerted"].verdict == EQUIVALENT  # what did not change still passes
