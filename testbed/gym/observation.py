"""What the defender sees: a security operations centre's view of the network, per host.

Owns: the observation layout (``ObservationLayout``) and its incremental builder
(``ObservationBuilder``): per host, in the topology's fixed host order, recent alerts per
detector, recent failed first contacts and recent fan-out (new destinations), from the sensor's
``outcome`` events; quarantine and block state; tier (one-hot) and value; segment (one-hot); and
the action mask (no-op / quarantine / release / block). ``action_mask`` and
``assemble_features`` work over any leading shape, so the vectorised environment
(``testbed.gym.vector``) builds its batch of observations with the same column order and mask.
Must not: see ground truth. Its only inputs are ``testbed.gym.stepping.SocFeed`` (alerts,
connection events, containment state) and the topology; an import-linter contract forbids this
module to import ``testbed.truth``, ``testbed.scoring``, ``testbed.results`` and
``testbed.gym.reward``, and tests/unit/test_gym.py fails if an outbreak nobody observed moves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.base import Alert, ConnEvent
from testbed.model.spec import Tier
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = ["ACTIONS", "FEATURE_CEILING", "ObservationBuilder", "ObservationLayout", "action_mask",
           "assemble_features"]

ACTIONS = ("no-op", "quarantine", "release", "block")
"""Per-host action indices of ``testbed/Defend-v0``."""
NOOP, QUARANTINE, RELEASE, BLOCK = range(4)
_TIERS = tuple(Tier)
FEATURE_CEILING = 32.0
"""Counts enter as log1p(count), clipped here: a bounded observation space."""


def action_mask(quarantined: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """The action mask over any leading shape, (..., hosts) -> (..., hosts, 4) int8: quarantine
    where not quarantined, release where quarantined or blocked, block where neither."""
    mask = np.ones((*quarantined.shape, len(ACTIONS)), np.int8)
    mask[..., QUARANTINE] = ~quarantined
    mask[..., RELEASE] = quarantined | blocked
    mask[..., BLOCK] = ~(quarantined | blocked)
    return mask


def assemble_features(alerts: np.ndarray, failures: np.ndarray, fanout: np.ndarray,
                      quarantined: np.ndarray, blocked: np.ndarray,
                      static: np.ndarray) -> np.ndarray:
    """The feature matrix in ``ObservationLayout.columns`` order over any leading shape
    (..., hosts): log1p of the decayed counts (``alerts`` has a detector axis last), the
    containment flags, then ``static`` (hosts x static columns, the same for every leading
    index); float32, clipped at ``FEATURE_CEILING``."""
    lead = failures.shape
    features = np.concatenate(
        (np.log1p(alerts), np.log1p(failures)[..., None], np.log1p(fanout)[..., None],
         quarantined[..., None], blocked[..., None],
         np.broadcast_to(static, (*lead, static.shape[-1]))), axis=-1, dtype=np.float32)
    np.minimum(features, FEATURE_CEILING, out=features)
    return features


@dataclass(frozen=True)
class ObservationLayout:
    """Column meaning of the per-host feature matrix (rows: ``hosts``)."""

    hosts: tuple[str, ...]
    detectors: tuple[str, ...]
    segments: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(f"alerts:{d}" for d in self.detectors),
                "first-contact-failures", "fan-out", "quarantined", "blocked",
                *(f"tier:{t.value}" for t in _TIERS), "value",
                *(f"segment:{s}" for s in self.segments))

    @property
    def width(self) -> int:
        return len(self.columns)


class ObservationBuilder:
    """Folds each step's ``SocFeed`` into decayed per-host counters; ``observe`` returns the
    feature matrix (float32, hosts x columns) and the action mask (int8, hosts x 4)."""

    def __init__(self, topology: Topology, detectors: tuple[str, ...], *,
                 decay: float = 0.5, contacts: bool = True) -> None:
        names = tuple(topology.hosts)
        self.layout = ObservationLayout(names, detectors, tuple(topology.segments))
        self.decay = decay
        self.contacts = contacts  # False: first contacts stay zero, as an emulated responder sees
        self._row = {name: i for i, name in enumerate(names)}
        self._row_of_ip = {str(h.ip): i for i, h in enumerate(topology.hosts.values())}
        self._detector_column = {d: i for i, d in enumerate(detectors)}
        count = len(names)
        self._alerts = np.zeros((count, len(detectors)), dtype=np.float32)
        self._failures = np.zeros(count, dtype=np.float32)
        self._fanout = np.zeros(count, dtype=np.float32)
        static = np.zeros((count, len(_TIERS) + 1 + len(self.layout.segments)), np.float32)
        top_value = max((h.value for h in topology.hosts.values()), default=1.0) or 1.0
        segment_column = {s: i for i, s in enumerate(self.layout.segments)}
        for i, host in enumerate(topology.hosts.values()):
            static[i, _TIERS.index(host.tier)] = 1.0
            static[i, len(_TIERS)] = host.value / top_value
            static[i, len(_TIERS) + 1 + segment_column[host.segment]] = 1.0
        self.static = static
        """Tier one-hot, value and segment one-hot per host: the columns no episode changes."""
        self._quarantined = np.zeros(count, dtype=np.float32)
        self._blocked = np.zeros(count, dtype=np.float32)
        self._mask = self._compute_mask()

    def reset(self) -> None:
        for array in (self._alerts, self._failures, self._fanout, self._quarantined,
                      self._blocked):
            array.fill(0.0)
        self._mask = self._compute_mask()

    def fold(self, alerts: tuple[Alert, ...], events: tuple[ConnEvent, ...],
             containment: ContainmentState) -> None:
        """One step's alerts, events and the containment in force at its end."""
        self._alerts *= self.decay
        self._failures *= self.decay
        self._fanout *= self.decay
        rows, columns = self._row_of_ip, self._detector_column
        for alert in alerts:
            row = rows.get(alert.src_ip)
            column = columns.get(alert.detector)
            if row is not None and column is not None:
                self._alerts[row, column] += 1.0
        for event in events if self.contacts else ():
            if event.kind == "outcome" and event.first:
                row = rows.get(event.src)
                if row is not None:
                    self._fanout[row] += 1.0
                    if event.outcome != "success":
                        self._failures[row] += 1.0
        self._quarantined.fill(0.0)
        self._blocked.fill(0.0)
        for name in containment.quarantined:
            row = self._row.get(name)
            if row is not None:
                self._quarantined[row] = 1.0
        for block in containment.blocks:
            row = self._row.get(block.source)
            if row is not None and block.destination == "any" and block.port is None:
                self._blocked[row] = 1.0
        self._mask = self._compute_mask()  # a new array: one handed out never changes

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        features = assemble_features(self._alerts, self._failures, self._fanout,
                                     self._quarantined, self._blocked, self.static)
        return features, self.mask()

    def mask(self) -> np.ndarray:
        """The action mask (hosts x 4, int8) for the containment folded last; do not modify."""
        return self._mask

    def _compute_mask(self) -> np.ndarray:
        return action_mask(self._quarantined > 0, self._blocked > 0)
