"""The fast path: the classic and local-preference worms with arrays, no objects per host or
per probe; the hitlist and stealth worms with arrays for the network and one small queue per
active worm.

Owns: when the fast path applies (:func:`fast_path_refusal`) and running it
(:func:`run_fast`), writing the same ground truth the event engine writes with per-probe
records off (wakes and infections; for hitlist and stealth also their defence signals; no
detectors, alerts or actions exist in its domain). One omission, known: the classic and
local-preference worms' ``defence-signal`` records are not written (``prohibited`` for a
probe to an address no route leads to, ``vanished`` when a host that answered one exploit's
port is silent on another's); those brains' behaviour does not depend on them.

Semantics, those of ``Brain`` for the profile: every active host probes from the moment it
wakes, at gaps ``(1 / rate) * (1 + jitter * (2u - 1))``; each probe's target is chosen as the
profile's brain chooses it (below), its exploit uniform over the arsenal; a probe to a live
host's vulnerable, unpatched service infects it unless it is already infected
(``testbed.sim.services.exploit_verdict``), at the exploit's delivery time (ARP, SYN, SYN-ACK,
data: ``2 link + 3 one-way``), and the new host starts probing at once. Random draws come from
one numpy stream per run (seeded from the run's seed), not from each host's ``random.Random``:
runs are reproducible and distributed as the brain's, not draw-for-draw identical to the event
engine. That equivalence is pinned by ``tests/unit/test_sim_fastpath.py`` for each profile:
mean infected curves of both over many seeds, on a flat and on a routed, firewalled network,
within stated margins; and, for local-preference and hitlist, slot by slot the very targets
of a Brain.

Target choice:
- ``classic`` (:class:`_UniformTargets`): uniform over the topology's usable addresses, drawn
  again when it is the host's own address (at most 8 draws). One simplification, bounded: the
  brain also passes over addresses it has itself seen answer infected or already; here they are
  probed again, with no effect but an ``already`` (no infection is lost or gained: those hosts
  are infected; a passed-over slot's redraw lands on a new address with probability
  victims-per-host / addresses, below 1e-3 while the outbreak grows). Kept so, because the
  classic figures of the README and docs/sim.md were measured so.
- ``local-preference`` (:class:`_SweepTargets`): with probability ``local_bias`` the next
  address of its own segment counting upward from its own, else the next of the whole space from
  a random start; each host's victims (its brain's ``infected`` set) are tracked exactly, so it
  passes over them as the brain does: sweeps come back to them after one lap of a segment.
- ``hitlist`` (:class:`_HitListTargets`): its queue of (host, exploit) pairs, fed by its
  trusts, by the hosts that answered it and by the hosts whose worms delivered an exploit to
  its host, and its fallback scan, taken probe by probe in sending order across all worms of
  the slice, each answer learnt before the worm's next probe. A test drives a ``Brain`` and
  this queue side by side and checks they aim at the very same host, slot by slot.
- ``stealth`` (the same class): the same queue with its own segment as the fallback, a floor of
  1.001 s between probes, and, with probability ``interleave`` once it knows one, a benign
  request to a known-good service (an LRU map of the last 256 services that connected, keyed
  by port and protocol as the brain keys them) instead of an exploit: the request's answer
  feeds the same queue and map, and its host notes the prober as a peer.
All: when two probes reach one target within one time slice, the first processed, not
necessarily the earliest, infects it (an error below ``SLICE_S``).

Routers and host firewalls: a probe infects only if ``decide_flow`` allows it. The policy is
arrays over ``testbed.containment.PolicyClasses`` (hosts grouped so that the verdict depends only
on the source's and the target's class: exact, pinned pair by pair against decide_flow on every
shipped topology), with the delivery time of each class pair's route. A denied or unrouted probe
changes nothing for the classic and local-preference brains (they learn nothing from outcomes
but infected/already), so only its count is kept; for hitlist it is a silent outcome (and a
``vanished`` defence signal when that host answered the worm before, as in the engine).

Domain (else the event engine runs; ``fast_path_refusal`` says which): the classic,
local-preference or hitlist profile; no detectors watching and no automated response (so no
sensor events, no quarantine or block ever changes the policy); per-probe records off; no
``contained`` stop condition unless the network is one open segment (there it cannot hold before
the outbreak burns out); pacing the runtime's caps never bind (jitter below 1/3 keeps the rate
under the 1.5x rate cap; the probes in flight stay under ``max_in_flight``).
Benign users, backups and scanners are ignored: without records or a sensor they change nothing
the classic and local-preference worms see (they read no peers). A hitlist worm reads them (a
host that connects to its host joins its hit list, in event order), so with benign traffic it
runs on the event engine.

Hit lists: the next target of a hitlist worm depends on the order in which answers and
contacts arrived, per worm, to the event. A slice does not reorder them here: its probes are
taken one by one in sending order across every worm, and each answer (back within a
millisecond, the worm's next probe at least 1/200 s x 2/3 later) is learnt before that worm's
next probe. What a slice can still reorder is bounded: a delivery notes its prober on the
target's hit list at the probe's sending time, up to the delivery time (at most 0.2 ms) early,
and a worm woken within a slice starts after the slice's probes already taken (its first
probes' peers reach other worms' lists after probes of theirs sent a few milliseconds later).

stealth's default jitter (0.5) lets the runtime's rate cap (1.5 x its rate) shape its gaps,
so at its defaults ``pacing_refusal`` sends it to the event engine, like any worm with such a
jitter; below 1/3 it runs here.

Not on the fast path, and why (they stay on the event engine, exact there):
- ``adaptive`` (a bandit per worm over tactics and exploits, learning from every outcome and
  defence signal) and the observation-driven profiles (recon, mimic, planner): per-host brains
  by design.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from testbed.agent.brain import (
    INTERLEAVE,
    KNOWN_GOOD_MEMORY,
    MEMORY,
    MIN_GAP,
    STEALTH_MIN_GAP,
    AddressSpace,
    remember_peer,
)
from testbed.agent.events import TECHNIQUES
from testbed.agent.knowledge import address_value
from testbed.containment import PolicyClasses
from testbed.model.spec import Tier
from testbed.sim.services import benign_answer_ok, exploit_verdict

if TYPE_CHECKING:
    from testbed.sim.engine import Simulation
    from testbed.sim.truth import TruthLog

__all__ = ["FAST_PROFILES", "NOT_VULNERABLE", "PICK_TRIES", "REFUSED", "SLICE_S", "VULNERABLE",
           "AddressGrid", "fast_path_refusal", "pacing_refusal", "run_fast", "uniform_slots",
           "vulnerability_table"]

SLICE_S = 0.05
"""Virtual seconds processed per vectorised step."""
REFUSED, NOT_VULNERABLE, VULNERABLE = 0, 1, 2
"""Codes of ``vulnerability_table``: no service on the port, a service the exploit does not
accept, a service it infects (``testbed.gym.batched`` reads them too)."""
PICK_TRIES = 8  # Brain._pick_address
_Accepted = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(source, target, exploit) -> positions whose exploit the target's service accepts and the
policy lets through."""
FAST_PROFILES = ("classic", "local-preference", "hitlist", "stealth")
"""Profiles the fast path runs; the module docstring says why stealth and the others do not."""


def fast_path_refusal(simulation: Simulation) -> str | None:
    """Why the fast path cannot run ``simulation`` exactly (None: it can)."""
    spec = simulation.spec
    if spec.worm.profile not in FAST_PROFILES:
        return (f"profile {spec.worm.profile!r} (the fast path is for "
                f"{', '.join(FAST_PROFILES[:-1])} and {FAST_PROFILES[-1]}; paced interleaving, "
                "learning and observation are per-worm state)")
    if simulation.detectors is not None or (spec.detectors
                                            and simulation.scenario.monitored_segments()):
        return "detectors are watching"
    if spec.response.acts_on_alerts:
        return "automated response"
    if simulation.record_probes:
        return "per-probe records are on"
    if spec.worm.profile in ("hitlist", "stealth") and simulation.configs.has_benign:
        return "benign traffic (its contacts feed the hit lists, in event order)"
    topology = simulation.topology
    if "contained" in spec.stop.when and (
            topology.routers or len(topology.segments) > 1
            or any(not host.firewall.is_open for host in topology.hosts.values())):
        return "the 'contained' stop condition on a segmented network"
    binding = pacing_refusal(simulation)
    return None if binding is None else binding[0]


def pacing_refusal(simulation: Simulation) -> tuple[str, str] | None:
    """(why, scenario key) when the agent runtime's pacing caps could bind for this worm, which
    an array model that draws probe gaps from the rate alone does not reproduce (None: they
    never bind)."""
    worm = next(iter(simulation.configs.values())).worm
    if float(worm.params["jitter"]) >= 1 / 3:
        return "jitter of 1/3 or more (the runtime's rate cap would bind)", "worm.params.jitter"
    if float(worm.params["rate"]) * (worm.connect_timeout_s + worm.reply_timeout_s) >= \
            worm.max_in_flight:
        return "a rate at which the in-flight cap would bind", "worm.params.rate"
    return None


def uniform_slots(rng: np.random.Generator, total: int, own: np.ndarray) -> np.ndarray:
    """One address slot per entry of ``own`` (each prober's own slot), uniform over ``total``
    and drawn again while it is the prober's own, at most ``PICK_TRIES`` draws in all
    (``Brain._pick_address``); a slot still equal to ``own`` after that means no probe."""
    slot = rng.integers(0, total, own.size)
    for _ in range(PICK_TRIES - 1):
        again = slot == own
        if not again.any():
            break
        slot[again] = rng.integers(0, total, int(again.sum()))
    return slot


def vulnerability_table(simulation: Simulation) -> tuple[np.ndarray, list[tuple[str, str, int,
                                                                                   str]]]:
    """(host x exploit -> refused / not-vulnerable / vulnerable, exploit descriptions). Hosts
    sharing their services and patches objects share a row, computed once."""
    arsenal = next(iter(simulation.configs.values())).worm.arsenal
    rows: dict[tuple[int, ...], int] = {}
    distinct: list[list[int]] = []
    row_of: list[int] = []
    for host in simulation.hosts:
        key = (id(host.patched), *map(id, host.services))
        row = rows.get(key)
        if row is None:
            codes = []
            for exploit in arsenal:
                service = next((s for s in host.services
                                if s.port == exploit.port and s.proto == exploit.proto), None)
                codes.append(REFUSED if service is None else
                             VULNERABLE if exploit_verdict(host, service, exploit.vuln).accepted
                             else NOT_VULNERABLE)
            row = rows[key] = len(distinct)
            distinct.append(codes)
        row_of.append(row)
    table = np.array(distinct, dtype=np.int8).reshape(len(distinct), len(arsenal))[
        np.array(row_of, dtype=np.int64)]
    return table, [(e.vuln, e.service, e.port, e.proto) for e in arsenal]


def _flow_tables(simulation: Simulation,
                 exploits: list[tuple[str, str, int, str]]
                 ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """The policy as arrays, for a topology with routers or host firewalls (else (None, None,
    empty): every flow inside one open segment is allowed and takes the same time).

    ``allowed[source class, target class, exploit]``: ``decide_flow``'s verdict, exact per
    class pair (``testbed.containment.PolicyClasses``), asked only where the target class has
    a vulnerable service on the exploit's port. ``delays[source class, target class]``: from
    sending to the exploit's delivery, ARP on the last hop, SYN, SYN-ACK and data each crossing
    the path (``2 link + 3 one-way(routers)``; the event engine also resolves the first hop
    the first time a host sends through its router: at most 2 links = 52 us later, once per
    host).
    """
    topology = simulation.topology
    if not topology.routers and all(h.firewall.is_open for h in topology.hosts.values()) \
            and len(topology.segments) == 1:
        return None, None, np.zeros(0, dtype=np.int64)
    classes = PolicyClasses(topology)
    class_of = np.array(classes.of, dtype=np.int64)
    size = len(classes)
    allowed = np.zeros((size, size, len(exploits)), dtype=bool)
    delays = np.zeros((size, size))
    timing, network = simulation.timing, simulation.network
    for source_class in range(size):
        source_segment = classes.representative[source_class].segment
        for target_class in range(size):
            route = network.path(source_segment, classes.representative[target_class].segment)
            if route is None:
                continue
            delays[source_class, target_class] = (2 * timing.link_one_way_s
                                                  + 3 * timing.one_way(len(route[1])))
            exposed = set(classes.ports[target_class])  # the class's vulnerable (port, proto)
            for column, (_, _, port, proto) in enumerate(exploits):
                if (port, proto) in exposed:
                    allowed[source_class, target_class, column] = classes.allows(
                        source_class, target_class, port, proto)
    return allowed, delays, class_of


class AddressGrid:
    """The topology's scanned address space as arrays: draw index (``AddressSpace`` order)
    <-> host index, and each segment's range of draw indices (``cidrs`` are the segments')."""

    def __init__(self, simulation: Simulation, cidrs: tuple[str, ...]) -> None:
        hosts = simulation.hosts
        count = len(hosts)
        space = AddressSpace(cidrs)
        self.total = space.total
        firsts = np.array([first for first, _ in space.ranges], dtype=np.int64)
        self.range_offset = np.cumsum([0] + [size for _, size in space.ranges])[:-1]
        self.range_size = np.array([size for _, size in space.ranges], dtype=np.int64)
        addresses = np.fromiter((int(h.ip) for h in hosts), dtype=np.int64, count=count)
        order = np.argsort(firsts, kind="stable")
        self.range_of = order[np.searchsorted(firsts[order], addresses, side="right") - 1]
        self.slot_of = self.range_offset[self.range_of] + addresses - firsts[self.range_of]
        self.host_at = np.full(self.total, -1, dtype=np.int64)
        self.host_at[self.slot_of] = np.arange(count)
        self.addresses = addresses
        self._ranges = space.ranges

    def slot_addresses(self) -> np.ndarray:
        """The address (as an integer) of every draw index, built on demand."""
        return np.concatenate([np.arange(first, first + size, dtype=np.int64)
                               for first, size in self._ranges] or [np.zeros(0, np.int64)])


class _UniformTargets:
    """``classic``: a target uniform over every address (redrawn, at most 8 draws, while it is
    the host's own), an exploit uniform over the arsenal. Draws for a whole slice at once."""

    def __init__(self, grid: AddressGrid, rng: np.random.Generator, exploits: int,
                 params: dict[str, Any], accepted: _Accepted) -> None:
        self.grid, self.rng, self.exploits = grid, rng, exploits

    def wake(self, index: int) -> None:
        """Nothing per host: uniform scanning has no state."""

    def pick(self, rounds: list[tuple[np.ndarray, np.ndarray]]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(source, sent, target host or -1, exploit) of the slice's probes, by sending time."""
        rng, grid = self.rng, self.grid
        source = np.concatenate([due for due, _ in rounds])
        sent = np.concatenate([clock for _, clock in rounds])
        order = np.argsort(sent, kind="stable")
        source, sent = source[order], sent[order]
        own = grid.slot_of[source]
        slot = uniform_slots(rng, grid.total, own)
        aimed = slot != own
        exploit = rng.integers(0, self.exploits, source.size)
        return source[aimed], sent[aimed], grid.host_at[slot[aimed]], exploit[aimed]


class _SweepTargets:
    """``local-preference`` (``Brain._choose_tactic``, ``_pick_address``): per probe, with
    probability ``local_bias`` the next address of the host's own segment counting upward from
    its own address, else the next address of the whole space counting from a random start
    drawn at wake; an address is passed over (the next one taken, at most 8 in one slot) when
    it is the host's own or one the host has itself seen infected (outcome infected or
    already): those victims are tracked exactly, per host, as the brain's ``infected`` set.
    Each round of a slice holds a host at most once, so the counters advance in its order."""

    def __init__(self, grid: AddressGrid, rng: np.random.Generator, exploits: int,
                 params: dict[str, Any], accepted: _Accepted) -> None:
        self.grid, self.rng, self.exploits, self.accepted = grid, rng, exploits, accepted
        self.local_bias = float(params["local_bias"])
        count = grid.slot_of.size
        self.sequential = np.zeros(count, dtype=np.int64)
        self.local = np.zeros(count, dtype=np.int64)
        self.victims: set[int] = set()  # source * hosts + target: the brains' infected sets
        self.seen_infected = np.zeros(count, dtype=bool)  # some brain has this host in its set

    def wake(self, index: int) -> None:
        grid = self.grid
        self.sequential[index] = self.rng.integers(0, grid.total)
        self.local[index] = grid.slot_of[index] - grid.range_offset[grid.range_of[index]] + 1

    def learn(self, source: np.ndarray, target: np.ndarray, exploit: np.ndarray) -> None:
        """A round's probes whose exploit the target accepts (outcome infected or already):
        each source now has its target in its ``infected`` set (``Brain.observe``). Learnt
        before the next round picks: the reply is back within a millisecond, the source's next
        probe a gap (at least 1/200 s x 2/3) later."""
        hit = self.accepted(source, target, exploit)
        self.victims.update((source[hit] * self.grid.slot_of.size + target[hit]).tolist())
        self.seen_infected[target[hit]] = True

    def pick(self, rounds: list[tuple[np.ndarray, np.ndarray]]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`_UniformTargets.pick`; a slot that passed over 8 addresses sends nothing."""
        grid, rng = self.grid, self.rng
        picked = []
        for due, clock in rounds:
            local = rng.random(due.size) < self.local_bias
            target = np.full(due.size, -1, dtype=np.int64)
            chosen = np.zeros(due.size, dtype=bool)
            pending = np.arange(due.size)
            for _ in range(PICK_TRIES):
                source, near = due[pending], local[pending]
                home = grid.range_of[source]
                size = grid.range_size[home]
                local_index = self.local[source] % size
                sequential_index = self.sequential[source] % grid.total
                slot = np.where(near, grid.range_offset[home] + local_index, sequential_index)
                self.local[source[near]] = (local_index[near] + 1) % size[near]
                self.sequential[source[~near]] = (sequential_index[~near] + 1) % grid.total
                host = grid.host_at[slot]
                skip = slot == grid.slot_of[source]
                known = np.flatnonzero(~skip & (host >= 0))
                known = known[self.seen_infected[host[known]]]
                if known.size:
                    keys = (source[known] * grid.slot_of.size + host[known]).tolist()
                    skip[known] = [key in self.victims for key in keys]
                taken = pending[~skip]
                target[taken], chosen[taken] = host[~skip], True
                pending = pending[skip]
                if not pending.size:
                    break
            exploit = rng.integers(0, self.exploits, due.size)
            picked.append((due[chosen], clock[chosen], target[chosen], exploit[chosen]))
            self.learn(due[chosen], target[chosen], exploit[chosen])
        source = np.concatenate([p[0] for p in picked])
        sent = np.concatenate([p[1] for p in picked])
        order = np.argsort(sent, kind="stable")
        return (source[order], sent[order], np.concatenate([p[2] for p in picked])[order],
                np.concatenate([p[3] for p in picked])[order])


class _HitListWorm:
    """One active hit-list worm's state: ``Brain``'s for the profile, keyed by host index (an
    address no host uses, from a trust, by ``-1 - its integer``)."""

    __slots__ = ("answered", "done", "hitlist", "hitlisted", "infected", "known_good", "local",
                 "sequential")

    def __init__(self, local: int, sequential: int) -> None:
        self.hitlist: deque[tuple[int, int]] = deque()  # (target, exploit), in arrival order
        self.hitlisted: set[int] = set()
        self.infected: set[int] = set()  # seen infected or already (its own outcomes)
        self.done: set[tuple[int, int]] = set()  # (target, exploit) with a verdict
        self.answered: OrderedDict[int, None] = OrderedDict()  # hosts that answered, LRU
        # stealth: services that connected, (target, exploit column) -> the exploit's service
        # name, LRU (``Brain._known_good``: keyed by port and protocol, as the columns are)
        self.known_good: OrderedDict[tuple[int, int], str] = OrderedDict()
        self.local, self.sequential = local, sequential


class _HitListTargets:
    """``hitlist`` and ``stealth`` (``Brain._choose_tactic``, ``_next_probe``, ``_pop_hitlist``,
    ``observe``, ``see_peer``; stealth's interleaved requests: the module docstring): each
    worm works a queue of (host, exploit) pairs fed by its trusts, by every host that answered
    one of its probes (connected or refused) and by every host whose worm delivered an exploit
    to its host, before or after it woke (``Simulation._note_peer``, at most 1,024 kept per
    host); pairs it has a verdict for, and hosts it has seen infected, are passed over. With
    the queue empty it scans with its ``fallback`` tactic (uniform, sequential or its own
    segment upward from its own address), passing over its own address and its victims, with
    an exploit uniform over the arsenal.

    Exact in order, not only in distribution, as far as a slice allows: the slice's probes are
    taken in sending order across all worms, and each probe's answer is learnt before the next
    one is picked (the answer is back within a millisecond, the worm's next probe a gap, at
    least 1/200 s x 2/3, later); a delivery puts its prober on the target's hit list at once,
    up to its delivery time (at most 0.2 ms) early, and a worm woken within a slice starts
    after the probes of that slice already taken (see the module docstring).
    Outcomes come from the same tables the infections do: no route: ``prohibited`` at once (a
    defence signal); no host at the address: silent; the policy drops the flow: a timeout,
    learnt when the worm gives up (``flush``), a ``vanished`` defence signal if that host
    answered meanwhile; ``refused``: no service on the port; else connected, and
    ``exploit_verdict`` decides. Signals are written as the event engine writes them.
    """

    def __init__(self, grid: AddressGrid, rng: np.random.Generator, exploits: int,
                 params: dict[str, Any], accepted: _Accepted, *,
                 simulation: Simulation, truth: TruthLog, table: np.ndarray) -> None:
        self.grid, self.rng, self.exploits = grid, rng, exploits
        self.simulation, self.truth = simulation, truth
        self.stealth = simulation.spec.worm.profile == "stealth"
        # Brain._fallback_tactic: stealth sweeps its own segment
        self.fallback = "local" if self.stealth else str(params["fallback"])
        self.interleave = float(params["interleave"]) if self.stealth else 0.0
        self.signal_detail = {"rate": round(float(params["rate"]), 4),
                              "encoding": str(params["encoding"])}
        self.codes: list[list[int]] = table.tolist()
        topology = simulation.topology
        config = next(iter(simulation.configs.values()))
        arsenal = config.worm.arsenal
        self.ports = [(exploit.port, exploit.proto) for exploit in arsenal]
        self.services = [exploit.service for exploit in arsenal]
        # the first column of each (port, proto): Brain keys known-good services by them
        self.column_of = {port: self.ports.index(port) for port in self.ports}
        self._ignored: dict[tuple[int, int], bool] = {}  # (host, column): UDP, no answer
        self.connect_timeout = config.worm.connect_timeout_s
        self.request_timeout = config.worm.connect_timeout_s + config.worm.reply_timeout_s
        # silent outcomes the worm learns when it gives up: (time, order, worm, target,
        # column, tactic), taken in time order before each later probe (Brain.observe's
        # ``vanished`` depends on what answered meanwhile)
        self.pending: list[tuple[float, int, int, int, int, str]] = []
        self._order = 0
        # where no route leads, connect() fails at once (``prohibited``, a defence signal)
        network = simulation.network
        segments = list(topology.segments)
        self.host_segment: list[str] = [host.segment for host in simulation.hosts]
        self.no_route = {(a, b) for a in segments for b in [*segments, None]
                         if b is None or network.path(a, b) is None}
        # (network, mask, name) of every segment: where an address no host uses lies (not
        # NetworkModel.segment_of, whose address index a fast run never needs)
        self.segment_bounds = [(int(s.cidr.network_address), int(s.cidr.netmask), name)
                               for name, s in topology.segments.items()]
        self.space = AddressSpace(config.cidrs)  # draw index (slot) <-> address
        self.dead_trusts: dict[int, str] = {}  # the key of a trusted address no host uses
        if topology.routers or len(topology.segments) > 1 or any(
                not host.firewall.is_open for host in topology.hosts.values()):
            classes = PolicyClasses(topology)
            self.class_of: list[int] | None = list(classes.of)
            self.passes = [[[classes.allows(source, target, port, proto)
                             for port, proto in self.ports]
                            for target in range(len(classes))] for source in range(len(classes))]
        else:
            self.class_of, self.passes = None, []
        self.may_wake = simulation.may_wake
        self.worms: dict[int, _HitListWorm] = {}
        self.peers: dict[int, OrderedDict[int, None]] = {}
        self.slot_of: list[int] = grid.slot_of.tolist()
        self.host_at: list[int] = grid.host_at.tolist()
        self.range_of: list[int] = grid.range_of.tolist()
        self.range_offset: list[int] = grid.range_offset.tolist()
        self.range_size: list[int] = grid.range_size.tolist()

    # ---- per worm --------------------------------------------------------------------------
    def wake(self, index: int) -> None:
        grid = self.grid
        sequential = int(self.rng.integers(0, grid.total))
        local = self.slot_of[index] - self.range_offset[self.range_of[index]] + 1
        worm = self.worms[index] = _HitListWorm(local, sequential)
        config = self.simulation.configs[self.simulation.names[index]]
        for address in config.trusts:  # Brain.__init__: no own-address or space check
            self._add(worm, self._key(address))
        for peer in self.peers.get(index, ()):
            self._see_peer(worm, index, peer)

    def _key(self, address: str) -> int:
        slot = self.space.index_of(address)
        host = -1 if slot is None else self.host_at[slot]
        if host >= 0:
            return host
        key = -1 - address_value(address)
        self.dead_trusts[key] = address
        return key

    def _add(self, worm: _HitListWorm, target: int) -> None:
        """``Brain._add_to_hitlist``."""
        if target in worm.hitlisted or len(worm.hitlisted) >= MEMORY:
            return
        worm.hitlisted.add(target)
        if self.exploits == 1:
            worm.hitlist.append((target, 0))
        else:
            worm.hitlist.extend((target, exploit) for exploit in range(self.exploits))

    def _see_peer(self, worm: _HitListWorm, index: int, peer: int) -> None:
        """``Brain.see_peer`` (every host is in the scanned space)."""
        if peer not in worm.hitlisted and peer != index:
            self._add(worm, peer)

    def _note_peer(self, host: int, peer: int) -> None:
        """``Simulation._note_peer``: ``peer``'s worm delivered an exploit to ``host``."""
        if not self.may_wake[host]:
            return  # never wakes: never read
        peers = self.peers.get(host)
        if peers is None:
            peers = self.peers[host] = OrderedDict()
        worm = self.worms.get(host)
        if remember_peer(peers, peer) and worm is not None:
            self._see_peer(worm, host, peer)

    # ---- per probe -------------------------------------------------------------------------
    def _from_hitlist(self, worm: _HitListWorm) -> tuple[int, int] | None:
        """``Brain._pop_hitlist``: the next pair not yet judged, on a host not seen infected."""
        hitlist, infected, done = worm.hitlist, worm.infected, worm.done
        while hitlist:
            target, exploit = hitlist.popleft()
            if target in infected or (target, exploit) in done:
                continue
            return target, exploit
        return None

    def _scan(self, worm: _HitListWorm, index: int, draws: list[int]) -> tuple[int, int] | None:
        """``Brain._pick_address`` with the fallback tactic: (target host index, ``-1`` for an
        address no host uses; its slot), None when 8 addresses in a row were passed over."""
        own = self.slot_of[index]
        host_at = self.host_at
        for attempt in range(PICK_TRIES):
            if self.fallback == "uniform":
                slot = draws[attempt]
            elif self.fallback == "sequential":
                slot = worm.sequential
                worm.sequential = (slot + 1) % self.grid.total
            else:
                home = self.range_of[index]
                size = self.range_size[home]
                offset = worm.local % size
                worm.local = (offset + 1) % size
                slot = self.range_offset[home] + offset
            if slot == own:
                continue
            host = host_at[slot]
            if host < 0 or host not in worm.infected:
                return host, slot
        return None

    def _signal(self, index: int, kind: str, target: int, column: int, when: float,
                tactic: str, slot: int = -1) -> None:
        """A defence signal, written as ``Simulation._probe_done`` writes it."""
        port, proto = self.ports[column]
        if target >= 0:
            address = str(self.simulation.hosts[target].ip)
        elif slot >= 0:  # a scanned address no host uses
            address = self.space.at(slot)
        else:  # a trusted address no host uses
            address = self.dead_trusts[target]
        self.truth.emit(self.simulation.names[index], "defence-signal", when, signal=kind,
                        target=address, port=port, proto=proto, tactic=tactic,
                        detail=self.signal_detail)

    def _silent(self, index: int, worm: _HitListWorm, target: int, column: int, when: float,
                tactic: str, *, after: float | None = None) -> None:
        """A timeout, unreachable or prohibited: ``vanished`` when that host answered before.
        ``after``: learnt that many seconds later (a timeout), in time order with the rest."""
        if after is not None:
            if target >= 0:  # an address no host uses never answered: nothing to learn
                self._order += 1
                heapq.heappush(self.pending, (when + after, self._order, index, target, column,
                                              tactic))
            return
        if target >= 0 and target in worm.answered:
            del worm.answered[target]
            for key in [key for key in worm.known_good if key[0] == target]:
                del worm.known_good[key]
            self._signal(index, "vanished", target, column, when, tactic)

    def _connected(self, worm: _HitListWorm, target: int, column: int) -> None:
        """``Brain._remember_answer`` and, for a connection, ``_known_good``."""
        answered = worm.answered
        answered[target] = None
        answered.move_to_end(target)
        if len(answered) > MEMORY:
            answered.popitem(last=False)
        self._add(worm, target)
        if column >= 0 and self.stealth:
            known_good = worm.known_good
            key = (target, self.column_of[self.ports[column]])
            known_good[key] = self.services[column]
            known_good.move_to_end(key)
            if len(known_good) > KNOWN_GOOD_MEMORY:
                known_good.popitem(last=False)

    def _unrouted(self, index: int, target: int, slot: int) -> bool:
        """Whether no route leads from ``index``'s segment to the target's (``prohibited``)."""
        segment: str | None
        if target >= 0:
            segment = self.host_segment[target]
        elif slot >= 0:  # a scanned address no host uses
            segment = self._segment_at(address_value(self.space.at(slot)))
        else:  # a trusted address no host uses: -1 - its integer
            segment = self._segment_at(-1 - target)
        return (self.host_segment[index], segment) in self.no_route

    def _segment_at(self, value: int) -> str | None:
        return next((name for network, mask, name in self.segment_bounds
                     if value & mask == network), None)

    def flush(self, until: float) -> None:
        """Learn the silent outcomes due by ``until``."""
        pending, worms = self.pending, self.worms
        while pending and pending[0][0] <= until:
            when, _, index, target, column, tactic = heapq.heappop(pending)
            self._silent(index, worms[index], target, column, when, tactic)

    def _answer(self, index: int, worm: _HitListWorm, target: int, exploit: int, when: float,
                tactic: str, slot: int = -1) -> None:
        """``Brain.observe`` for the outcome the tables give; a delivered exploit notes its
        prober on the target's hit list."""
        if self.no_route and self._unrouted(index, target, slot):
            self._silent(index, worm, target, exploit, when, tactic)
            self._signal(index, "prohibited", target, exploit, when, tactic, slot)
            return
        if target < 0:
            return  # no host answers: unreachable or a timeout, never an answer it had
        code = self.codes[target][exploit]
        if self.class_of is not None and not self.passes[
                self.class_of[index]][self.class_of[target]][exploit]:
            self._silent(index, worm, target, exploit, when, tactic,
                         after=self.connect_timeout)  # dropped by the policy: a timeout
            return
        if code == REFUSED:
            key = (target, self.column_of[self.ports[exploit]])
            if key in worm.known_good:  # it connected there before
                del worm.known_good[key]
                self._signal(index, "refused", target, exploit, when, tactic)
            self._connected(worm, target, -1)
            return
        self._connected(worm, target, exploit)
        if code == VULNERABLE:
            worm.infected.add(target)
        worm.done.add((target, exploit))
        self._note_peer(target, index)

    def _interleaved(self, index: int, worm: _HitListWorm, choice: float, when: float) -> None:
        """stealth's connection to a known-good service (``Brain._next_probe``; the engine's
        ``_benign_exchange``): a benign request, not an exploit."""
        keys = list(worm.known_good)
        target, column = keys[int(choice * len(keys))]
        if self.class_of is not None and not self.passes[
                self.class_of[index]][self.class_of[target]][column]:
            self._silent(index, worm, target, column, when, INTERLEAVE,
                         after=self.request_timeout)
            return
        self._note_peer(target, index)  # the flow opened: its host saw us
        ignored = self._ignored.get((target, column))
        if ignored is None:
            port, proto = self.ports[column]
            service = next(s for s in self.simulation.hosts[target].services
                           if s.port == port and s.proto == proto)
            ignored = self._ignored[(target, column)] = proto == "udp" and not \
                benign_answer_ok(worm.known_good[(target, column)], service)
        if ignored:  # a UDP service that does not answer the request: a timeout
            self._silent(index, worm, target, column, when, INTERLEAVE,
                         after=self.request_timeout)
            return
        self._connected(worm, target, column)  # "ok", or "failed" (connected all the same)

    def pick(self, rounds: list[tuple[np.ndarray, np.ndarray]]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`_UniformTargets.pick`, the slice's probes taken one by one in sending
        order (see the class docstring)."""
        rng = self.rng
        source = np.concatenate([due for due, _ in rounds])
        sent = np.concatenate([clock for _, clock in rounds])
        order = np.argsort(sent, kind="stable")
        source, sent = source[order], sent[order]
        size = source.size
        exploit_draws = rng.integers(0, self.exploits, size).tolist()
        interleave = self.interleave
        shares = rng.random((size, 2)).tolist() if interleave > 0 else None
        slot_draws = (rng.integers(0, self.grid.total, (size, PICK_TRIES)).tolist()
                      if self.fallback == "uniform" else None)
        targets = np.full(size, -1, dtype=np.int64)
        exploits = np.zeros(size, dtype=np.int64)
        aimed = np.zeros(size, dtype=bool)
        worms = self.worms
        for position, (index, when) in enumerate(zip(source.tolist(), sent.tolist(),
                                                     strict=True)):
            if self.pending and self.pending[0][0] <= when:
                self.flush(when)
            worm = worms[index]
            if shares is not None and worm.known_good and shares[position][0] < interleave:
                aimed[position] = True  # counted as a probe; never an infection (target -1)
                self._interleaved(index, worm, shares[position][1], when)
                continue
            pair = self._from_hitlist(worm)
            if pair is None:
                tactic = self.fallback
                scanned = self._scan(worm, index,
                                     slot_draws[position] if slot_draws is not None else [])
                if scanned is None:
                    continue
                target, slot = scanned
                exploit = exploit_draws[position]
            else:
                tactic, slot = "hitlist", -1
                target, exploit = pair
            aimed[position] = True
            targets[position], exploits[position] = max(target, -1), exploit
            self._answer(index, worm, target, exploit, when, tactic, slot)
        return source[aimed], sent[aimed], targets[aimed], exploits[aimed]


_TARGETS: dict[str, type[_UniformTargets] | type[_SweepTargets]] = {
    "classic": _UniformTargets, "local-preference": _SweepTargets}
"""The array profiles' target choice; ``hitlist``'s (:class:`_HitListTargets`) also needs the
simulation, to read trusts and write defence signals."""


def run_fast(simulation: Simulation, truth: TruthLog) -> tuple[float, str, int]:
    """Run the outbreak; returns (end, stop reason, probes sent)."""
    spec, timing = simulation.spec, simulation.timing
    hosts = simulation.hosts
    count = len(hosts)
    config = next(iter(simulation.configs.values()))
    params = config.worm.params
    profile = spec.worm.profile
    base_gap = 1.0 / float(params["rate"])
    gap_floor = STEALTH_MIN_GAP if profile == "stealth" else MIN_GAP  # Brain._gap
    jitter = float(params["jitter"])
    encoding = str(params["encoding"])
    grid = AddressGrid(simulation, config.cidrs)
    table, exploits = vulnerability_table(simulation)
    allowed, delays, class_of = _flow_tables(simulation, exploits)
    flat_delay = 2 * timing.link_one_way_s + 3 * timing.one_way(0)
    rng = np.random.default_rng(simulation.seed)
    active = np.zeros(count, dtype=bool)
    # the active hosts' indices, rebuilt after wakes: which hosts are due is then asked of the
    # active ones only (a slow worm's early slices would otherwise scan every host)
    awake = np.zeros(0, dtype=np.int64)
    woken = False
    next_probe = np.full(count, np.inf)
    generation = np.zeros(count, dtype=np.int64)
    susceptible = table.max(axis=1) == VULNERABLE
    patient_zero = [int(np.flatnonzero(grid.addresses ==
                                       int(simulation.topology.hosts[name].ip))[0])
                    for name in simulation.patient_zero]
    crown = np.array([h.tier == Tier.CROWN_JEWEL for h in hosts])
    left = int(susceptible.sum()) - int(susceptible[patient_zero].sum())
    end = simulation.duration
    wake_at = spec.worm.start_s + timing.wake_delay_s
    probes = 0
    stop_at: float | None = None
    reason = "time limit"

    def accepted(source: np.ndarray, target: np.ndarray, exploit: np.ndarray) -> np.ndarray:
        """Which probes reach a service that accepts their exploit (infected or already)."""
        live = np.flatnonzero(target >= 0)
        live = live[table[target[live], exploit[live]] == VULNERABLE]
        if allowed is not None and live.size:  # the policy drops some of them
            live = live[allowed[class_of[source[live]], class_of[target[live]], exploit[live]]]
        return live

    targets: _UniformTargets | _SweepTargets | _HitListTargets
    if profile in ("hitlist", "stealth"):
        targets = _HitListTargets(grid, rng, len(exploits), params, accepted,
                                  simulation=simulation, truth=truth, table=table)
    else:
        targets = _TARGETS[profile](grid, rng, len(exploits), params, accepted)

    def wake(index: int, when: float, why: str, level: int) -> None:
        nonlocal woken
        active[index] = True
        woken = True
        next_probe[index] = when
        generation[index] = level
        targets.wake(index)
        truth.emit(simulation.names[index], "wake", when, generation=level,
                   detail={"reason": why, "profile": profile})

    if wake_at <= end:
        for index in patient_zero:
            wake(index, wake_at, "wake-file", 0)
    slice_start = wake_at
    while slice_start < end and (stop_at is None or slice_start < stop_at):
        slice_end = min(slice_start + SLICE_S, end)
        while True:
            if woken:
                awake, woken = np.flatnonzero(active), False
            due = awake[next_probe[awake] < slice_end]
            if due.size == 0:
                break
            rounds = []  # each host at most once per round, in its own time order
            clock = next_probe[due]
            while due.size:
                rounds.append((due, clock))
                gaps = base_gap * (1.0 + jitter * (2.0 * rng.random(due.size) - 1.0))
                clock = clock + np.maximum(gaps, gap_floor)
                keep = clock < slice_end
                next_probe[due[~keep]] = clock[~keep]
                due, clock = due[keep], clock[keep]
            source, sent, target, exploit = targets.pick(rounds)
            probes += source.size
            hit = accepted(source, target, exploit)
            hit = hit[~active[target[hit]]]
            for position in hit:  # few: new infections, in delivery order
                victim = int(target[position])
                if active[victim]:
                    continue
                parent = int(source[position])
                when = float(sent[position]) + (
                    flat_delay if delays is None else
                    float(delays[class_of[parent], class_of[victim]]))
                if when > end:
                    continue
                vuln, service, port, proto = exploits[int(exploit[position])]
                level = int(generation[parent]) + 1
                truth.emit(simulation.names[victim], "infection", when,
                           technique=TECHNIQUES["tool-transfer"], source=str(hosts[parent].ip),
                           parent=simulation.names[parent], vuln=vuln, service=service,
                           port=port, proto=proto, encoding=encoding, generation=level)
                wake(victim, when, "infection", level)
                simulation.infected.setdefault(simulation.names[victim], when)
                if susceptible[victim]:
                    left -= 1
                if stop_at is None and (
                        ("all-infected" in spec.stop.when and left == 0)
                        or ("crown-jewel-infected" in spec.stop.when and crown[victim])):
                    reason = "all-infected" if left == 0 else "crown-jewel-infected"
                    stop_at = when + spec.stop.grace_s
        slice_start = slice_end
    finish = min(end, stop_at) if stop_at is not None else end
    if isinstance(targets, _HitListTargets):
        targets.flush(finish)  # silent outcomes learnt before the run ends
    return finish, reason, probes
