"""Containment over time: is the outbreak contained, and since when?

Owns:
- ``ReachabilityOracle``: "can an infected host still infect anyone?" under the topology's policy
  plus the containment enforced at a moment, decided by ``policy.decide_flow`` (the reference
  semantics).
- ``PolicyClasses``: the hosts partitioned so that decide_flow's verdict between two hosts
  depends only on their classes; what makes the oracle and the timeline scale to a million
  hosts (and the simulator's fast path decide flows per class pair).
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
import ipaddress
import itertools
from collections.abc import Iterable
from functools import cached_property
from typing import Literal

from testbed.actions import ActionRecord, apply_action
from testbed.errors import TestbedError
from testbed.model.topology import Host, HostFirewall, Topology
from testbed.policy import Block, ContainmentState, decide_flow

__all__ = ["ContainmentTimeline", "OutbreakStatus", "PolicyClasses", "ReachabilityOracle"]

OutbreakStatus = Literal["dormant", "spreading", "contained", "burned-out"]
_CLASSES_KEPT = 64  # block lists whose policy classes are kept per topology (with verdicts)
_SHARED_HOSTS = 200_000  # hosts of the topologies whose classes are kept (the newest always)
_HOST_MASK = 0xFFFFFFFF


class _TopologyClasses:
    """One topology's block-free policy classes and the refinements asked for lately, shared by
    every oracle over the same (immutable) topology object: a learning environment builds a
    simulation, hence an oracle, per episode, and the classes and verdicts depend on the
    topology and the blocks only."""

    def __init__(self, topology: Topology) -> None:
        self.unblocked = PolicyClasses(topology)
        self.by_blocks: dict[tuple[Block, ...], PolicyClasses] = {}

    def under(self, blocks: tuple[Block, ...]) -> PolicyClasses:
        if not blocks:
            return self.unblocked
        classes = self.by_blocks.get(blocks)
        if classes is None:
            classes = self.by_blocks[blocks] = self.unblocked.refined(blocks)
            kept = _CLASSES_KEPT if len(self.unblocked.hosts) <= 10_000 else 2  # memory
            while len(self.by_blocks) > kept:  # the oldest go first
                self.by_blocks.pop(next(iter(self.by_blocks)), None)
        return classes


_SHARED_CLASSES: dict[int, tuple[Topology, _TopologyClasses]] = {}


def _topology_classes(topology: Topology) -> _TopologyClasses:
    entry = _SHARED_CLASSES.get(id(topology))
    if entry is not None and entry[0] is topology:
        return entry[1]
    shared = _TopologyClasses(topology)
    _SHARED_CLASSES[id(topology)] = (topology, shared)  # kept, so the id is not reused
    while len(_SHARED_CLASSES) > 1 and sum(  # over budget: the oldest go first
            len(kept.hosts) for kept, _ in _SHARED_CLASSES.values()) > _SHARED_HOSTS:
        _SHARED_CLASSES.pop(next(iter(_SHARED_CLASSES)), None)
    return shared


class PolicyClasses:
    """The topology's hosts partitioned so that ``decide_flow``'s verdict between two hosts
    depends only on their classes (what makes containment checks cost O(classes^2), not
    O(infected x susceptible)).

    Why that is exact: for a flow from host S to host T's service (port, proto) under a state
    whose quarantine is handled apart (a quarantined host is no source and no target),
    decide_flow reads S's segment (the router path), whether S's and T's addresses lie in each
    network some router rule, host firewall rule or block names (a block's host name is its
    address as a /32; every router interface address is such a network too), T's firewall and,
    for "can S infect T", T's vulnerable (port, proto) pairs. Hosts equal in all of these are
    one class. The membership bits are computed with arrays; the rest with one pass over the
    hosts, cached by the shared model objects.

    Under blocks, the classes are the block-free ones split further by the networks the blocks
    name (their membership bits are the only new key columns): ``refined(blocks)`` derives them
    from block-free classes touching only the hosts those networks hold, instead of rebuilding
    (a block on one host splits off that host). The partition is the one the constructor builds
    with those blocks, each class represented by its first host (class numbers may differ).
    """

    def __init__(self, topology: Topology, blocks: Iterable[Block] = ()) -> None:
        import numpy as np

        self.topology = topology
        self.hosts: list[Host] = list(topology.hosts.values())
        self.index = {host.name: position for position, host in enumerate(self.hosts)}
        networks: dict[tuple[int, int], None] = {}

        def note(network: ipaddress.IPv4Network) -> None:
            networks[(int(network.network_address), int(network.netmask))] = None

        for segment in topology.segments.values():
            note(segment.cidr)  # decide_flow locates the destination's segment by address
        for router in topology.routers.values():
            for address in router.interfaces.values():
                note(ipaddress.IPv4Network(address))
            for rule in router.rules:
                for endpoint in (*rule.sources, *rule.destinations):
                    for network in endpoint.networks:
                        note(network)
        segment_index: dict[str, int] = {}
        firewall_values: dict[HostFirewall, int] = {}
        kind_values: dict[tuple[tuple[int, str], ...], int] = {}
        self._vulnerable_ports: list[tuple[tuple[int, str], ...]] = []
        count = len(self.hosts)
        shape_index: dict[tuple[object, ...], int] = {}  # model objects' ids -> shape
        shape_columns: list[tuple[int, int, int]] = []  # shape -> (segment, firewall, kind)
        shapes: list[int] = []
        firewall_of: dict[int, int] = {}  # id(firewall) -> its class index (0: open)
        for host in self.hosts:
            firewall = host.firewall
            firewall_id = firewall_of.get(id(firewall))
            if firewall_id is None:
                firewall_id = 0 if firewall.is_open else firewall_values.setdefault(
                    firewall, len(firewall_values) + 1)
                firewall_of[id(firewall)] = firewall_id
                for rule in firewall.rules:
                    for endpoint in (*rule.sources, *rule.destinations):
                        for network in endpoint.networks:
                            note(network)
            key = (host.segment, firewall_id, id(host.patched), *map(id, host.services))
            shape = shape_index.get(key)
            if shape is None:
                ports = tuple(sorted({(s.port, s.proto) for s in host.vulnerable_services()}))
                kind = kind_values.setdefault(ports, len(kind_values))
                if kind == len(self._vulnerable_ports):
                    self._vulnerable_ports.append(ports)
                shape = shape_index[key] = len(shape_columns)
                shape_columns.append((segment_index.setdefault(host.segment, len(segment_index)),
                                      firewall_id, kind))
            shapes.append(shape)
        columns = np.array(shape_columns, dtype=np.int64).reshape(-1, 3)[
            np.array(shapes, dtype=np.int64)]
        addresses = np.fromiter((int(host.ip) for host in self.hosts), dtype=np.int64,
                                count=count)
        for block in blocks:
            for named in (block.source, block.destination):
                if named == "any":
                    continue
                if named in topology.hosts:
                    note(ipaddress.IPv4Network(topology.hosts[named].ip))
                else:
                    note(ipaddress.IPv4Network(named, strict=False))
        bits = [((addresses & mask) == network).astype(np.int64)
                for network, mask in networks]
        keys = np.column_stack([columns, *bits]) if bits else columns
        if count and len(bits) <= 16 and int(columns.max()) < 1 << 15:
            packed = (columns[:, 0] << 48) | (columns[:, 1] << 32) | (columns[:, 2] << 16)
            for position, bit in enumerate(bits):
                packed |= bit << position
            _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
        elif count:
            _, first, inverse = np.unique(keys, axis=0, return_index=True,
                                          return_inverse=True)
        else:
            first = inverse = np.zeros(0, dtype=np.int64)
        self.of: list[int] = inverse.reshape(-1).tolist()  # host position -> class
        self.representative: list[Host] = [self.hosts[int(p)] for p in first]
        self.ports: list[tuple[tuple[int, str], ...]] = [
            self._vulnerable_ports[int(keys[int(p), 2])] for p in first]
        exposed = np.array([bool(ports) for ports in self.ports], dtype=bool)
        susceptible = exposed[inverse.reshape(-1)] if count else np.zeros(0, dtype=bool)
        self.susceptible: list[bool] = susceptible.tolist()
        self.susceptible_in: list[int] = np.bincount(
            inverse.reshape(-1)[susceptible], minlength=len(first)).tolist()
        self.susceptible_total = sum(self.susceptible_in)
        self.blocks = tuple(blocks)
        self._verdicts: dict[tuple[int, int], bool] = {}
        self._blocks = ContainmentState(blocks=list(blocks))
        self._networks = networks  # (address, mask) of every network the key columns test
        self._addresses = addresses
        self._unblocked: dict[tuple[str, str, int, str], bool] = {}  # shared with refinements
        self._members: dict[int, list[int]] = {}  # class -> host positions, filled on demand
        self._sizes: list[int] | None = None
        self._named_networks: dict[str, tuple[int, int]] = {}  # block endpoint -> its network
        self._positions: dict[int, list[int]] | None = None  # address -> host positions

    def _positions_at(self) -> dict[int, list[int]]:
        if self._positions is None:
            positions: dict[int, list[int]] = {}
            for position, address in enumerate(self._addresses.tolist()):
                positions.setdefault(address, []).append(position)
            self._positions = positions
        return self._positions

    def refined(self, blocks: Iterable[Block]) -> PolicyClasses:
        """These block-free classes split by what ``blocks`` name: the partition
        ``PolicyClasses(topology, blocks)`` builds, each class represented by its first host."""
        import numpy as np

        if self.blocks:
            raise TestbedError("only block-free classes are refined")
        blocks = tuple(blocks)
        topology, networks = self.topology, self._networks
        new: dict[tuple[int, int], None] = {}
        named_networks = self._named_networks
        for block in blocks:
            for named in (block.source, block.destination):
                key = named_networks.get(named)
                if key is None:
                    if named == "any":
                        continue
                    parsed = ipaddress.IPv4Network(topology.hosts[named].ip if named in
                                                   topology.hosts else named, strict=False)
                    key = named_networks[named] = (int(parsed.network_address),
                                                   int(parsed.netmask))
                if key not in networks:
                    new[key] = None
        touched: dict[int, list[int]] = {}  # host position -> the new networks holding it
        for bit, (network, mask) in enumerate(new):
            positions: list[int]
            if mask == _HOST_MASK:  # one address: looked up, not tested against every host
                positions = self._positions_at().get(network, [])
            else:
                positions = np.flatnonzero((self._addresses & mask) == network).tolist()
            for position in positions:
                touched.setdefault(position, []).append(bit)
        derived = object.__new__(PolicyClasses)
        derived.topology, derived.hosts, derived.index = topology, self.hosts, self.index
        derived._vulnerable_ports = self._vulnerable_ports
        derived.susceptible, derived.susceptible_total = self.susceptible, self.susceptible_total
        derived.blocks = blocks
        derived._verdicts = {}
        derived._blocks = ContainmentState(blocks=list(blocks))
        derived._networks = {**networks, **new}
        derived._addresses = self._addresses
        derived._unblocked = self._unblocked  # decide_flow without containment: blocks aside
        derived._members, derived._sizes = {}, None
        derived._named_networks, derived._positions = named_networks, self._positions
        of, representative = self.of, self.representative
        ports, susceptible_in = self.ports, self.susceptible_in
        if touched:
            of, representative = list(of), list(representative)
            ports, susceptible_in = list(ports), list(susceptible_in)
            split: dict[int, dict[tuple[int, ...], list[int]]] = {}  # class -> bits -> hosts
            for position in sorted(touched):
                split.setdefault(self.of[position], {}).setdefault(
                    tuple(touched[position]), []).append(position)
            sizes, susceptible = self._class_sizes(), self.susceptible
            for cls, groups in split.items():
                parts = list(groups.values())  # each in host order, ordered by first host
                if sum(map(len, parts)) < sizes[cls]:  # untouched hosts keep the class
                    if self.index[representative[cls].name] in touched:
                        first = next(p for p in self._members_of(cls) if p not in touched)
                        representative[cls] = self.hosts[first]
                    susceptible_in[cls] -= sum(susceptible[p] for part in parts for p in part)
                else:  # every host moved: the first part keeps the class
                    keep = parts.pop(0)
                    representative[cls] = self.hosts[keep[0]]
                    susceptible_in[cls] = sum(susceptible[p] for p in keep)
                for part in parts:
                    number = len(representative)
                    representative.append(self.hosts[part[0]])
                    ports.append(self.ports[cls])
                    susceptible_in.append(sum(susceptible[p] for p in part))
                    for position in part:
                        of[position] = number
        derived.of, derived.representative = of, representative
        derived.ports, derived.susceptible_in = ports, susceptible_in
        return derived

    def _class_sizes(self) -> list[int]:
        if self._sizes is None:
            sizes = [0] * len(self.representative)
            for cls in self.of:
                sizes[cls] += 1
            self._sizes = sizes
        return self._sizes

    def _members_of(self, cls: int) -> list[int]:
        members = self._members.get(cls)
        if members is None:
            members = self._members[cls] = [p for p, c in enumerate(self.of) if c == cls]
        return members

    def count_susceptible(self, names: Iterable[str]) -> int:
        index, susceptible = self.index, self.susceptible
        return sum(1 for name in names
                   if (position := index.get(name)) is not None and susceptible[position])

    def __len__(self) -> int:
        return len(self.representative)

    def allows(self, source_class: int, target_class: int, port: int, proto: str) -> bool:
        """decide_flow for a host of ``source_class`` to a host of ``target_class`` on
        (port, proto), neither quarantined, under the blocks these classes were built with."""
        source, target = self.representative[source_class], self.representative[target_class]
        key = (source.name, target.name, port, proto)
        unblocked = self._unblocked.get(key)
        if unblocked is None:  # containment only ever denies more: decided once without it
            unblocked = self._unblocked[key] = decide_flow(self.topology, source, target.ip,
                                                           port, proto).allowed
        if not unblocked or not self.blocks:
            return unblocked
        return decide_flow(self.topology, source, target.ip, port, proto, self._blocks).allowed

    def can_infect(self, source_class: int, target_class: int) -> bool:
        """Whether a host of ``source_class`` reaches a vulnerable service of a host of
        ``target_class`` (neither quarantined; the blocks these classes were built with)."""
        key = (source_class, target_class)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = any(self.allows(source_class, target_class, port, proto)
                          for port, proto in self.ports[target_class])
            self._verdicts[key] = verdict
        return verdict

    def open_pair(self, sources: Iterable[int], targets: Iterable[int]) -> bool:
        """Whether any of ``sources`` (classes with an active infected host) can infect any of
        ``targets`` (classes with a live susceptible host)."""
        target_list = list(targets)
        return any(self.can_infect(s, t) for s in sources for t in target_list)


class ReachabilityOracle:
    """Answers "can an infected host still infect anyone?" under policy plus containment.

    ``can_infect`` and ``exposures`` decide host pairs with ``decide_flow`` (the topology's own
    verdict for a triple never changes during a run, so it is cached; only flows the topology
    allows are re-decided under the current containment). ``contained`` and ``burned_out``
    decide the same question per policy class (:class:`PolicyClasses`), in
    O(infected + quarantined + classes^2) instead of O(infected x susceptible).
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._base: dict[tuple[str, str, int, str], bool] = {}
        self._classes: PolicyClasses | None = None

    @cached_property
    def _targets(self) -> list[Host]:
        return [h for h in self.topology.hosts.values() if h.susceptible]

    def classes(self, blocks: Iterable[Block] = ()) -> PolicyClasses:
        """The policy classes under ``blocks``: the topology's block-free ones, refined by the
        blocks (``PolicyClasses.refined``); shared by the oracles of one topology object, with
        the last few block lists' kept."""
        blocks = tuple(blocks)
        if self._classes is None or self._classes.blocks != blocks:
            self._classes = _topology_classes(self.topology).under(blocks)
        return self._classes

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

    def _silenced(self, blocks: list[Block]) -> set[str] | None:
        """The hosts ``blocks`` cut off from every outbound flow, when that is all they do
        (each names a host as source, and any destination, port and protocol, and no two hosts
        share an address: ``Block.matches`` then holds exactly for flows from that host); else
        None."""
        hosts, by_ip = self.topology.hosts, self.topology.host_by_ip
        if len(by_ip) != len(hosts):
            return None  # hosts sharing an address: a block on one stops the others' flows too
        silenced = set()
        for block in blocks:
            host = hosts.get(block.source)
            if host is None or block.destination != "any" or block.port is not None or \
                    block.proto != "any":
                return None
            silenced.add(block.source)
        return silenced

    def burned_out(self, infected: Iterable[str], patient_zero: Iterable[str]) -> bool:
        """Every susceptible host (besides patient zero) fell: nothing was left to protect, so
        the outbreak ran its course rather than being contained."""
        classes = self._classes or self.classes()  # susceptibility does not depend on blocks
        infected_set, origin = set(infected), set(patient_zero)
        others = classes.susceptible_total - classes.count_susceptible(origin)
        return others > 0 and classes.count_susceptible(infected_set - origin) == others

    def contained(self, infected: Iterable[str], state: ContainmentState) -> bool:
        infected_set = set(infected)
        silenced = self._silenced(state.blocks)
        if silenced is None:
            classes = self.classes(state.blocks)
        else:  # each block drops every flow from one host: it is no source; nothing else moves
            classes = self.classes()
        index, of = classes.index, classes.of
        sources = {of[index[name]] for name in infected_set - state.quarantined
                   if name in index and (silenced is None or name not in silenced)}
        if not sources:
            return True
        taken = [0] * len(classes)
        for name in infected_set | state.quarantined:
            position = index.get(name)
            if position is not None and classes.susceptible[position]:
                taken[of[position]] += 1
        targets = [c for c, total in enumerate(classes.susceptible_in) if total > taken[c]]
        return not classes.open_pair(sources, targets)


_INFECTION, _ACTION = 0, 1  # at equal times, infections apply before actions (scorer's order)


class ContainmentTimeline:
    """Infections and actions, applied in time order, and what follows from them.

    Feed it with ``infect(host, at)`` (ground truth: a host's first infection, or patient zero's
    wake) and ``act(record)`` (an action log line; it takes effect at ``record.effective_at``),
    in any order, then ``advance(now)`` applies every change due by ``now``. Changes at the same
    moment are applied together (infections first), then the moment is judged: ``peak`` (most
    infected, unquarantined hosts at once), ``contained_since`` (start of the current contained
    stretch, None while spreading) and ``status``.

    Judging a moment costs O(classes^2) (:class:`PolicyClasses`), not O(infected x
    susceptible): per policy class it keeps the infected, unquarantined hosts (possible
    sources) and the susceptible hosts infected or quarantined (no longer targets), updated by
    each change; a change of blocks rebuilds the classes and recounts.
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
        self._classes: PolicyClasses | None = None  # None: to be (re)built and recounted
        self._active_in: list[int] = []  # class -> infected, unquarantined hosts
        self._taken_in: list[int] = []  # class -> susceptible hosts infected or quarantined
        self._active = 0  # infected, unquarantined hosts
        self._others = 0  # susceptible hosts besides patient zero
        self._others_infected = 0

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
                    if payload not in self.infected:
                        classes = self._ensure_classes()
                        self._count(payload, -1)
                        self.infected[payload] = moment
                        self._count(payload, +1)
                        if payload not in self.patient_zero and \
                                classes.susceptible[classes.index[payload]]:
                            self._others_infected += 1
                else:
                    assert isinstance(payload, ActionRecord)
                    self._apply(payload)
                    if payload.action == "quarantine" and payload.ok:
                        self.quarantined_at.setdefault(payload.target, moment)
            self._judge(moment)
            changed = True
        return changed

    # ---- incremental counts --------------------------------------------------------------
    def _ensure_classes(self) -> PolicyClasses:
        classes = self._classes
        if classes is None:
            classes = self._classes = self.oracle.classes(self.state.blocks)
            self._active_in = [0] * len(classes)
            self._taken_in = [0] * len(classes)
            self._active = 0
            for name in set(self.infected) | self.state.quarantined:
                self._count(name, +1)
            self._others = classes.susceptible_total - classes.count_susceptible(
                self.patient_zero)
            self._others_infected = classes.count_susceptible(
                set(self.infected) - self.patient_zero)
        return classes

    def _count(self, host: str, sign: int) -> None:
        """Add (+1) or remove (-1) ``host``'s share of the per-class counts."""
        classes = self._classes
        if classes is None:
            return  # counted from scratch when the classes are built
        position = classes.index.get(host)
        if position is None:
            return
        cls = classes.of[position]
        infected = host in self.infected
        quarantined = host in self.state.quarantined
        if infected and not quarantined:
            self._active_in[cls] += sign
            self._active += sign
        if classes.susceptible[position] and (infected or quarantined):
            self._taken_in[cls] += sign

    def _apply(self, record: ActionRecord) -> None:
        state = self.state
        before_quarantined, before_blocks = set(state.quarantined), list(state.blocks)
        for host in before_quarantined ^ self._quarantine_after(record):
            self._count(host, -1)
        apply_action(state, record)
        for host in before_quarantined ^ state.quarantined:
            self._count(host, +1)
        if state.blocks != before_blocks:
            self._classes = None  # the blocks split hosts differently: rebuild and recount

    def _quarantine_after(self, record: ActionRecord) -> set[str]:
        """The quarantined set ``record`` will leave (applied to a copy)."""
        preview = ContainmentState(set(self.state.quarantined))
        apply_action(preview, record)
        return preview.quarantined

    def _judge(self, moment: float) -> None:
        if not self.infected:
            self.status = "dormant"
            return
        classes = self._ensure_classes()
        self.peak = max(self.peak, self._active)
        if self._others > 0 and self._others_infected == self._others:
            self.status = "burned-out"
            self.contained_since = None
            return
        sources = [c for c, count in enumerate(self._active_in) if count]
        targets = [c for c, total in enumerate(classes.susceptible_in)
                   if total > self._taken_in[c]]
        if not sources or not classes.open_pair(sources, targets):
            self.status = "contained"
            if self.contained_since is None:
                self.contained_since = moment
        else:
            self.status = "spreading"
            self.contained_since = None
