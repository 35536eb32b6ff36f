"""The vectorised fast path: the classic worm, with arrays, no objects per host or per probe.

Owns: when the fast path applies (:func:`fast_path_refusal`) and running it
(:func:`run_fast_classic`), writing the same ground truth the event engine writes with per-probe
records off (wakes and infections; no detectors, alerts or actions exist in its domain).

Semantics, those of ``Brain`` for the ``classic`` profile: every active host probes from the
moment it wakes, at gaps ``(1 / rate) * (1 + jitter * (2u - 1))``; each probe's target is uniform
over the topology's usable addresses (drawn again when it is the host's own address, at most 8
draws), its exploit uniform over the arsenal; a probe to a live host's vulnerable, unpatched
service infects it unless it is already infected (``testbed.sim.services.exploit_verdict``), at
the exploit's delivery time (ARP, SYN, SYN-ACK, data: ``2 link + 3 one-way``), and the new host
starts probing at once. Random draws come from one numpy stream per run (seeded from the run's
seed), not from each host's ``random.Random``: runs are reproducible and distributed as the
brain's, not draw-for-draw identical to the event engine. That equivalence is pinned by
``tests/unit/test_sim_fastpath.py``: mean infected curves of both over many seeds, on a flat
and on a routed, firewalled network, within stated margins.

Two simplifications, bounded: the brain also skips addresses it has itself seen answer
infected or already; here they are probed again, with no effect but an ``already`` (no infection
is lost or gained: those hosts are infected; a skipped slot's redraw lands on a new address with
probability victims-per-host / addresses, below 1e-3 while the outbreak grows). And when two
probes reach one target within one time slice, the first processed, not necessarily the
earliest, infects it (an error below ``SLICE_S``). Tracking every host's victims (tried: sorted
key arrays) made a 100,000-host run 150 times slower and moved the fitted growth rate by 0.3 %.

Routers and host firewalls: a probe infects only if ``decide_flow`` allows it. The policy is
arrays over ``testbed.containment.PolicyClasses`` (hosts grouped so that the verdict depends only
on the source's and the target's class: exact, pinned pair by pair against decide_flow on every
shipped topology), with the delivery time of each class pair's route. A denied or unrouted probe
changes nothing for the classic brain (it does not learn from outcomes), so only its count is
kept.

Domain (else the event engine runs; ``fast_path_refusal`` says which): the classic profile; no
detectors watching and no automated response (so no sensor events, no quarantine or block ever
changes the policy); per-probe records off; no ``contained`` stop condition unless the
network is one open segment (there it cannot hold before the outbreak burns out); pacing the
runtime's caps never bind (jitter below 1/3 keeps the rate under the 1.5x rate cap; the probes
in flight stay under ``max_in_flight``).
Benign users, backups and scanners are ignored: without records or a sensor they change nothing
a classic worm sees. Still on the event engine: local-preference, hitlist, stealth (their
brains' tactics -- own-subnet sweeps, hit lists fed by peers, interleaving -- are not in arrays
yet) and adaptive (per-host brains by design).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from testbed.agent.brain import AddressSpace
from testbed.agent.events import TECHNIQUES
from testbed.containment import PolicyClasses
from testbed.model.spec import Tier
from testbed.sim.services import exploit_verdict

if TYPE_CHECKING:
    from testbed.sim.engine import Simulation
    from testbed.sim.truth import TruthLog

__all__ = ["SLICE_S", "fast_path_refusal", "run_fast_classic"]

SLICE_S = 0.05
"""Virtual seconds processed per vectorised step."""
_REFUSED, _NOT_VULNERABLE, _VULNERABLE = 0, 1, 2
_PICK_TRIES = 8  # Brain._pick_address


def fast_path_refusal(simulation: Simulation) -> str | None:
    """Why the fast path cannot run ``simulation`` exactly (None: it can)."""
    spec = simulation.spec
    if spec.worm.profile != "classic":
        return f"profile {spec.worm.profile!r} (the fast path is for classic)"
    if simulation.detectors is not None or (spec.detectors
                                            and simulation.scenario.monitored_segments()):
        return "detectors are watching"
    if spec.response.acts_on_alerts:
        return "automated response"
    if simulation.record_probes:
        return "per-probe records are on"
    topology = simulation.topology
    if "contained" in spec.stop.when and (
            topology.routers or len(topology.segments) > 1
            or any(not host.firewall.is_open for host in topology.hosts.values())):
        return "the 'contained' stop condition on a segmented network"
    config = next(iter(simulation.configs.values()))
    params, worm = config.worm.params, config.worm
    if float(params["jitter"]) >= 1 / 3:
        return "jitter of 1/3 or more (the runtime's rate cap would bind)"
    if float(params["rate"]) * (worm.connect_timeout_s + worm.reply_timeout_s) >= \
            worm.max_in_flight:
        return "a rate at which the in-flight cap would bind"
    return None


def _vulnerability_table(simulation: Simulation) -> tuple[np.ndarray, list[tuple[str, str, int,
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
                codes.append(_REFUSED if service is None else
                             _VULNERABLE if exploit_verdict(host, service, exploit.vuln).accepted
                             else _NOT_VULNERABLE)
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


def run_fast_classic(simulation: Simulation, truth: TruthLog) -> tuple[float, str, int]:
    """Run the outbreak; returns (end, stop reason, probes sent)."""
    spec, timing = simulation.spec, simulation.timing
    hosts = simulation.hosts
    count = len(hosts)
    config = next(iter(simulation.configs.values()))
    params = config.worm.params
    base_gap = 1.0 / float(params["rate"])
    jitter = float(params["jitter"])
    encoding = str(params["encoding"])
    space = AddressSpace(config.cidrs)
    total = space.total
    firsts = np.array([first for first, _ in space.ranges], dtype=np.int64)
    offsets = np.cumsum([0] + [count for _, count in space.ranges])[:-1]
    addresses = np.fromiter((int(h.ip) for h in hosts), dtype=np.int64, count=count)
    order = np.argsort(firsts, kind="stable")
    in_range = order[np.searchsorted(firsts[order], addresses, side="right") - 1]
    slot_of = offsets[in_range] + addresses - firsts[in_range]  # host -> its draw index
    host_at = np.full(total, -1, dtype=np.int64)
    host_at[slot_of] = np.arange(count)
    table, exploits = _vulnerability_table(simulation)
    allowed, delays, class_of = _flow_tables(simulation, exploits)
    flat_delay = 2 * timing.link_one_way_s + 3 * timing.one_way(0)
    rng = np.random.default_rng(simulation.seed)
    active = np.zeros(count, dtype=bool)
    next_probe = np.full(count, np.inf)
    generation = np.zeros(count, dtype=np.int64)
    susceptible = table.max(axis=1) == _VULNERABLE
    patient_zero = [int(np.flatnonzero(addresses == int(simulation.topology.hosts[name].ip))[0])
                    for name in simulation.patient_zero]
    crown = np.array([h.tier == Tier.CROWN_JEWEL for h in hosts])
    left = int(susceptible.sum()) - int(susceptible[patient_zero].sum())
    end = simulation.duration
    wake_at = spec.worm.start_s + timing.wake_delay_s
    probes = 0
    stop_at: float | None = None
    reason = "time limit"

    def wake(index: int, when: float, why: str, level: int) -> None:
        active[index] = True
        next_probe[index] = when
        generation[index] = level
        truth.emit(simulation.names[index], "wake", when, generation=level,
                   detail={"reason": why, "profile": "classic"})

    if wake_at <= end:
        for index in patient_zero:
            wake(index, wake_at, "wake-file", 0)
    slice_start = wake_at
    while slice_start < end and (stop_at is None or slice_start < stop_at):
        slice_end = min(slice_start + SLICE_S, end)
        while True:
            due = np.flatnonzero(next_probe < slice_end)
            if due.size == 0:
                break
            sources, times = [], []
            clock = next_probe[due]
            while due.size:
                sources.append(due)
                times.append(clock)
                gaps = base_gap * (1.0 + jitter * (2.0 * rng.random(due.size) - 1.0))
                clock = clock + gaps
                keep = clock < slice_end
                next_probe[due[~keep]] = clock[~keep]
                due, clock = due[keep], clock[keep]
            source = np.concatenate(sources)
            sent = np.concatenate(times)
            order = np.argsort(sent, kind="stable")
            source, sent = source[order], sent[order]
            probes += source.size
            slot = rng.integers(0, total, source.size)
            own = slot_of[source]
            for _ in range(_PICK_TRIES - 1):
                again = slot == own
                if not again.any():
                    break
                slot[again] = rng.integers(0, total, int(again.sum()))
            aimed = slot != own
            exploit = rng.integers(0, len(exploits), source.size)
            target = host_at[slot]
            live = aimed & (target >= 0)
            code = np.zeros(source.size, dtype=np.int8)
            code[live] = table[target[live], exploit[live]]
            hit = np.flatnonzero((code == _VULNERABLE) & ~active[np.maximum(target, 0)])
            if allowed is not None and hit.size:  # the policy drops some of them
                hit = hit[allowed[class_of[source[hit]], class_of[target[hit]], exploit[hit]]]
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
    return finish, reason, probes
