"""Defender policies over ``testbed/Defend-v0`` observations, runnable without training libraries.

Owns: the built-in responders expressed as policies (``RulePolicy``: a scenario's response
rules, acting on the alert columns as the ``Responder`` acts on alerts), the trivial baselines
(``NoOpPolicy``, ``RandomPolicy``), ``baselines(scenario)`` naming them, and ``MlpPolicy``: a
trained network's deterministic forward pass in plain numpy, loaded from a policy file
(``.npz``: ``w0, b0, w1, b1, ...`` with tanh between layers, plus ``meta``: JSON with
``hosts``, ``columns``, ``decision_interval_s``, ``alert_decay``, ``contact_features`` and
``architecture``), saved by ``save_mlp`` (benchmarks/train_defender.py exports
Stable-Baselines3 weights with it). Architectures: ``flat`` (the default: the whole feature
vector in, hosts*4 logits out) and ``per-host`` (one network shared by every host: its input is
the host's row and the mean row over all hosts, its output that host's 4 logits; it does not
care which host is which, so it can generalise to a patient zero it never saw).
Must not: import ground truth, gymnasium or any training library (import-linter contract
``gym-observation-wall``): an emulated run's policy responder imports this module.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detectors.base import Alert, ConnEvent
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

__all__ = ["ARCHITECTURES", "MlpPolicy", "NoOpPolicy", "Policy", "PolicyDriver", "PolicyError",
           "RandomPolicy", "RulePolicy", "baselines", "containment_calls", "load_policy_for",
           "resolve_policy_path", "save_mlp"]


ARCHITECTURES = ("flat", "per-host")
"""How a policy file's layers are applied (``MlpPolicy``)."""


class PolicyError(TestbedError):
    """A policy file that is missing, unreadable or cannot drive this scenario; the message
    names the file and says what is wrong, ``hint`` what to do."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.hint = hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)


def resolve_policy_path(policy: str | Path, scenario_path: str | Path) -> Path:
    """A scenario's ``response.policy``: relative paths are relative to the scenario file, as
    its ``topology`` is."""
    path = Path(policy).expanduser()
    return path if path.is_absolute() else Path(scenario_path).parent / path


def load_policy_for(path: str | Path, topology: Topology, detectors: Sequence[str]) -> MlpPolicy:
    """The policy file at ``path``, checked against a scenario (its topology's hosts and its
    detectors' alert columns): what a scenario loader calls so a bad file fails before a run
    deploys anything. ``PolicyError`` otherwise."""
    policy = MlpPolicy.load(path)
    layout = ObservationBuilder(topology, tuple(detectors)).layout
    policy.check(layout.hosts, layout.columns)
    return policy


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
        """Read a policy file; ``PolicyError`` says which file, what is wrong and what to do."""
        path = Path(path)
        hint = "write one with benchmarks/train_defender.py or testbed.gym.policies.save_mlp"
        if not path.is_file():
            raise PolicyError(f"policy file {path} not found"
                              + (" (it is a directory)" if path.is_dir() else ""), hint=hint)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                layers = int(meta["layers"])
                weights = [(np.asarray(data[f"w{i}"], np.float64),
                            np.asarray(data[f"b{i}"], np.float64)) for i in range(layers)]
                policy = cls(weights, meta, name=path.stem)
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
            raise PolicyError(f"policy file {path} is not a policy file (.npz with meta, w0, "
                              f"b0, ...): {type(err).__name__}: {err}", hint=hint) from None
        if policy.architecture not in ARCHITECTURES:
            raise PolicyError(f"policy file {path} has an unknown architecture "
                              f"{policy.architecture!r} (known: {', '.join(ARCHITECTURES)})",
                              hint=hint)
        return policy

    def check(self, hosts: Sequence[str], columns: Sequence[str]) -> None:
        """Fail unless trained on exactly these hosts and columns, and its layers fit them."""
        if tuple(hosts) != self.hosts or tuple(columns) != self.columns:
            differ = [h for h in (*self.hosts, *hosts) if (h in self.hosts) != (h in hosts)]
            missing = [c for c in (*self.columns, *columns)
                       if (c in self.columns) != (c in columns)]
            detail = (f"hosts not on both sides: {', '.join(sorted(set(differ))[:5])}"
                      if differ else f"columns not on both sides: "
                      f"{', '.join(sorted(set(missing))[:5])}" if missing else "order differs")
            raise PolicyError(
                f"policy {self.name!r} was trained on other hosts or features "
                f"({len(self.hosts)} hosts, {len(self.columns)} columns; here {len(hosts)} and "
                f"{len(columns)}; {detail})",
                hint="train it on this scenario's topology and detectors "
                     "(benchmarks/train_defender.py --scenario ...)")
        try:
            logits = self.logits(np.zeros(len(self.hosts) * len(self.columns)))
        except ValueError as err:
            raise PolicyError(f"policy {self.name!r}: its layers do not fit {len(hosts)} hosts "
                              f"x {len(columns)} columns ({err})",
                              hint="the file is damaged or was written by hand") from None
        if logits.shape != (len(self.hosts), len(ACTIONS)):
            raise PolicyError(f"policy {self.name!r} gives {logits.size} logits, not "
                              f"{len(self.hosts)} hosts x {len(ACTIONS)} actions",
                              hint="the file is damaged or was written by hand")

    @property
    def architecture(self) -> str:
        return str(self.meta.get("architecture", "flat"))

    @property
    def contact_features(self) -> bool:
        """Whether it was trained on the first-contact columns (else they were zero)."""
        return bool(self.meta.get("contact_features", True))

    def logits(self, features: np.ndarray) -> np.ndarray:
        if self.architecture == "per-host":
            rows = np.asarray(features, np.float64).reshape(len(self.hosts), -1)
            x = np.concatenate((rows, np.broadcast_to(rows.mean(axis=0), rows.shape)), axis=1)
            return self._forward(x.T).T  # columns are hosts: one shared network
        return self._forward(np.asarray(features, np.float64).reshape(-1)).reshape(
            -1, len(ACTIONS))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(self.weights):
            x = weight @ x + (bias if x.ndim == 1 else bias[:, None])
            if i < last:
                x = np.tanh(x)
        return x

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
    allowed = np.asarray(mask).tolist()  # Python values: indexing numpy per host is slow
    for row, value in enumerate(np.asarray(action).reshape(-1).tolist()):
        if not value:
            continue
        choice = int(value)
        if not 0 <= choice < len(ACTIONS) or not allowed[row][choice]:
            continue
        host = hosts[row]
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
    """A policy at run time (an emulated or simulated run's responder): alerts and the sensor's
    connection events go in as they come; every ``decision_interval_s`` (the policy file's)
    ``decide`` folds them into the observation the policy was trained on and returns the
    containment calls it chose. Only alerts, connection events, the containment state and the
    topology go in. A policy trained without the first-contact columns
    (``contact_features: false``) gets them at zero, as it was trained; one trained with them
    needs its host to pass events to ``events`` (``Responder.observe``), else they stay zero
    (``events_seen`` tells)."""

    def __init__(self, policy: MlpPolicy, topology: Topology) -> None:
        detectors = tuple(c.split(":", 1)[1] for c in policy.columns if c.startswith("alerts:"))
        self.builder = ObservationBuilder(topology, detectors,
                                          decay=float(policy.meta.get("alert_decay", 0.5)),
                                          contacts=policy.contact_features)
        policy.check(self.builder.layout.hosts, self.builder.layout.columns)
        self.policy = policy
        self.interval = float(policy.meta.get("decision_interval_s", 1.0))
        self._alerts: list[Alert] = []
        self._events: list[ConnEvent] = []
        self.events_seen = 0
        self._next: float | None = None

    @property
    def wants_events(self) -> bool:
        return self.builder.contacts

    def alert(self, alert: Alert) -> None:
        self._alerts.append(alert)

    def events(self, events: Iterable[ConnEvent]) -> None:
        """Connection events since the last call; only first-contact outcomes are kept (the
        only ones the observation reads)."""
        if not self.builder.contacts:
            return
        kept = [e for e in events if e.kind == "outcome" and e.first]
        self._events.extend(kept)
        self.events_seen += len(kept)

    def next_due(self) -> float | None:
        return self._next

    def decide(self, now: float, containment: ContainmentState) -> list[tuple[str, str]]:
        if self._next is not None and now < self._next:
            return []
        self._next = now + self.interval
        self.builder.fold(tuple(self._alerts), tuple(self._events), containment)
        self._alerts.clear()
        self._events.clear()
        features, mask = self.builder.observe()
        action = self.policy.act({"observation": features.reshape(-1), "mask": mask.reshape(-1)})
        return containment_calls(action, mask, self.builder.layout.hosts, containment)
