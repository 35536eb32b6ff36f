"""Defender policies over ``testbed/Defend-v0`` observations, runnable without training libraries.

Owns: the built-in responders expressed as policies (``RulePolicy``: a scenario's response
rules, acting on the alert columns as the ``Responder`` acts on alerts), the trivial baselines
(``NoOpPolicy``, ``RandomPolicy``), ``baselines(scenario)`` naming them, and ``MlpPolicy``: a
trained network's deterministic forward pass in plain numpy, loaded from a policy file
(``.npz``: ``w0, b0, w1, b1, ...`` with tanh between layers, logits hosts*4 last, plus
``meta``: JSON with ``hosts``, ``columns``, ``decision_interval_s``, ``alert_decay``), saved by
``save_mlp`` (benchmarks/train_defender.py exports Stable-Baselines3 weights with it).
Must not: import ground truth, gymnasium or any training library (import-linter contract
``gym-observation-wall``): an emulated run's policy responder imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detectors.base import Alert
from testbed.errors import TestbedError
from testbed.gym.observation import (
    ACTIONS,
    BLOCK,
    NOOP,
    QUARANTINE,
    RELEASE,
    ObservationBuilder,
)
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = ["MlpPolicy", "NoOpPolicy", "Policy", "PolicyDriver", "PolicyError", "RandomPolicy",
           "RulePolicy", "baselines", "containment_calls", "save_mlp"]


class PolicyError(TestbedError):
    """A policy file that cannot drive this topology."""


class Policy(Protocol):
    name: str

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One action index per host (``ACTIONS``), from ``{"observation", "mask"}``."""


def _masked(observation: dict[str, np.ndarray]) -> np.ndarray:
    return observation["mask"].reshape(-1, len(ACTIONS))


@dataclass
class NoOpPolicy:
    name: str = "no-op"

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros(_masked(observation).shape[0], np.int64)


@dataclass
class RandomPolicy:
    """Uniform over each host's unmasked actions, with ``act_probability`` of acting at all."""

    seed: int = 0
    act_probability: float = 0.05
    name: str = "random"

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        mask = _masked(observation)
        choice = np.zeros(mask.shape[0], np.int64)
        for row in np.flatnonzero(self._rng.random(mask.shape[0]) < self.act_probability):
            allowed = np.flatnonzero(mask[row, 1:]) + 1
            if allowed.size:
                choice[row] = int(self._rng.choice(allowed))
        return choice


@dataclass
class RulePolicy:
    """A response rule as a policy: a host with an alert from one of ``detectors`` gets
    ``action`` (quarantine or block), once, as the ``Responder`` with ``delay_s: 0`` does."""

    columns: Sequence[str]
    detectors: Sequence[str]
    action: str = "quarantine"
    name: str = ""

    def __post_init__(self) -> None:
        wanted = {f"alerts:{d}" for d in self.detectors}
        self._alert_columns = [i for i, c in enumerate(self.columns)
                               if c in wanted or ("any" in self.detectors and
                                                  c.startswith("alerts:"))]
        self._width = len(self.columns)
        self._index = {"quarantine": QUARANTINE, "block": BLOCK}[self.action]
        self.name = self.name or f"rule:{self.action}-on-{'+'.join(self.detectors)}"

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        features = observation["observation"].reshape(-1, self._width)
        mask = _masked(observation)
        alerted = features[:, self._alert_columns].sum(axis=1) > 0
        choice = np.where(alerted & (mask[:, self._index] > 0), self._index, NOOP)
        return choice.astype(np.int64)


def baselines(columns: Sequence[str], detectors: Sequence[str],
              rules: Sequence[Any] = ()) -> list[Policy]:
    """No-op, random, and every rule-based responder: the scenario's own ``rules`` (objects
    with ``on`` and ``action``) plus quarantine-on-any and block-on-any."""
    policies: list[Policy] = [NoOpPolicy(), RandomPolicy()]
    seen = set()
    for rule in rules:
        if rule.action in ("quarantine", "block"):
            key = (tuple(rule.on), rule.action)
            if key not in seen:
                seen.add(key)
                policies.append(RulePolicy(columns, tuple(rule.on), rule.action))
    for action in ("quarantine", "block"):
        if (tuple(detectors), action) not in seen:
            policies.append(RulePolicy(columns, tuple(detectors), action))
    return policies


class MlpPolicy:
    """A trained multilayer perceptron, evaluated with numpy (tanh hidden layers; the last
    layer gives hosts*4 logits; masked actions never win)."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], meta: dict[str, Any],
                 name: str = "mlp") -> None:
        self.weights = weights
        self.meta = meta
        self.hosts: tuple[str, ...] = tuple(meta["hosts"])
        self.columns: tuple[str, ...] = tuple(meta["columns"])
        self.name = name

    @classmethod
    def load(cls, path: str | Path) -> MlpPolicy:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                layers = int(meta["layers"])
                weights = [(np.asarray(data[f"w{i}"], np.float64),
                            np.asarray(data[f"b{i}"], np.float64)) for i in range(layers)]
        except (OSError, KeyError, ValueError) as err:
            raise PolicyError(f"{path}: not a policy file ({err})") from err
        return cls(weights, meta, name=path.stem)

    def check(self, hosts: Sequence[str], columns: Sequence[str]) -> None:
        if tuple(hosts) != self.hosts or tuple(columns) != self.columns:
            raise PolicyError(f"policy {self.name!r} was trained on other hosts or features "
                              f"({len(self.hosts)} hosts, {len(self.columns)} columns; here "
                              f"{len(hosts)} and {len(columns)})")

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float64).reshape(-1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(self.weights):
            x = weight @ x + bias
            if i < last:
                x = np.tanh(x)
        return x.reshape(-1, len(ACTIONS))

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        logits = self.logits(observation["observation"])
        logits = np.where(_masked(observation) > 0, logits, -np.inf)
        return logits.argmax(axis=1).astype(np.int64)


def save_mlp(path: str | Path, weights: Sequence[tuple[np.ndarray, np.ndarray]],
             meta: dict[str, Any]) -> Path:
    """Write a policy file ``MlpPolicy.load`` reads (``meta`` gains ``layers``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"meta": np.array(json.dumps({**meta, "layers": len(weights)}))}
    for i, (weight, bias) in enumerate(weights):
        arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(weight), np.asarray(bias)
    with path.open("wb") as stream:
        np.savez(stream, **arrays)
    return path


def containment_calls(action: np.ndarray, mask: np.ndarray, hosts: Sequence[str],
                      containment: ContainmentState) -> list[tuple[str, str]]:
    """(action kind, host) calls for one step's per-host choices; masked choices are no-ops.
    Release lifts a host's quarantine and its outbound block, whichever it has."""
    calls: list[tuple[str, str]] = []
    for row in np.flatnonzero(action):
        choice = int(action[row])
        if not 0 <= choice < len(ACTIONS) or not mask[row, choice]:
            continue
        host = hosts[int(row)]
        if choice == QUARANTINE:
            calls.append(("quarantine", host))
        elif choice == BLOCK:
            calls.append(("block", host))
        elif choice == RELEASE:
            if host in containment.quarantined:
                calls.append(("release", host))
            if any(block.source == host for block in containment.blocks):
                calls.append(("unblock", host))
    return calls


class PolicyDriver:
    """A policy at run time (an emulated run's responder): alerts go in as they come; every
    ``decision_interval_s`` (the policy file's) ``decide`` folds them into the observation the
    policy was trained on and returns the containment calls it chose. Only alerts, the
    containment state and the topology go in: an emulated responder sees no connection events,
    so first-contact failures and fan-out stay zero (docs/gym.md: the sim-to-real gap)."""

    def __init__(self, policy: MlpPolicy, topology: Topology) -> None:
        detectors = tuple(c.split(":", 1)[1] for c in policy.columns if c.startswith("alerts:"))
        self.builder = ObservationBuilder(topology, detectors,
                                          decay=float(policy.meta.get("alert_decay", 0.5)))
        policy.check(self.builder.layout.hosts, self.builder.layout.columns)
        self.policy = policy
        self.interval = float(policy.meta.get("decision_interval_s", 1.0))
        self._alerts: list[Alert] = []
        self._next: float | None = None

    def alert(self, alert: Alert) -> None:
        self._alerts.append(alert)

    def next_due(self) -> float | None:
        return self._next

    def decide(self, now: float, containment: ContainmentState) -> list[tuple[str, str]]:
        if self._next is not None and now < self._next:
            return []
        self._next = now + self.interval
        self.builder.fold(tuple(self._alerts), (), containment)
        self._alerts.clear()
        features, mask = self.builder.observe()
        action = self.policy.act({"observation": features.reshape(-1), "mask": mask.reshape(-1)})
        return containment_calls(action, mask, self.builder.layout.hosts, containment)
