"""Benchmark: is the vectorised ``testbed/Defend-v0`` equivalent in distribution to the exact one?
(issue 14)

The vectorised environment (``testbed.gym.vector.DefendVectorEnv``, the ``vector_entry_point``
of ``testbed/Defend-v0``) steps many episodes at once in 50 ms slices: distributed like the
exact discrete-event engine (``testbed.gym.env.DefendEnv``), not draw-for-draw identical. A
learner may be trained on it only once it is shown equivalent to the exact one. This script is
that check, in the manner of ``benchmarks/sim_vs_emulation.py``: margins fixed in advance (the
constants below, printed before anything runs), a two one-sided test (TOST) per (cell, metric),
verdicts equivalent / different / inconclusive. A cell that fails is reported, never tuned away.

Run: ``python benchmarks/gym_vector_validation.py [--episodes 300] [--scenarios ...]
[--policies no-op rule sparse-random uniform-random] [--candidate vector|sync-exact]
[--run-to-duration] [--patient-zero scenario|varied] [--policy-file FILE.npz]
[--seed-offset N] [--batch N]
[--out runs/gym-vector-validation]``

- Cells: scenarios (default smb-flat) x policies: ``no-op``; ``rule``, the best rule-based
  baseline of ``testbed.gym.policies.baselines`` (the best mean return over RULE_SELECTION
  held-out seeds of the exact env, ``testbed.gym.leaderboard.leaderboard``); ``sparse-random``
  (``RandomPolicy``: 5 % of hosts act per step); ``uniform-random`` (every host draws one of the
  four actions uniformly per step, as ``action_space.sample()``; masked choices are no-ops);
  with ``--policy-file``, also ``learned``: a trained ``MlpPolicy`` (deterministic), the check
  that a defender trained on one environment meets the same episodes on the other.
  Random policies are seeded per episode with the episode's seed.
- Sides: the exact env, ``DefendEnv``, one episode after another with ``reset(seed=s)`` for
  ``s`` from EXACT_SEED_BASE; the candidate through ``gymnasium.make_vec`` (``--candidate
  vector``: ``vectorization_mode="vector_entry_point"``; ``sync-exact``: a ``SyncVectorEnv`` of
  exact envs, the stand-in and self-test, which must come out equivalent), ``num_envs`` episodes
  at a time (``--batch``), reset with the list of seeds from CANDIDATE_SEED_BASE (a sync env
  seeds each sub-env with its own; the vector env folds the list into one batch seed), each
  sub-env run to its first termination or truncation (what autoreset starts after it is
  ignored: collecting the first N episodes to finish would over-sample short ones). The samples
  are not paired (different random streams), so the tests are two-sample ones.
  ``--run-to-duration`` passes ``stop_when=()`` to both: every episode runs the whole outbreak.
  ``--patient-zero varied`` passes ``patient_zeros=plausible_patient_zeros(topology)`` to both:
  each episode draws its patient zero among the launch pads and workstations, as
  ``benchmarks/train_defender.py`` trains (the scenario's one patient zero fixes when the first
  alert can come; varied, that metric discriminates).
- Per-episode metrics: return; value lost; benign host-seconds cut off; infected total at 10,
  20 and 30 s (the ``infected_total`` of the first step ending at or after that time; an episode
  that ended before keeps its last value) and at the end; alerted (proportion: some alert column
  of an observation became > 0) and first alert time (the end time of the first step whose
  observation has an alert column > 0, over alerted episodes: computed from the observations,
  the same way on both sides); terminated before the duration (proportion) and the termination
  time over terminated episodes; actions taken; and what the observation showed, read back
  from its decayed log1p counters (``EpisodeRecorder``): alerts, first contacts (fan-out) and
  failed first contacts per episode, the policy's inputs (margin kind "counts", added with
  its margin after the first two runs of 2026-11-30 and before any run compared them).
- Tests (``testbed.stats``): numbers, Welch's two one-sided t tests on the difference of means
  (candidate - exact); proportions, two one-sided z tests on the difference of proportions with
  Agresti & Caffo's adjustment. TOST p is the larger one-sided p; "equivalent" when the 90 %
  interval lies inside the margin, "different" when it lies wholly outside it, "inconclusive"
  otherwise. Margins scale with the exact side's mean (the reference). Also, for information
  only, the two-sample Kolmogorov-Smirnov distance D of each numeric metric and its p; a KS p
  below KS_FLAG_P is flagged "shape" (the distributions' shapes differ detectably even when
  the means agree): stated here in advance, and it never changes a verdict. No correction for
  multiple tests (as sim_vs_emulation): each verdict stands for its own cell.
- Output: a table per scenario (policy x metric: exact mean, candidate mean, difference, margin,
  90 % interval, TOST p, verdict, KS D) in ``<out>/gym-vector-validation.md`` and ``.json``
  (with every episode's metrics), also printed; progress and elapsed time on stderr. Ctrl-C (or
  SIGTERM) stops and writes the tables of what was done.
No figure is asserted: benchmarks print. tests/unit/test_gym_vector_validation.py runs a reduced
version through these functions.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gymnasium  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

import testbed.gym  # noqa: E402  (registers testbed/Defend-v0)
from testbed.errors import TestbedError  # noqa: E402
from testbed.gym.env import DefendEnv, plausible_patient_zeros, scenario_of  # noqa: E402
from testbed.gym.leaderboard import HELD_OUT_FROM, leaderboard  # noqa: E402
from testbed.gym.observation import ACTIONS  # noqa: E402
from testbed.gym.policies import (  # noqa: E402
    MlpPolicy,
    NoOpPolicy,
    Policy,
    RandomPolicy,
    RulePolicy,
    baselines,
)
from testbed.model.load_scenario import scenario_path  # noqa: E402
from testbed.runner.signals import sigterm_as_interrupt  # noqa: E402
from testbed.stats import (  # noqa: E402
    INCONCLUSIVE,
    format_number,
    format_p,
    proportions_tost,
    welch_tost,
)

# ---- margins, fixed before any run (issue 14) ---------------------------------------------------
HOSTS_MARGIN_MIN = 1.0          # hosts (infected totals, actions): max(1, 10 % of the exact mean)
HOSTS_MARGIN_FRACTION = 0.10
TIME_MARGIN_MIN_S = 0.5         # times: max(0.5 s, 15 % of the exact mean)
TIME_MARGIN_FRACTION = 0.15
PROPORTION_MARGIN = 0.15        # proportions: 0.15 absolute
REWARD_MARGIN_MIN = 1.0         # return and value lost: max(1, 10 % of the exact |mean|); 1 is
REWARD_MARGIN_FRACTION = 0.10   #   the value of the cheapest host of smb-flat
CUTOFF_MARGIN_MIN_S = 2.0       # benign host-seconds cut off: max(2, 10 % of the exact mean);
CUTOFF_MARGIN_FRACTION = 0.10   #   2 host-seconds cost 1 reward unit at cutoff_cost 0.5
COUNTS_MARGIN_MIN = 1.0         # counts the observation saw (alerts, first contacts, failed
COUNTS_MARGIN_FRACTION = 0.10   #   ones) per episode: max(1, 10 % of the exact mean)
ALPHA = 0.05                    # each one-sided test; the TOST is then a 90 % interval
KS_FLAG_P = 0.01                # information only: KS p below it flags "shape"; no verdict

INFECTED_AT_S = (10.0, 20.0, 30.0)
DEFAULT_SCENARIOS = ("scenarios/smb-flat.yaml",)
POLICY_NAMES = ("no-op", "rule", "sparse-random", "uniform-random")
CANDIDATES = ("vector", "sync-exact")
EXACT_SEED_BASE = 0
CANDIDATE_SEED_BASE = 500_000   # another stream: the samples must be independent, not paired
RULE_SELECTION = 20             # held-out seeds the best rule is chosen on (exact env)
SYNC_BATCH = 50                 # sync-exact: exact envs held at once
ENV_ID = testbed.gym.ENV_ID

NO_DATA = "no data"
EPISODES_SHOWN_MAX = 20_000     # beyond it, "episodes to decide" only says "more than"


def margins_text() -> str:
    return (f"margins (fixed in advance): hosts max({HOSTS_MARGIN_MIN:g}, "
            f"{HOSTS_MARGIN_FRACTION:.0%} of the exact mean); times max({TIME_MARGIN_MIN_S:g} s, "
            f"{TIME_MARGIN_FRACTION:.0%}); proportions {PROPORTION_MARGIN:g} absolute; return "
            f"and value lost max({REWARD_MARGIN_MIN:g}, {REWARD_MARGIN_FRACTION:.0%} of |mean|); "
            f"benign host-seconds max({CUTOFF_MARGIN_MIN_S:g}, {CUTOFF_MARGIN_FRACTION:.0%}); "
            f"counts seen max({COUNTS_MARGIN_MIN:g}, {COUNTS_MARGIN_FRACTION:.0%}); "
            f"alpha {ALPHA:g} per one-sided test (90 % interval); KS distance for information "
            f"only (flag 'shape' when its p < {KS_FLAG_P:g}, no verdict)")


def margin_for(kind: str, exact_mean: float) -> float:
    """The margin of a metric of ``kind`` given the exact side's mean (the reference)."""
    if kind == "proportion":
        return PROPORTION_MARGIN
    minimum, fraction = {"hosts": (HOSTS_MARGIN_MIN, HOSTS_MARGIN_FRACTION),
                         "time": (TIME_MARGIN_MIN_S, TIME_MARGIN_FRACTION),
                         "reward": (REWARD_MARGIN_MIN, REWARD_MARGIN_FRACTION),
                         "host-seconds": (CUTOFF_MARGIN_MIN_S, CUTOFF_MARGIN_FRACTION),
                         "counts": (COUNTS_MARGIN_MIN, COUNTS_MARGIN_FRACTION)}[kind]
    return max(minimum, fraction * abs(exact_mean))


# ---- episodes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Episode:
    """One episode's metrics (what the tests compare)."""

    seed: int
    steps: int
    end_s: float
    episode_return: float
    value_lost: float
    benign_cut_off_s: float            # benign host-seconds cut off
    infected_at: tuple[int, ...]       # at INFECTED_AT_S
    infected_final: int
    first_alert_s: float | None        # None: no alert in the episode
    terminated: bool                   # ended by a stop rule before the duration
    actions: int
    stop_reason: str | None
    alerts_seen: int                   # counts recovered from the observation (below)
    first_contacts_seen: int
    failed_first_contacts_seen: int


@dataclass(frozen=True)
class Layout:
    """Where things are in a flat observation (the same on both sides) and the decay of its
    counters: enough to read the observation back into per-step counts."""

    alert_columns: tuple[int, ...]
    failures_column: int
    fanout_column: int
    width: int
    hosts: int
    decay: float

    @classmethod
    def of(cls, env: DefendEnv) -> Layout:
        columns = env.layout.columns
        return cls(tuple(i for i, c in enumerate(columns) if c.startswith("alerts:")),
                   columns.index("first-contact-failures"), columns.index("fan-out"),
                   len(columns), len(env.layout.hosts), env.builder.decay)


class EpisodeRecorder:
    """Folds one episode's steps into an ``Episode``; fed the same way on both sides.

    What the observation saw is read back from it: a counter column holds log1p(c) with
    c_t = decay * c_(t-1) + n_t, so the step's count is n_t = expm1(f_t) - decay * expm1(f_(t-1))
    (rounded: counts are whole), summed over hosts and steps: alerts (every alert column),
    first contacts (fan-out) and failed first contacts. ``start`` takes the reset observation
    (a reset may already fold what happened at time 0)."""

    def __init__(self, seed: int, layout: Layout) -> None:
        self.seed = seed
        self.layout = layout
        self._counter_columns = [*layout.alert_columns, layout.fanout_column,
                                 layout.failures_column]
        self._counts = np.zeros(len(self._counter_columns))
        self._previous = np.zeros((layout.hosts, len(self._counter_columns)))
        self._steps = 0
        self._return = self._value_lost = self._cut = 0.0
        self._actions = 0
        self._previous_time = 0.0
        self._infected = 0
        self._infected_at: list[int | None] = [None] * len(INFECTED_AT_S)
        self._first_alert: float | None = None

    def _counters(self, features: np.ndarray) -> np.ndarray:
        rows = np.asarray(features, np.float64).reshape(-1, self.layout.width)
        return np.expm1(rows[:, self._counter_columns])

    def start(self, features: np.ndarray) -> None:
        """The reset observation."""
        self._previous = self._counters(features)
        self._counts += np.rint(self._previous).sum(axis=0)

    def step(self, features: np.ndarray, reward: float, terminated: bool, truncated: bool,
             info: Mapping[str, Any]) -> Episode | None:
        """One step (its observation's features, reward, flags and info); the ``Episode`` when
        it was the last."""
        now = float(info["time"])
        self._steps += 1
        self._return += float(reward)
        self._value_lost += float(info["value_lost"])
        self._cut += float(info["benign_cut_off"]) * (now - self._previous_time)
        self._previous_time = now
        self._actions += int(info["actions"])
        self._infected = int(info["infected_total"])
        for index, at in enumerate(INFECTED_AT_S):
            if self._infected_at[index] is None and now >= at - 1e-9:
                self._infected_at[index] = self._infected
        counters = self._counters(features)
        self._counts += np.rint(counters - self.layout.decay * self._previous).sum(axis=0)
        self._previous = counters
        alerts = len(self.layout.alert_columns)
        if self._first_alert is None and (counters[:, :alerts] > 0).any():
            self._first_alert = now
        if not (terminated or truncated):
            return None
        reason = info.get("stop_reason") if terminated else None
        return Episode(
            seed=self.seed, steps=self._steps, end_s=now, episode_return=self._return,
            value_lost=self._value_lost, benign_cut_off_s=self._cut,
            infected_at=tuple(self._infected if v is None else v for v in self._infected_at),
            infected_final=self._infected, first_alert_s=self._first_alert,
            terminated=bool(terminated), actions=self._actions,
            stop_reason=None if reason is None or reason == "" else str(reason),
            alerts_seen=int(self._counts[:alerts].sum()),
            first_contacts_seen=int(self._counts[alerts]),
            failed_first_contacts_seen=int(self._counts[alerts + 1]))


class ValidationError(TestbedError):
    """A validation that cannot run as asked (unknown policy or candidate, no vector env)."""


# ---- policies -----------------------------------------------------------------------------------

@dataclass
class UniformRandomPolicy:
    """Every host one of the four actions, uniformly (``action_space.sample()``; the env treats
    masked choices as no-ops)."""

    seed: int = 0
    name: str = "uniform-random"

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        hosts = observation["mask"].size // len(ACTIONS)
        return self._rng.integers(0, len(ACTIONS), hosts, dtype=np.int64)


PolicyFactory = Callable[[int], Policy]
"""A policy for the episode of a seed (random policies are seeded with it)."""


@dataclass(frozen=True)
class PolicySpec:
    name: str
    make: PolicyFactory
    detail: str = ""


def best_rule(env: DefendEnv, episodes: int = RULE_SELECTION) -> tuple[RulePolicy, str]:
    """The rule baseline with the best mean return over ``episodes`` held-out seeds of the exact
    env (``testbed.gym.leaderboard``), and a line saying so."""
    rules = [p for p in baselines(env.layout.columns, env.detectors,
                                  env.scenario.spec.response.rules)
             if isinstance(p, RulePolicy)]
    board = leaderboard(env, rules, list(range(HELD_OUT_FROM, HELD_OUT_FROM + episodes)))
    by_name = {rule.name: rule for rule in rules}
    text = ", ".join(f"{entry.policy} {statistics.fmean(entry.returns):.2f}" for entry in board)
    return (by_name[board[0].policy],
            f"best of {len(rules)} rules on {episodes} held-out seeds: {text}")


def _constant(policy: Policy) -> PolicyFactory:
    """The same (stateless) policy for every episode."""
    return lambda seed: policy


def learned_spec(path: Path, env: DefendEnv) -> PolicySpec:
    """A trained policy file (``MlpPolicy``, deterministic) as the cell ``learned``; it must have
    been trained on this scenario's hosts and columns, with the first-contact columns the
    environment fills (``contact_features``)."""
    policy = MlpPolicy.load(path)
    policy.check(env.layout.hosts, env.layout.columns)
    if not policy.contact_features:
        raise ValidationError(f"{path} was trained without first-contact features "
                              "(--alerts-only); this benchmark's environments fill them")
    return PolicySpec("learned", _constant(policy), f"MlpPolicy {path}")


def policy_specs(names: Sequence[str], env: DefendEnv,
                 policy_file: Path | None = None) -> list[PolicySpec]:
    specs = [] if policy_file is None else [learned_spec(policy_file, env)]
    for name in names:
        if name == "no-op":
            specs.append(PolicySpec(name, lambda seed: NoOpPolicy()))
        elif name == "rule":
            rule, detail = best_rule(env)
            specs.append(PolicySpec(name, _constant(rule), f"{rule.name} ({detail})"))
        elif name == "sparse-random":
            specs.append(PolicySpec(name, lambda seed: RandomPolicy(seed=seed),
                                    "RandomPolicy, 5 % of hosts act per step"))
        elif name == "uniform-random":
            specs.append(PolicySpec(name, lambda seed: UniformRandomPolicy(seed=seed)))
        else:
            raise ValidationError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)})")
    return specs


# ---- the two sides ------------------------------------------------------------------------------

Tick = Callable[[int], None]
"""Called with the number of episodes finished so far (progress)."""


def run_exact(env: DefendEnv, layout: Layout, make_policy: PolicyFactory, seeds: Sequence[int],
              into: list[Episode], tick: Tick | None = None) -> list[Episode]:
    """Each seed's episode on the exact env, one after another, appended to ``into`` as it
    ends (so an interrupted side keeps what it finished)."""
    for seed in seeds:
        policy = make_policy(seed)
        recorder = EpisodeRecorder(seed, layout)
        observation, _ = env.reset(seed=seed)
        recorder.start(observation["observation"])
        while True:
            observation, reward, terminated, truncated, info = env.step(policy.act(observation))
            episode = recorder.step(observation["observation"], float(reward), terminated,
                                    truncated, info)
            if episode is not None:
                into.append(episode)
                break
        if tick is not None:
            tick(len(into))
    return into


CandidateFactory = Callable[..., Any]
"""``(num_envs, **env_kwargs) -> gymnasium.vector.VectorEnv``."""


def vector_candidate(num_envs: int, **env_kwargs: Any) -> Any:
    """The vectorised env, as a learner would make it."""
    return gymnasium.make_vec(ENV_ID, num_envs=num_envs,
                              vectorization_mode="vector_entry_point", **env_kwargs)


def sync_exact_candidate(num_envs: int, **env_kwargs: Any) -> Any:
    """Exact envs in a ``SyncVectorEnv``: the stand-in candidate and the self-test."""
    return gymnasium.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync",
                              **env_kwargs)


CANDIDATE_FACTORIES: dict[str, CandidateFactory] = {"vector": vector_candidate,
                                                    "sync-exact": sync_exact_candidate}


def _row(infos: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Sub-env ``index``'s info from a vector env's dict of arrays (keys it did not set, marked
    by ``_key`` False, left out)."""
    row = {}
    for key, values in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        present = infos.get(f"_{key}")
        if present is None or bool(present[index]):
            row[key] = values[index]
    return row


def run_candidate(factory: CandidateFactory, env_kwargs: Mapping[str, Any], layout: Layout,
                  make_policy: PolicyFactory, seeds: Sequence[int], batch: int,
                  into: list[Episode], tick: Tick | None = None) -> list[Episode]:
    """Each seed's episode on a vector env of ``batch`` sub-envs at a time: every sub-env reset
    with its own seed and run to its first end (later autoreset episodes are ignored)."""
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start:start + batch])
        envs = factory(len(chunk), **env_kwargs)
        try:
            same_step = (str(envs.metadata.get("autoreset_mode", "")).lower()
                         in ("autoresetmode.same_step", "samestep"))
            policies = [make_policy(seed) for seed in chunk]
            recorders = [EpisodeRecorder(seed, layout) for seed in chunk]
            observations, _ = envs.reset(seed=chunk)
            for i, recorder in enumerate(recorders):
                recorder.start(observations["observation"][i])
            active = np.ones(len(chunk), bool)
            finished: list[Episode | None] = [None] * len(chunk)
            while active.any():
                actions = np.zeros((len(chunk), layout.hosts), np.int64)
                for i in np.flatnonzero(active).tolist():
                    actions[i] = policies[i].act({key: value[i]
                                                  for key, value in observations.items()})
                observations, rewards, terminated, truncated, infos = envs.step(actions)
                for i in np.flatnonzero(active).tolist():
                    ended = bool(terminated[i] or truncated[i])
                    features = observations["observation"][i]
                    info = _row(infos, i)
                    if ended and same_step and "final_obs" in infos:
                        features = infos["final_obs"][i]["observation"]
                        info = _row(infos["final_info"], i)
                    episode = recorders[i].step(features, float(rewards[i]),
                                                bool(terminated[i]), bool(truncated[i]), info)
                    if episode is not None:
                        finished[i] = episode
                        active[i] = False
            into.extend(e for e in finished if e is not None)
        finally:
            envs.close()
        if tick is not None:
            tick(len(into))
    return into


# ---- comparisons --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    value: Callable[[Episode], float | bool | None]
    over: str = ""      # "over the episodes where ..." (None values are left out)


def _infected_at(index: int) -> Callable[[Episode], float]:
    return lambda episode: float(episode.infected_at[index])


def metrics() -> list[Metric]:
    found = [
        Metric("return", "reward", lambda e: e.episode_return),
        Metric("value lost", "reward", lambda e: e.value_lost),
        Metric("benign host-s cut off", "host-seconds", lambda e: e.benign_cut_off_s),
    ]
    for index, at in enumerate(INFECTED_AT_S):
        found.append(Metric(f"infected at {at:g} s", "hosts", _infected_at(index)))
    found += [
        Metric("infected at end", "hosts", lambda e: float(e.infected_final)),
        Metric("alerted", "proportion", lambda e: e.first_alert_s is not None),
        Metric("first alert (s)", "time", lambda e: e.first_alert_s, "alerted"),
        Metric("terminated early", "proportion", lambda e: e.terminated),
        Metric("termination time (s)", "time", lambda e: e.end_s if e.terminated else None,
               "terminated"),
        Metric("actions", "hosts", lambda e: float(e.actions)),
        Metric("alerts seen", "counts", lambda e: float(e.alerts_seen)),
        Metric("first contacts seen", "counts", lambda e: float(e.first_contacts_seen)),
        Metric("failed first contacts seen", "counts",
               lambda e: float(e.failed_first_contacts_seen)),
    ]
    return found


@dataclass(frozen=True)
class MetricComparison:
    """One (cell, metric) verdict."""

    metric: str
    kind: str
    test: str
    n_exact: int
    n_candidate: int
    exact_mean: float | None
    candidate_mean: float | None
    difference: float | None            # candidate - exact (raw means or rates)
    margin: float | None
    ci90: tuple[float, float] | None    # of the tested difference
    p_value: float | None
    verdict: str
    ks_distance: float | None = None
    ks_p: float | None = None
    note: str = ""
    # inconclusive: episodes per side at which the 90 % interval would fit inside the margin if
    # the measured difference and spread held (None: never, the difference is at or past it)
    episodes_to_decide: int | None = None

    @property
    def shape_flag(self) -> bool:
        return self.ks_p is not None and self.ks_p < KS_FLAG_P


def compare_metric(metric: Metric, exact: Sequence[Episode],
                   candidate: Sequence[Episode]) -> MetricComparison:
    exact_values = [v for v in (metric.value(e) for e in exact) if v is not None]
    candidate_values = [v for v in (metric.value(e) for e in candidate) if v is not None]
    note = (f"over the episodes where {metric.over} ({len(exact_values)}/{len(exact)} exact, "
            f"{len(candidate_values)}/{len(candidate)} candidate)" if metric.over else "")
    n_e, n_c = len(exact_values), len(candidate_values)
    mean_e = statistics.fmean(float(v) for v in exact_values) if n_e else None
    mean_c = statistics.fmean(float(v) for v in candidate_values) if n_c else None
    difference = mean_c - mean_e if mean_e is not None and mean_c is not None else None
    if metric.kind == "proportion":
        margin = PROPORTION_MARGIN
        result = proportions_tost(sum(map(bool, candidate_values)), n_c,
                                  sum(map(bool, exact_values)), n_e, margin, alpha=ALPHA)
        test = "two-proportion z TOST (Agresti-Caffo)"
        ks = None
    else:
        margin = margin_for(metric.kind, mean_e or 0.0)
        result = welch_tost([float(v) for v in candidate_values],
                            [float(v) for v in exact_values], margin, alpha=ALPHA)
        test = "Welch t TOST"
        ks = (scipy_stats.ks_2samp(candidate_values, exact_values, method="asymp")
              if n_e and n_c else None)
    if result is None:
        return MetricComparison(metric.name, metric.kind, test, n_e, n_c, mean_e, mean_c,
                                difference, margin, None, None, NO_DATA, note=note or
                                "too few episodes")
    needed = None
    if result.verdict == INCONCLUSIVE and abs(result.difference) < margin:
        # the interval's half-width shrinks as 1/sqrt(n): solve z * s * sqrt(2/n) = room
        spread_per_side = result.standard_error * math.sqrt(n_e * n_c / (n_e + n_c))
        room = margin - abs(result.difference)
        needed = math.ceil(2 * (statistics.NormalDist().inv_cdf(1 - ALPHA)
                                * spread_per_side / room) ** 2)
    return MetricComparison(
        metric.name, metric.kind, test, n_e, n_c, mean_e, mean_c, difference, margin,
        (result.low, result.high), result.p_value, result.verdict,
        None if ks is None else float(ks.statistic), None if ks is None else float(ks.pvalue),
        note, needed)


def compare(exact: Sequence[Episode], candidate: Sequence[Episode]) -> list[MetricComparison]:
    """Every metric of one cell."""
    return [compare_metric(metric, exact, candidate) for metric in metrics()]


# ---- tables -------------------------------------------------------------------------------------

@dataclass
class Cell:
    scenario: str
    policy: str
    detail: str = ""
    exact: list[Episode] = field(default_factory=list)
    candidate: list[Episode] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def comparisons(self) -> list[MetricComparison]:
        return compare(self.exact, self.candidate)


_number = format_number
_p = format_p


def _verdict_text(row: MetricComparison) -> str:
    if row.verdict != INCONCLUSIVE:
        return row.verdict
    if row.episodes_to_decide is None:
        return "inconclusive (measured difference at or past the margin)"
    if row.episodes_to_decide > EPISODES_SHOWN_MAX:
        return f"inconclusive (> {EPISODES_SHOWN_MAX:,} episodes/side to decide)"
    return f"inconclusive (~{row.episodes_to_decide:,} episodes/side to decide)"


def markdown(cells: Sequence[Cell], header: str) -> str:
    lines = [header, ""]
    counts: dict[str, int] = {}
    for scenario in dict.fromkeys(cell.scenario for cell in cells):
        lines += [f"### {scenario}", "",
                  "| policy | metric | n exact / cand | exact mean | cand mean | difference | "
                  "margin | 90 % CI | TOST p | verdict | KS D |",
                  "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|"]
        for cell in (c for c in cells if c.scenario == scenario):
            for row in cell.comparisons():
                counts[row.verdict] = counts.get(row.verdict, 0) + 1
                ci = "–" if row.ci90 is None else f"[{row.ci90[0]:.2f}, {row.ci90[1]:.2f}]"
                ks = "–" if row.ks_distance is None else (
                    f"{row.ks_distance:.3f}" + (" shape" if row.shape_flag else ""))
                lines.append(
                    f"| {cell.policy} | {row.metric} | {row.n_exact} / {row.n_candidate} | "
                    f"{_number(row.exact_mean)} | {_number(row.candidate_mean)} | "
                    f"{_number(row.difference)} | {_number(row.margin)} | {ci} | "
                    f"{_p(row.p_value)} | {_verdict_text(row)} | {ks} |")
        lines.append("")
        for cell in (c for c in cells if c.scenario == scenario):
            if cell.detail:
                lines.append(f"- {cell.policy}: {cell.detail}")
        lines.append("")
    lines.append("Verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def margins_json() -> dict[str, float]:
    return {"hosts_min": HOSTS_MARGIN_MIN, "hosts_fraction": HOSTS_MARGIN_FRACTION,
            "time_min_s": TIME_MARGIN_MIN_S, "time_fraction": TIME_MARGIN_FRACTION,
            "proportion": PROPORTION_MARGIN, "reward_min": REWARD_MARGIN_MIN,
            "reward_fraction": REWARD_MARGIN_FRACTION, "cutoff_min_s": CUTOFF_MARGIN_MIN_S,
            "cutoff_fraction": CUTOFF_MARGIN_FRACTION, "counts_min": COUNTS_MARGIN_MIN,
            "counts_fraction": COUNTS_MARGIN_FRACTION, "alpha": ALPHA, "ks_flag_p": KS_FLAG_P}


VARIED_NOTE = ", patient zero drawn per episode among the launch pads and workstations"


def write_tables(cells: Sequence[Cell], root: Path, settings: dict[str, Any]) -> str:
    header = (f"## gym vector validation: candidate {settings['candidate']!r} against the exact "
              f"DefendEnv, {settings['episodes']} episodes per side requested"
              f"{', run to duration (stop_when=())' if settings['run_to_duration'] else ''}"
              f"{VARIED_NOTE if settings.get('varied_patient_zero') else ''}\n\n"
              f"{margins_text()}.\nNumbers: Welch t TOST on candidate - exact means; "
              "proportions: two-proportion z TOST (Agresti-Caffo; its interval is of the "
              "adjusted difference). Unpaired: exact seeds from "
              f"{settings['exact_seeds_from']}, candidate seeds from "
              f"{settings['candidate_seeds_from']}. First alert and "
              "termination times only over the episodes where they happened (see n). "
              f"Elapsed {settings.get('elapsed_s', 0):.0f} s"
              f"{'; INTERRUPTED' if settings.get('interrupted') else ''}.")
    text = markdown(cells, header)
    root.mkdir(parents=True, exist_ok=True)
    (root / "gym-vector-validation.md").write_text(text, encoding="utf-8")
    payload = {
        "settings": settings, "margins": margins_json(),
        "cells": [{"scenario": c.scenario, "policy": c.policy, "detail": c.detail,
                   "seconds": c.seconds,
                   "comparisons": [asdict(row) for row in c.comparisons()],
                   "episodes": {"exact": [asdict(e) for e in c.exact],
                                "candidate": [asdict(e) for e in c.candidate]}}
                  for c in cells]}
    (root / "gym-vector-validation.json").write_text(json.dumps(payload, indent=1) + "\n",
                                                     encoding="utf-8")
    return text


# ---- main ---------------------------------------------------------------------------------------

def resolve_scenarios(names: Sequence[str]) -> list[Path]:
    return [scenario_path(name, REPO / "scenarios") for name in names]


class Progress:
    """Progress lines on stderr: episodes done per side, rate and elapsed time."""

    def __init__(self, stream: Any = sys.stderr, every: int = 50) -> None:
        self.stream = stream
        self.every = every
        self.started = time.monotonic()

    def elapsed(self) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.started))

    def side(self, label: str, total: int) -> Tick:
        began = time.monotonic()
        shown = [0]

        def tick(done: int) -> None:
            if done - shown[0] >= max(self.every, total // 10) or done >= total:
                shown[0] = done
                spent = time.monotonic() - began
                rate = done / spent if spent > 0 else float("inf")
                left = (total - done) / rate if rate > 0 else 0.0
                print(f"  {label}: {done}/{total} episodes, {rate:.1f}/s, side ETA "
                      f"{left:.0f} s | elapsed {self.elapsed()}", file=self.stream, flush=True)

        return tick


def run(scenario_paths: Sequence[Path], policy_names: Sequence[str], episodes: int,
        candidate: str, run_to_duration: bool, root: Path, batch: int | None = None,
        stream: Any = sys.stdout, progress_stream: Any = sys.stderr,
        varied_patient_zero: bool = False, policy_file: Path | None = None,
        seed_offset: int = 0) -> dict[str, Any]:
    """Run every cell (exact then candidate), then write and return the tables."""
    if candidate not in CANDIDATE_FACTORIES:
        raise ValidationError(f"unknown candidate {candidate!r} (known: {', '.join(CANDIDATES)})")
    if candidate == "vector" and not (REPO / "testbed" / "gym" / "vector.py").is_file():
        raise ValidationError("testbed/gym/vector.py does not exist yet: use --candidate "
                              "sync-exact")
    factory = CANDIDATE_FACTORIES[candidate]
    if not 0 <= seed_offset <= CANDIDATE_SEED_BASE - EXACT_SEED_BASE - episodes:
        raise ValidationError(f"--seed-offset {seed_offset} with {episodes} episodes would make "
                              "the two sides share seeds (or go negative): keep it between 0 "
                              f"and {CANDIDATE_SEED_BASE - EXACT_SEED_BASE - episodes:,}")
    batch = batch or (episodes if candidate == "vector" else SYNC_BATCH)
    extra: dict[str, Any] = {"stop_when": ()} if run_to_duration else {}
    settings: dict[str, Any] = {
        "candidate": candidate, "episodes": episodes, "batch": batch,
        "run_to_duration": run_to_duration, "varied_patient_zero": varied_patient_zero,
        "policies": list(policy_names),
        "scenarios": [str(p) for p in scenario_paths],
        "exact_seeds_from": EXACT_SEED_BASE + seed_offset,
        "candidate_seeds_from": CANDIDATE_SEED_BASE + seed_offset,
        "infected_at_s": list(INFECTED_AT_S)}
    print(margins_text(), file=stream, flush=True)
    def kwargs_of(path: Path) -> dict[str, Any]:
        # the loaded scenario, not its path: a sync candidate builds one env per episode
        scenario = scenario_of(path)
        pads = ({"patient_zeros": plausible_patient_zeros(scenario.topology)}
                if varied_patient_zero else {})
        return {"scenario": scenario, **extra, **pads}

    for path in scenario_paths:  # a scenario the candidate refuses fails before anything runs
        factory(1, **kwargs_of(path)).close()
    progress = Progress(progress_stream)
    cells: list[Cell] = []
    interrupted = False
    exact_seeds = list(range(settings["exact_seeds_from"],
                             settings["exact_seeds_from"] + episodes))
    candidate_seeds = list(range(settings["candidate_seeds_from"],
                                 settings["candidate_seeds_from"] + episodes))
    try:
        with sigterm_as_interrupt():
            for path in scenario_paths:
                env_kwargs = kwargs_of(path)
                env = DefendEnv(**env_kwargs)
                layout = Layout.of(env)
                specs = policy_specs(policy_names, env, policy_file)
                for spec in specs:
                    cell = Cell(env.scenario.name, spec.name, spec.detail)
                    cells.append(cell)
                    print(f"[{len(cells)}/{len(scenario_paths) * len(specs)}] "
                          f"{cell.scenario} / {spec.name}"
                          f"{': ' + spec.detail if spec.detail else ''}",
                          file=progress_stream, flush=True)
                    began = time.monotonic()
                    run_exact(env, layout, spec.make, exact_seeds, cell.exact,
                              progress.side("exact", episodes))
                    cell.seconds["exact"] = time.monotonic() - began
                    began = time.monotonic()
                    run_candidate(factory, env_kwargs, layout, spec.make, candidate_seeds,
                                  batch, cell.candidate, progress.side(candidate, episodes))
                    cell.seconds["candidate"] = time.monotonic() - began
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing the tables of what was done", file=progress_stream,
              flush=True)
    settings.update(interrupted=interrupted, elapsed_s=time.monotonic() - progress.started)
    text = write_tables(cells, root, settings)
    print(text, file=stream)
    print(f"wrote {root / 'gym-vector-validation.md'} and {root / 'gym-vector-validation.json'} "
          f"(elapsed {progress.elapsed()})", file=stream, flush=True)
    return {"interrupted": interrupted, "cells": cells}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=300, help="episodes per side and cell")
    parser.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS),
                        help="scenario files or names under scenarios/")
    parser.add_argument("--policies", nargs="+", default=list(POLICY_NAMES),
                        choices=POLICY_NAMES)
    parser.add_argument("--candidate", choices=CANDIDATES, default="vector",
                        help="vector: the vector_entry_point; sync-exact: exact envs in a "
                             "SyncVectorEnv (stand-in and self-test)")
    parser.add_argument("--run-to-duration", action="store_true",
                        help="stop_when=() on both sides: every episode runs to the duration")
    parser.add_argument("--patient-zero", choices=("scenario", "varied"), default="scenario",
                        help="varied: each episode's patient zero drawn among the plausible "
                             "launch pads (testbed.gym.env.plausible_patient_zeros) on both sides")
    parser.add_argument("--policy-file", type=Path, default=None,
                        help="also compare under a trained policy (an MlpPolicy .npz written "
                             "by benchmarks/train_defender.py), as the cell 'learned'")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="added to both sides' first seeds: draws a cell again on other "
                             "episodes (an inconclusive, heavy-tailed cell; keep it below "
                             f"{CANDIDATE_SEED_BASE - EXACT_SEED_BASE:,} minus --episodes so the "
                             "two sides never share a seed)")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"candidate sub-envs at once (default: all for vector, "
                             f"{SYNC_BATCH} for sync-exact)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gym-vector-validation")
    args = parser.parse_args(argv)
    try:
        outcome = run(resolve_scenarios(args.scenarios), args.policies, args.episodes,
                      args.candidate, args.run_to_duration, args.out, args.batch,
                      varied_patient_zero=args.patient_zero == "varied",
                      policy_file=args.policy_file, seed_offset=args.seed_offset)
    except TestbedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 130 if outcome["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
