"""Many episodes of one scenario at once, in numpy arrays: the engine under
``testbed.gym.vector.DefendVectorEnv`` (issue 14's speed goal).

Owns: :class:`BatchedOutbreak` -- E episodes of one scenario advanced together in slices of
``SLICE_S`` (50 ms) virtual seconds, with state per (episode, host) and per (episode, source,
address) as arrays, and :func:`batched_refusal` (what is out of its domain). It is distributed
like the exact event engine (``testbed.sim.engine``) on its domain, not draw-for-draw identical:
one numpy random stream drives the whole batch.

What is modelled, and from where:
- the worm (classic, local-preference): probe gaps ``(1 / rate)(1 + jitter (2u - 1))``, targets
  as the brain chooses them (``Brain._pick_address``; the sweep counters and the passing over
  the source's own address and its known victims, as ``testbed.sim.fastpath``), exploit
  uniform over the arsenal, infection at delivery (``2 link + 3 one-way``) when the target's
  service is vulnerable (``fastpath.vulnerability_table``) and the policy allows it
  (``PolicyClasses`` verdicts, plus quarantine of either end or a block of the source in force
  at that time); patient zero wakes at ``start_s + wake_delay_s``; a new victim probes at once.
- benign users (Poisson requests, ``per_minute``, target uniform over the job's targets; the
  next request a gap after the previous one finished, up to 3 s later when it went unanswered)
  and backups (rounds every ``every_s`` from a uniform start, the targets in order, four at a time,
  an unanswered one holding its slot 3 s or until its host gives up resolving its gateway, each
  meeting the containment of its start).
- the network's answer to each attempt (``testbed.sim.network.NetworkModel.open``) as the
  sensor sees it, then ``ContactTracker``: on a shared segment a host first resolves the
  address (ARP; a dead or quarantined address answers nothing: an ``unanswered`` ARP first
  contact, port 0, after the contact timeout); a routed flow first resolves the source's gateway
  (an answered ARP: a ``success`` first contact with the router's address); then SYN-ACK
  (success), RST (refused) or nothing (unanswered after the contact timeout: denied by policy,
  quarantine of either end, a block of the source, no host). ``first`` is the source's first
  contact with that address. Neighbour (ARP) caches are kept per (episode, host, address); a
  host reached through a router learns that router from its ARP request (the router on the way
  back is taken to be the one on the way there).
- the detectors ``trw`` (likelihood-ratio walk on first-contact outcomes, restart at eta0, one
  alert per source) and ``fanout`` (distinct failed destinations per (source, proto, port);
  distinct failed ports per (source, destination); one alert per source and kind) with the
  scenario's parameters; router addresses are no source.
- containment: each step's actions land ``enforce_*_s`` after the step starts; quarantine cuts
  every flow of the host both ways, block (destination any) every new flow from it, release
  lifts both.
- stop rules ``contained``, ``all-infected`` and ``crown-jewel-infected`` checked every
  ``stop_check_s`` after a change (``Simulation._stop_check``, ``ReachabilityOracle``), ending
  the episode ``grace_s`` later only if the condition still holds then.

Known simplifications (each below one slice or out of what the observation can tell): two probes
reaching one target within a slice: the earliest delivered infects; attempts within a slice see
the ARP caches and contact records of the slice's start; TCP retransmissions (same destination,
so never a new fan-out destination), router-sourced ARP and a router's early ICMP unreachable (a
resolution of that address already under way) are not modelled (the attempt fails unanswered
after the contact timeout instead); outcomes that come back within a millisecond are stamped at
the attempt's time; a quarantined worm's probes do not start its host's gateway resolution that
benign requests could join.

Keeps ground truth (:class:`GroundTruth`: who is infected, the worms) apart from what a sensor
could know (:class:`SensorSide`: contact records, detector state, per-step counts of alerts and
first-contact outcomes) and the containment in force (:class:`ContainmentArrays`); the
environment builds observations from the latter two only.
Must not: read the wall clock, write files, or change ``testbed.sim`` (it imports its pieces).
"""

from __future__ import annotations

import ipaddress
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from detectors.base import SensorContext
from testbed.agent.benign import REQUEST_TIMEOUT_S
from testbed.containment import PolicyClasses
from testbed.detection import DetectorSet
from testbed.errors import Diagnostic, InputError
from testbed.model.load_scenario import Scenario
from testbed.model.spec import Tier
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S
from testbed.sim.engine import Simulation
from testbed.sim.fastpath import (
    PICK_TRIES,
    SLICE_S,
    VULNERABLE,
    AddressGrid,
    pacing_refusal,
    uniform_slots,
    vulnerability_table,
)
from testbed.sim.fastpath import (
    REFUSED as NO_SERVICE,
)
from testbed.sim.timing import Timing

__all__ = ["BATCHED_DETECTORS", "BATCHED_PROFILES", "SLICE_S", "STOP_REASONS", "BatchedOutbreak",
           "ContainmentArrays", "GroundTruth", "SensorSide", "VectorDomainError",
           "batched_refusal"]

BATCHED_PROFILES = ("classic", "local-preference")
"""Worm profiles the batched engine models (the sim fast path's array profiles)."""
BATCHED_DETECTORS = ("trw", "fanout")
"""Detectors the batched engine models (both read first-contact outcomes only)."""
STOP_REASONS = ("", "contained", "all-infected", "crown-jewel-infected")
SUCCESS, REFUSED, UNANSWERED = 0, 1, 2
"""First-contact outcome codes (``ContactTracker``'s success / refused / unanswered)."""
ARP_KEY = 0  # key index of ARP attempts (fan-out counts them as port 0)
_HINT = ("use the exact environment instead: gymnasium.make('testbed/Defend-v0', ...) "
         "(testbed.gym.env.DefendEnv) runs every scenario the simulation backend runs; "
         "batched: gymnasium.make_vec(..., vectorization_mode='sync')")
_RUN_DIR = Path(tempfile.gettempdir()) / "testbed-gym"  # never written: configs in memory
_NEVER = np.inf
_EPSILON = 1e-9
_BACKUP_PARALLEL = 4  # Simulation._backup_round: asyncio.Semaphore(4)


class _Path(NamedTuple):
    """Where a batch of attempts goes and the containment it meets (``NetworkModel.open``'s
    inputs), one entry per attempt."""

    host: np.ndarray  # the source's host index
    source_segment: np.ndarray
    target_segment: np.ndarray  # -1: no segment holds the address
    routed: np.ndarray  # a route exists
    live: np.ndarray  # a host uses the address
    target_flat: np.ndarray  # episode * H + that host (0 where none)
    quarantined: np.ndarray  # the source, at the attempt's time
    blocked: np.ndarray
    alive: np.ndarray  # a host that answers ARP: live and not quarantined
    on_link: np.ndarray


class VectorDomainError(InputError):
    """The scenario is outside what the batched engine models exactly in distribution."""


def batched_refusal(scenario: Scenario, simulation: Simulation,
                    duration: float) -> tuple[str, str] | None:
    """Why the batched engine cannot run ``scenario`` ((message, key path); None: it can)."""
    spec = scenario.spec
    if spec.worm.profile not in BATCHED_PROFILES:
        return (f"worm profile {spec.worm.profile!r} is out of the vectorised environment's "
                f"domain ({' and '.join(BATCHED_PROFILES)} only: hit lists and learning brains "
                "are per-worm state in event order)", "worm.profile")
    for position, detector in enumerate(spec.detectors):
        if detector.name not in BATCHED_DETECTORS:
            return (f"detector {detector.name!r} is out of the vectorised environment's domain "
                    f"(it models {' and '.join(BATCHED_DETECTORS)} only)",
                    f"detectors[{position}]")
        if detector.name == "fanout":
            window = float(detector.params.get("window_s", 300.0))
            if window < duration:
                return (f"fanout window_s {window:g} is shorter than the episode ({duration:g} "
                        "s): the vectorised environment keeps no failure times",
                        f"detectors[{position}].params.window_s")
    for name in scenario.topology.hosts:
        if simulation.configs[name].scanner is not None:
            return (f"host {name!r} runs a benign scanner, out of the vectorised environment's "
                    "domain", "benign.scanners")
    binding = pacing_refusal(simulation)
    if binding is not None:
        return f"worm {binding[0]}", binding[1]
    topology = scenario.topology
    if len(topology.host_by_ip) != len(topology.hosts):
        return ("hosts sharing an address", "topology")
    return None


@dataclass
class GroundTruth:
    """Who is infected and what each worm does: only the reward and the stop rules read it."""

    infected: np.ndarray  # (E, H) bool
    infected_at: np.ndarray  # (E, H) float
    next_probe: np.ndarray  # (E, H) float: the worm's next probe (inf: no worm)
    local: np.ndarray  # (E, H) int64: local-preference sweep counters
    sequential: np.ndarray  # (E, H) int64
    victims: np.ndarray  # (E, H, H) bool: each worm's known infected hosts (its brain's set)
    origin: np.ndarray  # (E, H) bool: the episode's patient zero(s)
    wake_at: np.ndarray  # (E,) float: patient zero's wake (inf once woken)


@dataclass
class SensorSide:
    """What a sensor and the detectors know: contact records, detector state and this step's
    counts. Built only from attempts' outcomes as the network answers them."""

    contacted: np.ndarray  # (E, H, A) bool: the contact tracker's (source, address) pairs
    trw_ratio: np.ndarray  # (E, H) float
    trw_flagged: np.ndarray  # (E, H) bool
    failed_keys: np.ndarray  # (E, H, A) uint: bit k = a failure to that address on key k
    failed_per_key: np.ndarray  # (E, H, K) int32: distinct failed addresses per key
    address_flagged: np.ndarray  # (E, H) bool
    port_flagged: np.ndarray  # (E, H) bool
    step_alerts: np.ndarray  # (E, H, D) float32: alerts this step per detector
    step_first: np.ndarray  # (E, H) float32: first-contact outcomes this step
    step_first_failed: np.ndarray  # (E, H) float32: of which failures
    # outcomes not yet due, by the slice (a running index) they may come due in
    pending: dict[int, list[tuple[np.ndarray, ...]]] = field(default_factory=dict)


@dataclass
class ContainmentArrays:
    """Quarantines and blocks in force, and this step's landing: before ``*_land`` the
    ``*_before`` state holds."""

    quarantined: np.ndarray  # (E, H) bool, after this step's actions landed
    blocked: np.ndarray
    quarantined_before: np.ndarray
    blocked_before: np.ndarray
    quarantine_land: np.ndarray  # (E,) time
    block_land: np.ndarray


class BatchedOutbreak:
    """E episodes of ``scenario``; see the module docstring. Episode times are per episode."""

    def __init__(self, scenario: Scenario, episodes: int, *, timing: Timing,
                 duration: float, stop_when: tuple[str, ...] | None = None,
                 slice_s: float = SLICE_S) -> None:
        self.scenario = scenario
        self.timing = timing
        self.duration = float(duration)
        self.slice_s = float(slice_s)
        self.episodes = E = int(episodes)
        simulation = Simulation(scenario, seed=0, timing=timing, run_dir=_RUN_DIR,
                                duration=self.duration, wall_base=0.0, run_name="batched",
                                record_probes=False, fast_path=False)
        refusal = batched_refusal(scenario, simulation, self.duration)
        if refusal is not None:
            raise VectorDomainError(Diagnostic(str(scenario.path), 0, 0, refusal[0],
                                               refusal[1], hint=_HINT))
        self._tables(simulation)
        self._detector_tables()
        spec = scenario.spec
        self.stop_when = tuple(spec.stop.when if stop_when is None else stop_when)
        self.grace = float(spec.stop.grace_s)
        self.rng = np.random.default_rng(0)
        H, A, K = self.hosts, self.grid.total, len(self.keys)
        bits = np.uint16 if K <= 16 else np.uint32
        self.truth = GroundTruth(
            infected=np.zeros((E, H), bool), infected_at=np.full((E, H), np.inf),
            next_probe=np.full((E, H), _NEVER), local=np.zeros((E, H), np.int64),
            sequential=np.zeros((E, H), np.int64), victims=np.zeros((E, H, H), bool),
            origin=np.zeros((E, H), bool), wake_at=np.full(E, _NEVER))
        self.sensor = SensorSide(
            contacted=np.zeros((E, H, A), bool), trw_ratio=np.ones((E, H)),
            trw_flagged=np.zeros((E, H), bool), failed_keys=np.zeros((E, H, A), bits),
            failed_per_key=np.zeros((E, H, K), np.int32),
            address_flagged=np.zeros((E, H), bool), port_flagged=np.zeros((E, H), bool),
            step_alerts=np.zeros((E, H, len(self.detectors)), np.float32),
            step_first=np.zeros((E, H), np.float32),
            step_first_failed=np.zeros((E, H), np.float32))
        self.containment = ContainmentArrays(
            quarantined=np.zeros((E, H), bool), blocked=np.zeros((E, H), bool),
            quarantined_before=np.zeros((E, H), bool), blocked_before=np.zeros((E, H), bool),
            quarantine_land=np.zeros(E), block_land=np.zeros(E))
        self.neighbours = np.zeros((E, H, A), bool)  # ARP caches: (host, address) resolved
        self.user_next = np.full((E, len(self.user_source)), _NEVER)
        backups = len(self.backup_source)
        self.backup_next = np.full((E, backups), _NEVER)  # next round (inf: one under way)
        self.backup_began = np.zeros((E, backups))
        self.backup_position = np.zeros((E, backups), np.int64)  # next target of the round
        self.backup_slots = np.full((E, backups, _BACKUP_PARALLEL), _NEVER)  # when each frees
        self.gateway_gives_up = np.full((E, self.hosts), -np.inf)  # a failing gateway ARP's end
        self.now = np.zeros(E)
        self.stopped = np.zeros(E, bool)
        self.stop_at = np.full(E, _NEVER)
        self.stop_reason = np.zeros(E, np.int8)
        self.dirty = np.zeros(E, bool)
        self.epoch = np.zeros(E, np.int64)
        self._queued: list[tuple[np.ndarray, ...]] = []
        self._slice_index = 0  # slices run so far (skipped ones counted too)
        self._slice_end = np.zeros(E)  # each episode's end of the slice being run
        self._landing = True  # some action of this step may land later than a given time

    # ---- static tables -----------------------------------------------------------------------
    def _tables(self, simulation: Simulation) -> None:
        scenario, timing = self.scenario, self.timing
        topology = scenario.topology
        hosts = simulation.hosts
        self.names = [h.name for h in hosts]
        self.hosts = H = len(hosts)
        config = next(iter(simulation.configs.values()))  # the worm's facts, alike on every host
        worm = config.worm
        self.profile = scenario.spec.worm.profile
        self.base_gap = 1.0 / float(worm.params["rate"])
        self.jitter = float(worm.params["jitter"])
        self.local_bias = float(worm.params.get("local_bias", 0.0))
        self.start_s = float(scenario.spec.worm.start_s) + timing.wake_delay_s
        self.grid = grid = AddressGrid(simulation, config.cidrs)
        network = simulation.network
        segments = list(topology.segments)
        self.segment_of_host = np.array([segments.index(h.segment) for h in hosts], np.int64)
        slot_addresses = grid.slot_addresses()
        self.slot_segment = np.array(
            [segments.index(s) if (s := network.segment_of(str(ipaddress.IPv4Address(a))))
             is not None else -1 for a in slot_addresses.tolist()], np.int64)
        S = len(segments)
        monitored = scenario.monitored_segments()
        seen = np.array([s in monitored for s in segments])
        self.route = np.zeros((S, S), bool)
        self.path_seen = np.zeros((S, S), bool)
        self.delivery = np.zeros((S, S))  # send -> exploit delivery (fastpath's formula)
        self.gateway_slot = np.full((S, S), -1, np.int64)
        address_slot = {int(a): i for i, a in enumerate(slot_addresses)}
        for i, near in enumerate(segments):
            for j, far in enumerate(segments):
                path = network.path(near, far)
                if path is None:
                    continue
                crossed, routers = path
                self.route[i, j] = True
                self.path_seen[i, j] = any(s in monitored for s in crossed)
                self.delivery[i, j] = 2 * timing.link_one_way_s + 3 * timing.one_way(len(routers))
                if routers:
                    gateway = int(topology.routers[routers[0]].interfaces[near])
                    if gateway not in address_slot:
                        raise VectorDomainError(Diagnostic(
                            str(scenario.path), 0, 0, f"router {routers[0]!r}'s address on "
                            f"{near!r} lies outside the worm's address space", "topology",
                            hint=_HINT))
                    self.gateway_slot[i, j] = address_slot[gateway]
        self.source_seen = seen
        self.sensor_on = bool(scenario.spec.detectors and monitored)
        # exploits, keys and the policy
        table, exploits = vulnerability_table(simulation)
        self.exploits = exploits
        self.vulnerable = table == VULNERABLE
        self.listening = table != NO_SERVICE
        keys: dict[tuple[str, int], int] = {("arp", 0): ARP_KEY}

        def key_of(proto: str, port: int) -> int:
            return keys.setdefault((proto, port), len(keys))

        self.exploit_key = np.array([key_of(proto, port) for _, _, port, proto in exploits],
                                    np.int64)
        classes = PolicyClasses(topology)
        self.class_of = np.array(classes.of, np.int64)
        C = len(classes)
        self.allowed = np.zeros((C, C, len(exploits)), bool)
        assert [h.name for h in classes.hosts] == self.names  # one host order
        for a in range(C):  # routes are checked per host pair (``route``)
            for b in range(C):
                for x, (_, _, port, proto) in enumerate(exploits):
                    self.allowed[a, b, x] = classes.allows(a, b, port, proto)
        # stop rules, per policy class (ReachabilityOracle.contained / burned_out)
        self.susceptible = np.array(classes.susceptible, bool)
        self.susceptible_in = np.array(classes.susceptible_in, np.int64)
        self.can_infect = np.array([[classes.can_infect(a, b) for b in range(C)]
                                    for a in range(C)], bool)
        self.class_members = np.zeros((H, C), np.float64)
        self.class_members[np.arange(H), self.class_of] = 1.0
        self.crown = np.array([h.tier == Tier.CROWN_JEWEL for h in hosts])
        self.value = np.array([h.value for h in hosts], np.float64)
        # benign jobs: streams of (source, targets)
        index_of = {str(h.ip): i for i, h in enumerate(hosts)}
        user_source, user_rate, user_targets = [], [], []
        backup_source, backup_every, backup_targets = [], [], []
        for source, host in enumerate(hosts):
            agent = simulation.configs[host.name]
            for job in agent.users:
                if job.targets:
                    user_source.append(source)
                    user_rate.append(job.per_minute / 60.0)
                    user_targets.append(job.targets)
            if agent.backup is not None and agent.backup.targets:
                backup_source.append(source)
                backup_every.append(agent.backup.every_s)
                backup_targets.append(agent.backup.targets)

        def target_table(sources: list[int], jobs: list[Any]) -> dict[str, np.ndarray]:
            width = max((len(targets) for targets in jobs), default=1)
            out = {"slot": np.full((len(jobs), width), -1, np.int64),
                   "key": np.zeros((len(jobs), width), np.int64),
                   "allowed": np.zeros((len(jobs), width), bool),
                   "listening": np.zeros((len(jobs), width), bool),
                   "count": np.array([len(t) for t in jobs], np.int64)}
            for row, (source, targets) in enumerate(zip(sources, jobs, strict=True)):
                for column, target in enumerate(targets):
                    address = int(ipaddress.IPv4Address(target.address))
                    if address not in address_slot:
                        raise VectorDomainError(Diagnostic(
                            str(scenario.path), 0, 0, f"benign target {target.address} lies "
                            "outside the worm's address space", "benign", hint=_HINT))
                    out["slot"][row, column] = address_slot[address]
                    out["key"][row, column] = key_of(target.proto, target.port)
                    out["allowed"][row, column] = network.allowed(
                        source, target.address, target.port, target.proto)
                    victim = index_of.get(target.address)
                    out["listening"][row, column] = victim is not None and any(
                        s.port == target.port and s.proto == target.proto
                        for s in hosts[victim].services)
            return out

        self.user_source = np.array(user_source, np.int64)
        self.user_mean_gap = 1.0 / np.array(user_rate, np.float64) if user_rate else np.zeros(0)
        self.user_targets = target_table(user_source, user_targets)
        self.backup_source = np.array(backup_source, np.int64)
        self.backup_every = np.array(backup_every, np.float64)
        self.backup_targets = target_table(backup_source, backup_targets)
        self.keys = keys
        self.key_is_udp = np.array([proto == "udp" for proto, _ in keys], bool)
        non_arp = np.ones(len(keys), bool)
        non_arp[ARP_KEY] = False
        self.non_arp_mask = int(sum(1 << k for k in range(len(keys)) if non_arp[k]))
        if len(keys) > 32:
            raise VectorDomainError(Diagnostic(
                str(scenario.path), 0, 0, f"{len(keys)} distinct ports in the arsenal and the "
                "benign jobs (at most 32)", "worm", hint=_HINT))

    def _detector_tables(self) -> None:
        context = SensorContext.from_topology(self.scenario.topology)
        detectors = DetectorSet.from_specs(self.scenario.spec.detectors, context)
        self.detectors = tuple(d.NAME for d in detectors.detectors)
        self.trw_column = self.fanout_column = -1
        for column, detector in enumerate(detectors.detectors):
            params = detector.params
            if detector.NAME == "trw":  # TRWDetector.reset's constants
                self.trw_column = column
                theta0, theta1 = float(params["theta0"]), float(params["theta1"])
                self.trw_up = (1.0 - theta1) / (1.0 - theta0)
                self.trw_down = theta1 / theta0
                self.trw_eta1 = float(params["p_detect"]) / float(params["p_false"])
                self.trw_eta0 = ((1.0 - float(params["p_detect"]))
                                 / (1.0 - float(params["p_false"])))
                self.trw_count_arp = bool(params["count_arp"])
            elif detector.NAME == "fanout":
                self.fanout_column = column
                self.address_threshold = int(params["address_threshold"])
                self.port_threshold = int(params["port_threshold"])
        detectors.close()

    # ---- episodes ----------------------------------------------------------------------------
    def seed(self, seed: int | list[int] | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, which: np.ndarray, patient_zeros: np.ndarray) -> None:
        """Start new episodes where ``which`` (E bool); ``patient_zeros`` (E x H bool) says
        where each one's worm starts."""
        if not which.any():
            return
        rng = self.rng
        truth, sensor, containment = self.truth, self.sensor, self.containment
        for array in (truth.infected, truth.victims, sensor.contacted, sensor.trw_flagged,
                      sensor.failed_keys, sensor.failed_per_key, sensor.address_flagged,
                      sensor.port_flagged, sensor.step_alerts, sensor.step_first,
                      sensor.step_first_failed, containment.quarantined, containment.blocked,
                      containment.quarantined_before, containment.blocked_before,
                      self.neighbours, truth.local, truth.sequential):
            array[which] = 0
        truth.infected_at[which] = np.inf
        truth.next_probe[which] = _NEVER
        sensor.trw_ratio[which] = 1.0
        truth.origin[which] = patient_zeros[which]
        truth.wake_at[which] = self.start_s if self.start_s <= self.duration else _NEVER
        containment.quarantine_land[which] = 0.0
        containment.block_land[which] = 0.0
        count = int(which.sum())
        if self.user_source.size:  # user_gaps: exponential from the start
            self.user_next[which] = rng.exponential(self.user_mean_gap, (count,
                                                                         self.user_source.size))
        if self.backup_source.size:
            self.backup_next[which] = rng.random((count, self.backup_source.size)) * \
                self.backup_every
            self.backup_position[which] = self.backup_targets["count"]  # no round under way
            self.backup_slots[which] = _NEVER
        self.gateway_gives_up[which] = -np.inf
        self.now[which] = 0.0
        self.stopped[which] = False
        self.stop_at[which] = _NEVER
        self.stop_reason[which] = 0
        self.dirty[which] = False
        self.epoch[which] += 1

    def act(self, which: np.ndarray, quarantine: np.ndarray, block: np.ndarray,
            release: np.ndarray) -> None:
        """This step's containment calls (E x H bool each) for the episodes in ``which``; they
        land ``enforce_*_s`` after the step's start."""
        c = self.containment
        c.quarantined_before[:] = c.quarantined
        c.blocked_before[:] = c.blocked
        c.quarantined[quarantine] = True
        c.blocked[block] = True
        c.quarantined[release] = False
        c.blocked[release] = False
        changed = (quarantine | block | release).any(axis=1) & which
        self.dirty |= changed
        c.quarantine_land[:] = self.now + self.timing.enforce_quarantine_s
        c.block_land[:] = self.now + self.timing.enforce_block_s

    # ---- one step ----------------------------------------------------------------------------
    def advance(self, which: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
        """Run the episodes in ``which`` one decision interval (or to a stop); returns (start,
        end) times per episode."""
        start = self.now.copy()
        end = np.minimum(self.duration, start + interval)
        running = which & ~self.stopped
        slices = max(1, math.ceil(interval / self.slice_s - _EPSILON))
        check = self.timing.stop_check_s
        for k in range(slices):
            slice_start = start + k * self.slice_s
            slice_end = np.minimum(slice_start + self.slice_s, end)
            live = running & (slice_start < end - _EPSILON) & ~self.stopped
            if not live.any():
                self._slice_index += slices - k  # the index runs on: filed outcomes keep order
                break
            # until every landing of this step is behind the slice's start, look times up
            self._landing = bool((self.containment.block_land > slice_start).any()
                                 or (self.containment.quarantine_land > slice_start).any())
            self._slice(slice_start, slice_end, live)
            if self.stop_when:
                # a stop due at a check's moment comes first (it was scheduled earlier)
                ending = live & (self.stop_at <= slice_end + _EPSILON)
                if ending.any():
                    self.stopped |= ending
                crossing = live & ~ending & (np.floor(slice_end / check + _EPSILON)
                                             > np.floor(slice_start / check + _EPSILON))
                if crossing.any():
                    self._stop_check(crossing, np.floor(slice_end / check + _EPSILON) * check)
        self.now = np.where(which, np.where(self.stopped & (self.stop_at < end),
                                            self.stop_at, end), self.now)
        return start, self.now.copy()

    def _slice(self, slice_start: np.ndarray, slice_end: np.ndarray, live: np.ndarray) -> None:
        truth = self.truth
        self._slice_end = slice_end
        limit = np.where(live, slice_end, -np.inf)
        waking = live & (truth.wake_at < slice_end)
        if waking.any():
            rows, hosts = np.nonzero(truth.origin & waking[:, None])
            self._wake(rows, hosts, truth.wake_at[rows])
            truth.wake_at[waking] = _NEVER
        host_limit = np.repeat(limit, self.hosts)
        next_probe = truth.next_probe.reshape(-1)
        while True:
            due = np.flatnonzero(next_probe < host_limit)
            if not due.size:
                break
            self._worm_rounds(due, next_probe, host_limit)
        if self.user_source.size:
            self._users(limit)
        if self.backup_source.size:
            self._backups(limit)
        if self.sensor_on:
            self._flush_attempts()
            self._sense(slice_end, live)
        self._slice_index += 1

    # ---- the worm ----------------------------------------------------------------------------
    def _wake(self, rows: np.ndarray, hosts: np.ndarray, when: np.ndarray) -> None:
        truth = self.truth
        fresh = ~truth.infected[rows, hosts]
        rows, hosts, when = rows[fresh], hosts[fresh], when[fresh]
        truth.infected[rows, hosts] = True
        truth.infected_at[rows, hosts] = when
        truth.next_probe[rows, hosts] = when
        grid = self.grid
        truth.sequential[rows, hosts] = self.rng.integers(0, grid.total, rows.size)
        truth.local[rows, hosts] = grid.slot_of[hosts] - grid.range_offset[
            grid.range_of[hosts]] + 1
        self.dirty[rows] = True

    def _worm_rounds(self, due: np.ndarray, next_probe: np.ndarray,
                     host_limit: np.ndarray) -> None:
        """Every probe due before the slice's end, each host at most once per round."""
        rng, H = self.rng, self.hosts
        clock = next_probe[due]
        batches = []
        while due.size:
            slot, exploit, accepted = self._pick(due, clock)
            batches.append((due, clock, slot, exploit, accepted))
            gaps = self.base_gap * (1.0 + self.jitter * (2.0 * rng.random(due.size) - 1.0))
            clock = clock + np.maximum(gaps, 1e-4)
            keep = clock < host_limit[due]
            next_probe[due[~keep]] = clock[~keep]
            due, clock = due[keep], clock[keep]
        source = np.concatenate([b[0] for b in batches])
        sent = np.concatenate([b[1] for b in batches])
        slot = np.concatenate([b[2] for b in batches])
        exploit = np.concatenate([b[3] for b in batches])
        accepted = np.concatenate([b[4] for b in batches])
        aimed = slot >= 0
        if not aimed.all():
            source, sent, slot, exploit, accepted = (source[aimed], sent[aimed], slot[aimed],
                                                     exploit[aimed], accepted[aimed])
        if self.sensor_on:
            target = self.grid.host_at[slot]
            host = source % H
            known = np.maximum(target, 0)
            policy = self.allowed[self.class_of[host], self.class_of[known], exploit] & (
                target >= 0)
            self._queue_attempts(source, slot, self.exploit_key[exploit], sent, policy,
                           self.listening[known, exploit] & (target >= 0))
        self._infect(source, sent, slot, accepted)

    def _pick(self, due: np.ndarray, clock: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(address slot or -1, exploit, accepted) of one round's probes; local-preference
        learns its victims from them before the next round picks (as fastpath)."""
        rng, grid, H = self.rng, self.grid, self.hosts
        host = due % H
        count = due.size
        if self.profile == "classic":
            own = grid.slot_of[host]
            slot = uniform_slots(rng, grid.total, own)
            slot[slot == own] = -1
        else:
            slot = self._sweep(due, host, rng.random(count) < self.local_bias)
        exploit = rng.integers(0, len(self.exploits), count)
        accepted = self._accepted(due, slot, exploit, clock)
        if self.profile != "classic" and accepted.any():
            target = grid.host_at[slot[accepted]]
            self.truth.victims.reshape(-1)[due[accepted] * H + target] = True
        return slot, exploit, accepted

    def _sweep(self, due: np.ndarray, host: np.ndarray, near: np.ndarray) -> np.ndarray:
        """``_SweepTargets.pick`` for one round, over episodes: -1 where 8 addresses in a row
        were passed over."""
        grid, H = self.grid, self.hosts
        local = self.truth.local.reshape(-1)
        sequential = self.truth.sequential.reshape(-1)
        victims = self.truth.victims.reshape(-1)
        chosen = np.full(due.size, -1, np.int64)
        pending = np.arange(due.size)
        for _ in range(PICK_TRIES):
            flat, source, close = due[pending], host[pending], near[pending]
            home = grid.range_of[source]
            size = grid.range_size[home]
            local_index = local[flat] % size
            sequential_index = sequential[flat] % grid.total
            slot = np.where(close, grid.range_offset[home] + local_index, sequential_index)
            local[flat[close]] = (local_index[close] + 1) % size[close]
            sequential[flat[~close]] = (sequential_index[~close] + 1) % grid.total
            target = grid.host_at[slot]
            skip = slot == grid.slot_of[source]
            known = np.flatnonzero(~skip & (target >= 0))
            if known.size:
                skip[known] = victims[flat[known] * H + target[known]]
            taken = ~skip
            chosen[pending[taken]] = slot[taken]
            pending = pending[skip]
            if not pending.size:
                break
        return chosen

    def _cut(self, flat: np.ndarray, when: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(quarantined, blocked) of hosts ``flat`` (episode * H + host) at ``when``."""
        c, H = self.containment, self.hosts
        if not self._landing:  # this step's actions have landed everywhere
            return c.quarantined.reshape(-1)[flat], c.blocked.reshape(-1)[flat]
        episode = flat // H
        landed_q = when >= c.quarantine_land[episode]
        landed_b = when >= c.block_land[episode]
        quarantined = np.where(landed_q, c.quarantined.reshape(-1)[flat],
                               c.quarantined_before.reshape(-1)[flat])
        blocked = np.where(landed_b, c.blocked.reshape(-1)[flat],
                           c.blocked_before.reshape(-1)[flat])
        return quarantined, blocked

    def _accepted(self, source: np.ndarray, slot: np.ndarray, exploit: np.ndarray,
                  when: np.ndarray) -> np.ndarray:
        """Probes whose exploit a vulnerable service accepts (outcome infected or already):
        the policy lets them through and no quarantine or block stops them."""
        H = self.hosts
        target = np.where(slot >= 0, self.grid.host_at[np.maximum(slot, 0)], -1)
        live = target >= 0
        known = np.maximum(target, 0)
        host = source % H
        ok = live & self.vulnerable[known, exploit]
        if not ok.any():
            return ok
        ok &= self.allowed[self.class_of[host], self.class_of[known], exploit]
        ok &= self.route[self.segment_of_host[host], self.segment_of_host[known]]
        candidates = np.flatnonzero(ok)
        if candidates.size:
            quarantined, blocked = self._cut(source[candidates], when[candidates])
            episode = source[candidates] // H
            target_quarantined, _ = self._cut(episode * H + known[candidates],
                                              when[candidates])
            ok[candidates] = ~(quarantined | blocked | target_quarantined)
        return ok

    def _infect(self, source: np.ndarray, sent: np.ndarray, slot: np.ndarray,
                accepted: np.ndarray) -> None:
        if not accepted.any():
            return
        H = self.hosts
        source, sent, slot = source[accepted], sent[accepted], slot[accepted]
        target = self.grid.host_at[slot]
        episode = source // H
        fresh = ~self.truth.infected[episode, target]
        if not fresh.any():
            return
        source, sent, target, episode = source[fresh], sent[fresh], target[fresh], episode[fresh]
        delivered = sent + self.delivery[self.segment_of_host[source % H],
                                         self.segment_of_host[target]]
        inside = delivered <= np.minimum(self.duration, self.stop_at[episode]) + _EPSILON
        order = np.argsort(delivered, kind="stable")
        order = order[inside[order]]
        victim = episode[order] * H + target[order]
        _, first = np.unique(victim, return_index=True)
        chosen = order[first]
        self._wake(episode[chosen], target[chosen], delivered[chosen])

    # ---- benign traffic ----------------------------------------------------------------------
    def _users(self, limit: np.ndarray) -> None:
        jobs = self.user_source.size
        table = self.user_targets
        flat_next = self.user_next.reshape(-1)
        job_limit = np.repeat(limit, jobs)
        while True:
            due = np.flatnonzero(flat_next < job_limit)
            if not due.size:
                return
            episode, job = due // jobs, due % jobs
            pick = (self.rng.random(due.size) * table["count"][job]).astype(np.int64)
            when = flat_next[due]
            source = episode * self.hosts + self.user_source[job]
            slot, key = table["slot"][job, pick], table["key"][job, pick]
            policy, listening = table["allowed"][job, pick], table["listening"][job, pick]
            path = self._path(source, slot, when)
            failed = self._answer(path, key, policy, listening) == UNANSWERED
            self._queue_attempts(source, slot, key, when, policy, listening)
            waited = np.zeros(due.size)
            if failed.any():
                index = np.flatnonzero(failed)
                waited[index] = self._request_wait(source[index], when[index],
                                                   _Path(*(f[index] for f in path)))
            flat_next[due] = when + waited + self.rng.exponential(self.user_mean_gap[job])

    def _backups(self, limit: np.ndarray) -> None:
        """``Simulation._backup_round``: every ``every_s``, the job's targets in order, four
        requests at a time (the runtime's semaphore); a request holds its slot until answered
        (at once) or timed out (3 s), and meets the containment in force when it starts."""
        jobs = self.backup_source.size
        table = self.backup_targets
        count = table["count"]
        position = self.backup_position.reshape(-1)
        slots = self.backup_slots.reshape(-1, _BACKUP_PARALLEL)
        began = self.backup_began.reshape(-1)
        upcoming = self.backup_next.reshape(-1)
        job_limit = np.repeat(limit, jobs)
        starting = np.flatnonzero(upcoming < job_limit)  # a new round: every slot free
        if starting.size:
            began[starting] = upcoming[starting]
            slots[starting] = upcoming[starting, None]
            position[starting] = 0
            upcoming[starting] = _NEVER
        width = table["slot"].shape[1]
        while True:
            earliest = slots.min(axis=1)
            due = np.flatnonzero((position < count[np.arange(position.size) % jobs])
                                 & (earliest < job_limit))
            if not due.size:
                return
            self._backup_moment(due, earliest[due], position, slots, width)
            job = due % jobs
            finished = due[position[due] >= count[job]]
            if finished.size:  # the next round: its period after this one began, or later
                upcoming[finished] = np.maximum(slots[finished].max(axis=1),
                                                began[finished]
                                                + self.backup_every[finished % jobs])

    def _backup_moment(self, rounds: np.ndarray, moment: np.ndarray, position: np.ndarray,
                       slots: np.ndarray, width: int) -> None:
        """At ``moment`` (the earliest free slot of each round), start the next requests in
        order while a slot is free: an answered request frees its slot at once, a timed-out
        one holds it 3 s."""
        jobs = self.backup_source.size
        table = self.backup_targets
        job = rounds % jobs
        column = position[rounds][:, None] + np.arange(width)[None, :]
        valid = column < table["count"][job][:, None]
        rows, offsets = np.nonzero(valid)
        row_job, columns = job[rows], column[rows, offsets]
        source = (rounds[rows] // jobs) * self.hosts + self.backup_source[row_job]
        slot, key = table["slot"][row_job, columns], table["key"][row_job, columns]
        policy, listening = table["allowed"][row_job, columns], table["listening"][row_job,
                                                                                   columns]
        when = moment[rows]
        path = self._path(source, slot, when)
        timeout = np.zeros(valid.shape, bool)
        timeout[rows, offsets] = self._answer(path, key, policy, listening) == UNANSWERED
        round_slots = slots[rounds]
        free = (round_slots <= moment[:, None]).sum(axis=1)
        before = np.cumsum(timeout, axis=1) - timeout  # timeouts started before, this moment
        take = valid & (before < free[:, None])
        started = take[rows, offsets]
        self._queue_attempts(source[started], slot[started], key[started], when[started],
                             policy[started], listening[started])
        held = np.flatnonzero(started & timeout[rows, offsets])
        if held.size:  # the k-th timed-out request holds the k-th free slot
            order = np.argsort(round_slots, axis=1, kind="stable")
            row = rows[held]
            column = order[row, before[row, offsets[held]]]
            round_slots[row, column] = moment[row] + self._request_wait(
                source[held], when[held], _Path(*(f[held] for f in path)))
            slots[rounds] = round_slots
        position[rounds] += take.sum(axis=1)

    def _request_wait(self, source: np.ndarray, when: np.ndarray, path: _Path) -> np.ndarray:
        """How long a benign request that fails waits (``_benign_exchange``): the request
        timeout, or less where its host's kernel gives up the gateway's resolution sooner (a
        quarantined host whose gateway is not in its ARP cache joins a resolution already under
        way: EHOSTUNREACH at that one's end, ``NetworkModel._failed_resolution``)."""
        wait = np.full(source.size, REQUEST_TIMEOUT_S)
        gateway = self.gateway_slot[path.source_segment, np.maximum(path.target_segment, 0)]
        failing = ~path.on_link & path.routed & path.quarantined & (gateway >= 0)
        index = np.flatnonzero(failing)
        if not index.size:
            return wait
        index = index[~self.neighbours.reshape(-1)[source[index] * self.grid.total
                                                   + gateway[index]]]
        gives_up = self.gateway_gives_up.reshape(-1)
        host, start = source[index], when[index]
        under_way = start < gives_up[host]
        ends = np.where(under_way, gives_up[host], start + self.timing.arp_failure_s)
        gives_up[host[~under_way]] = ends[~under_way]
        wait[index] = np.minimum(REQUEST_TIMEOUT_S, ends - start)
        return wait

    # ---- the network's answers, as the sensor sees them --------------------------------------
    def _queue_attempts(self, *columns: np.ndarray) -> None:
        """Connection attempts of the slice (:meth:`_attempts`' arguments), recorded together
        at its end."""
        if self.sensor_on and columns[0].size:
            self._queued.append(columns)

    def _flush_attempts(self) -> None:
        if self._queued:
            columns = [np.concatenate(parts) for parts in zip(*self._queued, strict=True)]
            self._queued = []
            self._attempts(*columns)

    def _attempts(self, source: np.ndarray, slot: np.ndarray, key: np.ndarray,
                  when: np.ndarray, policy: np.ndarray, listening: np.ndarray) -> None:
        """Connection attempts (``NetworkModel.open``) from hosts ``source`` (episode * H +
        host) to address slots: the ARP caches learn, and the outcome events the contact
        tracker derives are recorded. ``policy``: the topology's verdict, without
        containment."""
        A = self.grid.total
        path = self._path(source, slot, when)
        host, source_segment, target_segment = path.host, path.source_segment, \
            path.target_segment
        routed_ok, live, target_flat = path.routed, path.live, path.target_flat
        quarantined, blocked, alive, on_link = (path.quarantined, path.blocked, path.alive,
                                                path.on_link)
        outcome = self._answer(path, key, policy, listening)
        # ARP: the address itself on link, else the gateway
        arp_slot = np.where(on_link, slot, self.gateway_slot[source_segment,
                                                             np.maximum(target_segment, 0)])
        pair = source * A + slot
        arp_pair = source * A + np.maximum(arp_slot, 0)
        neighbours = self.neighbours.reshape(-1)
        resolved = (arp_slot < 0) | neighbours[arp_pair]
        answers = np.where(on_link, alive & ~quarantined, ~quarantined)
        arp_failed = ~resolved & ~answers & routed_ok
        arp_learnt = ~resolved & answers & routed_ok
        sent = routed_ok & ~arp_failed
        # the network learns: both ends on link, the gateway off link; a routed flow that
        # reaches its host makes the last router resolve it, and the host learns the router
        # from that request (NetworkModel._resolution): it never asks for its gateway itself
        if arp_learnt.any():
            neighbours[arp_pair[arp_learnt]] = True
            back = arp_learnt & on_link & live
            if back.any():
                neighbours[target_flat[back] * A + self.grid.slot_of[host[back]]] = True
        reached = ~on_link & sent & alive & policy
        if reached.any():
            gateway = self.gateway_slot[target_segment[reached], source_segment[reached]]
            neighbours[target_flat[reached] * A + gateway] = True
        seen_source = self.source_seen[source_segment]
        seen_path = self.path_seen[source_segment, np.maximum(target_segment, 0)]
        contacted = self.sensor.contacted.reshape(-1)
        # the gateway's ARP: an answered (or, quarantined, unanswered) first contact
        gateway_arp = ~on_link & ~resolved & routed_ok & seen_source
        if gateway_arp.any():
            index = np.flatnonzero(gateway_arp)
            gateway_pair = arp_pair[index]
            fresh = self._first_of(gateway_pair, when[index]) & ~contacted[gateway_pair]
            index, gateway_pair = index[fresh], gateway_pair[fresh]
            contacted[gateway_pair] = True
            self._emit(source[index], arp_slot[index], np.full(index.size, ARP_KEY),
                       np.where(arp_failed[index], UNANSWERED, SUCCESS),
                       np.ones(index.size, bool), when[index] + DEFAULT_CONTACT_TIMEOUT_S)
        # on link, an address that answers no ARP: one unanswered ARP first contact
        link_arp = on_link & arp_failed & seen_source
        syn_seen = sent & np.where(quarantined | blocked, seen_source, seen_path)
        tracked = link_arp | syn_seen
        if not tracked.any():
            return
        index = np.flatnonzero(tracked)
        tracked_pair = pair[index]
        first = self._first_of(tracked_pair, when[index]) & ~contacted[tracked_pair]
        contacted[tracked_pair] = True
        is_arp = link_arp[index]
        keep = first | ~is_arp  # a repeated ARP for a known pair derives nothing
        index, first, is_arp = index[keep], first[keep], is_arp[keep]
        code = np.where(is_arp, UNANSWERED, outcome[index])
        self._emit(source[index], slot[index], np.where(is_arp, ARP_KEY, key[index]), code,
                   first, when[index] + np.where(code == UNANSWERED,
                                                 DEFAULT_CONTACT_TIMEOUT_S, 0.0))

    def _path(self, source: np.ndarray, slot: np.ndarray, when: np.ndarray) -> _Path:
        H = self.hosts
        host = source % H
        source_segment = self.segment_of_host[host]
        target_segment = self.slot_segment[slot]
        routed = (target_segment >= 0) & self.route[source_segment,
                                                    np.maximum(target_segment, 0)]
        target = self.grid.host_at[slot]
        live = target >= 0
        target_flat = (source // H) * H + np.maximum(target, 0)
        quarantined, blocked = self._cut(source, when)
        alive = live & ~(live & self._cut(target_flat, when)[0])
        return _Path(host, source_segment, target_segment, routed, live, target_flat,
                     quarantined, blocked, alive, source_segment == target_segment)

    def _answer(self, path: _Path, key: np.ndarray, policy: np.ndarray,
                listening: np.ndarray) -> np.ndarray:
        """Each attempt's outcome for its initiator, nothing recorded."""
        allowed = policy & path.alive & ~path.quarantined & ~path.blocked & path.routed
        answer = np.where(listening, np.where(self.key_is_udp[key], UNANSWERED, SUCCESS),
                          REFUSED)
        return np.where(allowed, answer, UNANSWERED).astype(np.int8)

    @staticmethod
    def _first_of(pair: np.ndarray, when: np.ndarray) -> np.ndarray:
        """True at the earliest attempt of each pair within one batch."""
        order = np.lexsort((when, pair))
        ordered = pair[order]
        head = np.ones(pair.size, bool)
        head[1:] = ordered[1:] != ordered[:-1]
        first = np.zeros(pair.size, bool)
        first[order[head]] = True
        return first

    def _emit(self, source: np.ndarray, slot: np.ndarray, key: np.ndarray, outcome: np.ndarray,
              first: np.ndarray, when: np.ndarray) -> None:
        """Outcome events, filed under the earliest slice they can come due in (slices are at
        most ``slice_s`` long; one that is not due yet when looked at moves on to the next)."""
        episode = source // self.hosts
        ends = self._slice_end[episode]
        ahead = np.where(when < ends, 0,
                         np.floor((when - ends) / self.slice_s) + 1).astype(np.int64)
        columns = (source, slot, key, outcome.astype(np.int8), first, when, self.epoch[episode])
        pending = self.sensor.pending
        for lead in np.unique(ahead).tolist():
            chosen = ahead == lead
            pending.setdefault(self._slice_index + lead, []).append(
                tuple(column[chosen] for column in columns))

    # ---- the detectors -----------------------------------------------------------------------
    def _sense(self, slice_end: np.ndarray, live: np.ndarray) -> None:
        """Outcomes due by the slice's end go to the step's counts and the detectors."""
        chunks = self.sensor.pending.pop(self._slice_index, None)
        if not chunks:
            return
        columns = chunks[0] if len(chunks) == 1 else tuple(
            np.concatenate(parts) for parts in zip(*chunks, strict=True))
        all_source, all_slot, all_key, all_outcome, all_first, all_time, epoch = columns
        episode = all_source // self.hosts
        current = epoch == self.epoch[episode]
        due = current & live[episode] & (all_time < slice_end[episode])
        later = current & ~due
        if later.any():
            self.sensor.pending.setdefault(self._slice_index + 1, []).append(
                tuple(column[later] for column in columns))
        if not due.any():
            return
        source, outcome, first = all_source[due], all_outcome[due], all_first[due]
        size = self.hosts * self.episodes
        sensor = self.sensor
        failed = outcome != SUCCESS
        if first.any():
            sensor.step_first.reshape(-1)[:] += np.bincount(source[first], minlength=size)
            sensor.step_first_failed.reshape(-1)[:] += np.bincount(source[first & failed],
                                                                   minlength=size)
        if self.trw_column >= 0:
            self._trw(source, all_key[due], outcome, first, all_time[due])
        if self.fanout_column >= 0 and failed.any():
            self._fanout(source[failed], all_slot[due][failed], all_key[due][failed])

    def _trw(self, source: np.ndarray, key: np.ndarray, outcome: np.ndarray, first: np.ndarray,
             when: np.ndarray) -> None:
        sensor = self.sensor
        flagged = sensor.trw_flagged.reshape(-1)
        counted = first & ~flagged[source]
        if not self.trw_count_arp:
            counted &= key != ARP_KEY
        if not counted.any():
            return
        source, success, when = source[counted], outcome[counted] == SUCCESS, when[counted]
        order = np.lexsort((when, source))
        source, success = source[order], success[order]
        start = np.ones(source.size, bool)
        start[1:] = source[1:] != source[:-1]
        positions = np.arange(source.size)
        rank = positions - np.maximum.accumulate(np.where(start, positions, 0))
        ratio = sensor.trw_ratio.reshape(-1)
        alerts = sensor.step_alerts.reshape(-1)
        detectors = len(self.detectors)
        for step in range(int(rank.max()) + 1):  # each source's outcomes in time order
            chosen = rank == step
            walker, ok = source[chosen], success[chosen]
            walking = ~flagged[walker]
            walker, ok = walker[walking], ok[walking]
            value = ratio[walker] * np.where(ok, self.trw_down, self.trw_up)
            hit = value >= self.trw_eta1 * (1.0 - 1e-9)
            value = np.where(value <= self.trw_eta0, 1.0, value)
            ratio[walker] = value
            if hit.any():
                flagged[walker[hit]] = True
                alerts[walker[hit] * detectors + self.trw_column] += 1.0

    def _fanout(self, source: np.ndarray, slot: np.ndarray, key: np.ndarray) -> None:
        sensor = self.sensor
        A, K = self.grid.total, len(self.keys)
        cell = source * A + slot
        _, position = np.unique(cell * K + key, return_index=True)
        cell, key, source = cell[position], key[position], source[position]
        bits = sensor.failed_keys.reshape(-1)
        bit = (np.ones(cell.size, np.int64) << key).astype(bits.dtype)
        new = (bits[cell] & bit) == 0
        if not new.any():
            return
        cell, key, source, bit = cell[new], key[new], source[new], bit[new]
        np.bitwise_or.at(bits, cell, bit)
        per_key = sensor.failed_per_key.reshape(-1)
        np.add.at(per_key, source * K + key, 1)
        alerts = sensor.step_alerts.reshape(-1)
        detectors = len(self.detectors)
        address = sensor.address_flagged.reshape(-1)
        hit = np.unique(source[(per_key[source * K + key] >= self.address_threshold)
                               & ~address[source]])
        if hit.size:
            address[hit] = True
            alerts[hit * detectors + self.fanout_column] += 1.0
        if K - 1 >= self.port_threshold:
            port = sensor.port_flagged.reshape(-1)
            ports = np.bitwise_count(bits[cell] & self.non_arp_mask)
            hit = np.unique(source[(ports >= self.port_threshold) & ~port[source]])
            if hit.size:
                port[hit] = True
                alerts[hit * detectors + self.fanout_column] += 1.0

    # ---- stop rules --------------------------------------------------------------------------
    def _stop_check(self, crossing: np.ndarray, when: np.ndarray) -> None:
        """``Simulation._stop_check`` at ``when`` for the episodes in ``crossing``."""
        truth, c = self.truth, self.containment
        check = crossing & self.dirty & truth.infected.any(axis=1)
        if not check.any():
            return
        self.dirty[check] = False
        rows = np.flatnonzero(check)
        infected = truth.infected[rows]
        origin = truth.origin[rows]
        susceptible = self.susceptible
        others = susceptible.sum() - (susceptible & origin).sum(axis=1)
        burned = (others > 0) & ((susceptible & infected & ~origin).sum(axis=1) == others)
        sources = (infected & ~c.quarantined[rows] & ~c.blocked[rows]) @ self.class_members > 0
        taken = (susceptible & (infected | c.quarantined[rows])) @ self.class_members
        targets = self.susceptible_in[None, :] > taken
        open_pairs = ((sources.astype(np.float64) @ self.can_infect.astype(np.float64))
                      * targets).sum(axis=1) > 0
        contained = ~open_pairs
        reason = np.zeros(rows.size, np.int8)
        if "crown-jewel-infected" in self.stop_when:
            reason[(infected & self.crown).any(axis=1)] = 3
        if "contained" in self.stop_when:
            reason[~burned & contained] = 1
        if "all-infected" in self.stop_when:
            reason[burned] = 2
        start = (reason > 0) & ~np.isfinite(self.stop_at[rows])
        cancel = (reason == 0) & np.isfinite(self.stop_at[rows])
        self.stop_reason[rows[start]] = reason[start]
        self.stop_at[rows[start]] = when[rows[start]] + self.grace
        self.stop_reason[rows[cancel]] = 0
        self.stop_at[rows[cancel]] = _NEVER

