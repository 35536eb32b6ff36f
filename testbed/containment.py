"""Containment over time: is the outbreak contained, and since when?

Owns:
- ``ReachabilityOracle``: "can an infected host still infect anyone?" under the topology's policy
  plus the containment enforced at a moment, decided by ``policy.decide_flow`` (the reference
  semantics).
- ``ContainmentTimeline``: infections and logged actions replayed in time order into a
  ``ContainmentState``, with the peak of active infections, when each host was first quarantined
  and since when the outbreak has been contained. It is incremental, so the runner's live stop
  check and the scorer use the same object: the runner feeds it as records arrive and calls
  ``advance(now)``; the scorer feeds it everything and calls ``advance(end)``.

Definition (docs/metrics.md): contained means no infected, unquarantined host can reach a
susceptible, uninfected host's vulnerable service under the enforced policy, and not every
susceptible host (besides patient zero) has fallen ("burned out": nothing was left to protect).

Must not touch: files. It is fed records; reading ground truth is ``testbed.truth``'s job.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from typing import Literal

from testbed.actions import ActionRecord, apply_action
from testbed.model.topology import Host, Topology
from testbed.policy import ContainmentState, decide_flow

__all__ = ["ContainmentTimeline", "OutbreakStatus", "ReachabilityOracle"]

OutbreakStatus = Literal["dormant", "spreading", "contained", "burned-out"]


class ReachabilityOracle:
    """Answers "can an infected host still infect anyone?" under policy plus containment.

    The topology's own verdict for a (source, target, service) triple never changes during a run,
    so it is cached; only flows the topology allows are re-decided under the current containment.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._base: dict[tuple[str, str, int, str], bool] = {}
        self._targets = [h for h in topology.hosts.values() if h.susceptible]

    def _allowed(self, source: Host, target: Host, port: int, proto: str,
                 state: ContainmentState) -> bool:
        key = (source.name, target.name, port, proto)
        base = self._base.get(key)
        if base is None:
            base = decide_flow(self.topology, source, target.ip, port, proto).allowed
            self._base[key] = base
        if not base:
            return False
        if not state.quarantined and not state.blocks:
            return True
        return decide_flow(self.topology, source, target.ip, port, proto, state).allowed

    def can_infect(self, source: str, target: str, state: ContainmentState) -> bool:
        source_host, target_host = self.topology.hosts[source], self.topology.hosts[target]
        return any(self._allowed(source_host, target_host, service.port, service.proto, state)
                   for service in target_host.vulnerable_services())

    def exposures(self, infected: Iterable[str], state: ContainmentState
                  ) -> list[tuple[str, str]]:
        """(infected source, susceptible target) pairs still open; empty when contained."""
        infected_set = set(infected)
        open_pairs = []
        for source in sorted(infected_set - state.quarantined):
            if source not in self.topology.hosts:
                continue
            for target in self._targets:
                if target.name in infected_set:
                    continue
                if self.can_infect(source, target.name, state):
                    open_pairs.append((source, target.name))
        return open_pairs

    def burned_out(self, infected: Iterable[str], patient_zero: Iterable[str]) -> bool:
        """Every susceptible host (besides patient zero) fell: nothing was left to protect, so
        the outbreak ran its course rather than being contained."""
        infected_set, origin = set(infected), set(patient_zero)
        others = [t.name for t in self._targets if t.name not in origin]
        return bool(others) and all(name in infected_set for name in others)

    def contained(self, infected: Iterable[str], state: ContainmentState) -> bool:
        infected_set = set(infected)
        for source in sorted(infected_set - state.quarantined):
            if source not in self.topology.hosts:
                continue
            for target in self._targets:
                if target.name not in infected_set and self.can_infect(source, target.name,
                                                                       state):
                    return False
        return True


_INFECTION, _ACTION = 0, 1  # at equal times, infections apply before actions (scorer's order)


class ContainmentTimeline:
    """Infections and actions, applied in time order, and what follows from them.

    Feed it with ``infect(host, at)`` (ground truth: a host's first infection, or patient zero's
    wake) and ``act(record)`` (an action log line; it takes effect at ``record.effective_at``),
    in any order, then ``advance(now)`` applies every change due by ``now``. Changes at the same
    moment are applied together (infections first), then the moment is judged: ``peak`` (most
    infected, unquarantined hosts at once), ``contained_since`` (start of the current contained
    stretch, None while spreading) and ``status``.
    """

    def __init__(self, topology: Topology, patient_zero: Iterable[str] = ()) -> None:
        self.topology = topology
        self.patient_zero = set(patient_zero)
        self.oracle = ReachabilityOracle(topology)
        self.state = ContainmentState()
        self.infected: dict[str, float] = {}  # host -> when it was infected (applied changes)
        self.quarantined_at: dict[str, float] = {}  # host -> first successful quarantine
        self.peak = 0
        self.contained_since: float | None = None
        self.status: OutbreakStatus = "dormant"
        self.actions_by_kind: dict[str, int] = {}
        self._pending: list[tuple[float, int, int, str | ActionRecord]] = []
        self._order = itertools.count()
        self._known_infections: set[str] = set()

    def infect(self, host: str, at: float) -> bool:
        """Record ``host``'s infection at ``at``; False if it is not a host or already known.
        (Ground truth may name a host twice, e.g. a wake and an infection: the first counts.)"""
        if host not in self.topology.hosts or host in self._known_infections:
            return False
        self._known_infections.add(host)
        heapq.heappush(self._pending, (at, _INFECTION, next(self._order), host))
        return True

    def act(self, record: ActionRecord) -> None:
        """Record a logged action; it changes the state once ``advance`` passes its effect."""
        self.actions_by_kind[record.action] = self.actions_by_kind.get(record.action, 0) + 1
        heapq.heappush(self._pending, (record.effective_at, _ACTION, next(self._order), record))

    def next_change(self) -> float | None:
        """When the earliest change not yet applied takes effect."""
        return self._pending[0][0] if self._pending else None

    def advance(self, now: float) -> bool:
        """Apply every change due by ``now``; True if anything changed."""
        changed = False
        while self._pending and self._pending[0][0] <= now:
            moment = self._pending[0][0]
            while self._pending and self._pending[0][0] == moment:
                _, kind, _, payload = heapq.heappop(self._pending)
                if kind == _INFECTION:
                    assert isinstance(payload, str)
                    self.infected.setdefault(payload, moment)
                else:
                    assert isinstance(payload, ActionRecord)
                    apply_action(self.state, payload)
                    if payload.action == "quarantine" and payload.ok:
                        self.quarantined_at.setdefault(payload.target, moment)
            self._judge(moment)
            changed = True
        return changed

    def _judge(self, moment: float) -> None:
        active = set(self.infected) - self.state.quarantined
        self.peak = max(self.peak, len(active))
        if not self.infected:
            self.status = "dormant"
            return
        if self.oracle.burned_out(self.infected, self.patient_zero):
            self.status = "burned-out"
            self.contained_since = None
        elif self.oracle.contained(self.infected, self.state):
            self.status = "contained"
            if self.contained_since is None:
                self.contained_since = moment
        else:
            self.status = "spreading"
            self.contained_since = None
