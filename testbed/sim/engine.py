"""The discrete-event engine: one scenario's agents, worms, benign users, sensor, detectors and
responder in virtual time.

Owns: the virtual clock and its event heap, and the agent runtime's control flow re-enacted on it
-- the worm loop of ``testbed.agent.runtime.Agent._worm`` (plan, rate cap, in-flight cap, sleep
until the plan's ``wake_at``), each probe's life (connect, exploit delivery, reply, the outcome
vocabulary and ground truth of ``Agent._probe``), infection and waking with inherited weights,
"peers it has seen", the benign timelines of ``testbed.agent.benign`` (same seeds, same order of
random draws), the runner's patient-zero wake, detector ticks and stop conditions.

Reuses, does not re-implement: the sans-IO ``Brain`` (one per active host, seeded as the agent
seeds it), ``RateCap``, ``user_gaps``, the agent configs (``build_agent_configs``, through
``testbed.sim.configs``), the policy
(through ``testbed.sim.network``), the contact tracker (through ``testbed.sim.sensor``), the
``DetectorSet`` and the ``Responder`` (driven by the virtual clock, acting on
:class:`SimDeployment`), and ``apply_action`` on the ``ContainmentState`` the policy reads.

Must not: let detectors or the responder see ground truth (they see sensor events and alerts),
touch a real network, or read the wall clock for anything but ``wall`` fields.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import ipaddress
import itertools
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from detectors.base import ConnEvent, Detector, SensorContext
from testbed.agent.benign import REQUEST_TIMEOUT_S, SCAN_TIMEOUT_S, user_gaps
from testbed.agent.brain import (
    NEIGHBOUR_PROFILES,
    OBSERVING_PROFILES,
    Brain,
    Observation,
    Probe,
    WormView,
    arm_names,
    remember_peer,
)
from testbed.agent.config import AgentConfig, BenignTarget, ScannerJob
from testbed.agent.events import TECHNIQUES
from testbed.agent.guards import RateCap
from testbed.agent.neighbours import NEIGHBOUR_POLL_S
from testbed.errors import BackendError, RunError
from testbed.model.load_scenario import Scenario
from testbed.model.spec import Tier
from testbed.sim.bindings import (
    ActionRecord,
    ActionTiming,
    AlertLog,
    DetectorSet,
    ReachabilityOracle,
    Responder,
    apply_action,
    derive_seed,
)
from testbed.sim.configs import SimAgentConfigs
from testbed.sim.fastpath import fast_path_refusal, run_fast
from testbed.sim.network import Flow, NetworkModel
from testbed.sim.sensor import SimSensor
from testbed.sim.services import (
    benign_answer_ok,
    exploit_bytes,
    exploit_verdict,
    reply_bytes,
)
from testbed.sim.timing import Timing
from testbed.sim.truth import TruthLog

__all__ = ["PROBE_RECORDS_HOST_LIMIT", "SimDeployment", "SimOutcome", "Simulation"]

PROBE_RECORDS_HOST_LIMIT = 10_000
"""Above this many hosts, per-probe records (probe, token-rejected, benign-request) and per-host
ones (listen, stop) are off by default; wakes, infections, defence signals, alerts and actions
are always recorded."""
_MIN_WAIT_S = 1e-9  # shortest reschedule of a rate-capped launch (see Simulation._launch)
PACKET_DETECTORS = frozenset({"suricata"})
_push = heapq.heappush


def run_secret(seed: int) -> bytes:
    """The run's HMAC secret, derived from the seed (a simulated run has no agents to hide it
    from; deriving it keeps exploit bytes reproducible)."""
    return hashlib.sha256(f"testbed-sim/{seed}".encode()).digest()


class _AddressBook:
    """address -> host name, over the network's index (no second dict of every host; the
    index itself is built only when a record names a target)."""

    __slots__ = ("_names", "_network")

    def __init__(self, network: NetworkModel, names: list[str]) -> None:
        self._network, self._names = network, names

    def get(self, address: str, default: str | None = None) -> str | None:
        position = self._network.index_of.get(address)
        return default if position is None else self._names[position]


class SimDeployment:
    """What the ``Responder`` acts on: the backend contract's containment calls, answered with
    the modelled enforcement time. The state change itself lands at the logged action's
    effective time (``apply_action``), scheduled by the engine."""

    def __init__(self, scenario: Scenario, timing: Timing) -> None:
        self.topology = scenario.topology
        self.timing = timing

    def _timing(self, action: str, host: str, seconds: float) -> ActionTiming:
        if host not in self.topology.hosts:
            raise BackendError(f"no host {host!r} in topology {self.topology.name!r}")
        return ActionTiming(action, host, seconds)

    def quarantine(self, host: str) -> ActionTiming:
        return self._timing("quarantine", host, self.timing.enforce_quarantine_s)

    def release(self, host: str) -> ActionTiming:
        return self._timing("release", host, self.timing.enforce_quarantine_s)

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        return self._timing("block", source, self.timing.enforce_block_s)

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        return self._timing("unblock", source, self.timing.enforce_block_s)

    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        return self._timing("rate-limit", host, self.timing.enforce_rate_limit_s)


@dataclass(slots=True)
class _Worm:
    """One active host's worm: its brain and the runtime's pacing state."""

    host: int
    config: AgentConfig
    brain: Brain
    cap: RateCap
    generation: int
    trusts: frozenset[str]
    queue: deque[Probe] = field(default_factory=deque)
    wake_at: float = 0.0
    in_flight: int = 0
    blocked: bool = False  # waiting for a free in-flight slot (its rate token already taken)
    next_look: float = 0.0  # when it next reads its host's ARP table (the agent's 1 s poll)
    looked: int = 0  # how many of the table's entries (in the order they appeared) it has read


@contextmanager
def _few_collections() -> Iterator[None]:
    """The event loop allocates millions of short-lived objects that reference counting frees,
    yet each allocation counts toward the cyclic collector's next pass, and its full passes
    walk every brain's and the topology's state (about 15 us per probe on a 100,000-host
    adaptive run). Collect 100 times less often while the loop runs; nothing is lost: cycles
    are still collected, later."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 1) * _COLLECTION_SPACING, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


_COLLECTION_SPACING = 100


@dataclass(slots=True)
class _Exploit:
    """A probe in flight: the flow it rides and when it started."""

    worm: _Worm
    probe: Probe
    flow: Flow
    started: float
    salt: int


@dataclass(frozen=True)
class SimOutcome:
    """How the simulated outbreak ended."""

    end: float
    stop_reason: str
    sensor_stats: dict[str, int]
    counters: dict[str, int]


class Simulation:
    """One run of ``scenario`` in virtual time (t0 = 0). Writes ``events.jsonl``,
    ``alerts.jsonl`` and ``actions.jsonl`` into ``run_dir``; ``run()`` returns how it ended."""

    def __init__(self, scenario: Scenario, *, seed: int, timing: Timing, run_dir: Path,
                 duration: float, wall_base: float, run_name: str,
                 record_probes: bool | None = None, fast_path: bool | None = None,
                 observer: Callable[[list[ConnEvent]], None] | None = None) -> None:
        self.scenario = scenario
        self.spec = scenario.spec
        self.topology = scenario.topology
        self.seed = seed
        self.timing = timing
        self.run_dir = Path(run_dir)
        self.duration = duration
        self.wall_base = wall_base
        self.run_name = run_name
        hosts_total = len(self.topology.hosts)
        self.record_probes = (hosts_total <= PROBE_RECORDS_HOST_LIMIT if record_probes is None
                              else record_probes)
        names = [d.name for d in self.spec.detectors]
        refused = sorted(set(names) & PACKET_DETECTORS)
        if refused:
            raise RunError(f"detector {refused[0]!r} reads real packets, which the sim backend "
                           "does not produce (it models connection events only); run this "
                           "scenario on netns or docker, or drop that detector")
        self.secret = run_secret(seed)
        self.configs = SimAgentConfigs(scenario, self.run_dir, seed=seed, secret=self.secret)
        self.profile = self.spec.worm.profile
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._sequence = itertools.count(1)  # ties in time run in scheduling order
        self._stopped = False
        self.stop_reason = "time limit"
        self.sensor: SimSensor | None = None
        self.detectors: Any = None
        self.network = NetworkModel(self.topology, timing)
        self.hosts = self.network.hosts
        self.names = [h.name for h in self.hosts]
        self.active = bytearray(len(self.hosts))
        self.worms: dict[int, _Worm] = {}
        self.peers: dict[int, OrderedDict[str, None]] = {}
        self.neighbours: dict[int, dict[str, None]] = {}  # each host's ARP table (no gateways)
        self._reads_neighbours = self.profile in NEIGHBOUR_PROFILES
        self.infected: dict[str, float] = {}
        self.patient_zero = scenario.patient_zero()
        self._dirty = False
        self._stop_at: float | None = None
        self._responder_due: float | None = None
        self._oracle: ReachabilityOracle | None = None
        self._rate_limits: dict[str, float] = {}  # state.rate_limited the rate caps are for
        self._detectors_tick = True  # whether any detector's tick can raise an alert
        self.counters = {"probes": 0, "benign_requests": 0, "events": 0, "alerts": 0,
                         "actions": 0}
        self._salt = 0
        self.fast_path = fast_path  # None: when it applies; True: required; False: never
        self.observer = observer  # sees every batch of sensor events (validation, debugging)
        self.mode = ""

    # ---- the clock -------------------------------------------------------------------------
    def at(self, when: float, handler: Callable[[Any], None], argument: Any = None) -> None:
        _push(self._heap, (when, next(self._sequence), handler, argument))

    def run(self) -> SimOutcome:
        book = _AddressBook(self.network, self.names)
        monitored = self.scenario.monitored_segments()
        with TruthLog(self.run_dir / "events.jsonl", wall_base=self.wall_base,
                      address_book=book) as truth, \
                AlertLog(self.run_dir / "alerts.jsonl", clock_offset=self.wall_base) as alerts:
            self.truth, self.alert_log = truth, alerts
            actions_path = self.run_dir / "actions.jsonl"
            actions_path.write_text("", encoding="utf-8")
            self.responder = None
            if self.spec.detectors and monitored:
                context = SensorContext.from_topology(self.topology)
                self.detectors = DetectorSet.from_specs(self.spec.detectors, context,
                                                        seed=self.seed)
                want_data = any("data" in d.KINDS for d in self.detectors.detectors)
                self.sensor = SimSensor(monitored, want_data=want_data)
                self.network.sink = self.sensor.packet
                if self.spec.response.acts_on_alerts:
                    self.responder = Responder(self.spec.response,
                                               SimDeployment(self.scenario, self.timing),
                                               actions_path, clock=lambda: self.now)
            refusal = "switched off" if self.fast_path is False else fast_path_refusal(self)
            if refusal is None:
                self.mode = f"fast-{self.profile}"
                end, self.stop_reason, self.counters["probes"] = run_fast(self, truth)
            else:
                if self.fast_path:
                    raise RunError(f"the fast path cannot run this scenario: {refusal}")
                self.mode = "events"
                self._start()
                end = self._loop()
                self._finish(end)
        self._rewrite_action_walls(actions_path)
        stats = self.sensor.stats() if self.sensor is not None else {
            "packets": 0, "kernel_drops": 0, "duplicates": 0, "events": 0}
        counters: dict[str, Any] = dict(self.counters, flows=self.network.flows)
        return SimOutcome(end, self.stop_reason, stats, counters)

    def _loop(self) -> float:
        with _few_collections():
            return self._run_events()

    def _run_events(self) -> float:
        heap = self._heap
        end = self.duration
        # the sensor's own queue, read as sensor.next_time() would (a call per event costs)
        queued = self.sensor._queue if self.sensor is not None else []
        pop = heapq.heappop
        events = 0
        while heap and not self._stopped:
            when = heap[0][0]
            if when > end:
                break
            _, _, handler, argument = pop(heap)
            if queued and queued[0][0] <= when:
                self.now = when
                self._detect(when)
            self.now = when
            handler(argument)
            events += 1
        self.counters["events"] = events
        return self.now if self._stopped else end

    # ---- stepped use: testbed.gym drives the clock (additive; same loop as run()) ---------------
    def start_stepped(self, truth: Any, alert_log: Any) -> None:
        """Set up the event heap without running it; the caller has set ``sensor``,
        ``detectors`` and ``responder`` (as ``run`` does) and then calls ``run_until``."""
        self.truth, self.alert_log = truth, alert_log
        self.mode = "events"
        self._start()

    def run_until(self, until: float) -> bool:
        """Process every event up to virtual time ``until``; True once a stop rule ended it."""
        duration, self.duration = self.duration, until
        try:
            self._loop()
        finally:
            self.duration = duration
        if not self._stopped:
            self.now = max(self.now, until)
        return self._stopped

    def schedule_actions(self, records: list[Any]) -> None:
        """Actions called at ``now`` land at their effective time, as the responder's do."""
        self._acted(records)

    # ---- start and end ---------------------------------------------------------------------
    def _start(self) -> None:
        spec, timing = self.spec, self.timing
        if self.record_probes:
            for index, host in enumerate(self.hosts):
                for service in host.services:
                    self.truth.emit(self.names[index], "listen", 0.0, service=service.name,
                                    port=service.port, proto=service.proto,
                                    vuln=",".join(service.vulns) or None)
        for name in self.patient_zero:
            self.at(spec.worm.start_s + timing.wake_delay_s, self._wake_patient_zero,
                    self.network.index_of[str(self.topology.hosts[name].ip)])
        self._start_benign()
        if self.detectors is not None:
            # A detector that keeps the base class's tick raises nothing on a tick: when every
            # one does, the ticks only drain the sensor (a third of a gym step's events).
            members = getattr(self.detectors, "detectors", None)
            self._detectors_tick = members is None or any(
                type(detector).tick is not Detector.tick for detector in members)
            self.at(timing.sensor_poll_s, self._tick)
        if self.spec.stop.when:
            self._oracle = ReachabilityOracle(self.topology)
            self.at(timing.stop_check_s, self._stop_check)

    def _finish(self, end: float) -> None:
        self.now = end
        if self.sensor is not None and self.detectors is not None:
            self._detect(end)
            self._alerts(self.detectors.close(), respond=False)
        if self.record_probes:
            stopped = end + self.timing.wake_delay_s
            for index in range(len(self.hosts)):
                worm = self.worms.get(index)
                self.truth.emit(self.names[index], "stop", stopped,
                                detail={"reason": "stop-file", "active": bool(self.active[index]),
                                        "probes": worm.brain.probes_planned if worm else 0})

    def _rewrite_action_walls(self, path: Path) -> None:
        """The responder stamps ``wall`` from the real clock; in a simulated run every wall
        time is the run's epoch start plus the virtual ``mono``."""
        import json

        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
        with path.open("w", encoding="utf-8") as stream:
            for record in lines:
                record["wall"] = self.wall_base + float(record.get("mono", 0.0))
                stream.write(json.dumps(record, sort_keys=True) + "\n")

    def _stop(self, _: Any) -> None:
        # A stop condition that stopped holding during its grace period (a release re-opened a
        # path) cancelled this stop; a later one schedules its own.
        if self._stop_at is not None and self.now >= self._stop_at:
            self._stopped = True

    # ---- detection and response ------------------------------------------------------------
    def _detect(self, now: float) -> None:
        assert self.sensor is not None
        events = self.sensor.drain(now)
        if events:
            if self.observer is not None:
                self.observer(events)
            if self.responder is not None:
                self.responder.observe(events)  # as the runner does: a policy reads contacts
            self._alerts(self.detectors.observe_many(events))

    def _tick(self, _: Any) -> None:
        now = self.now
        self._detect(now)
        if self._detectors_tick:
            self._alerts(self.detectors.tick(now))
        if self.responder is not None:
            self._acted(self.responder.tick(now))
        self.at(now + self.timing.sensor_poll_s, self._tick)

    def _alerts(self, alerts: list[Any], *, respond: bool = True) -> None:
        if not alerts:
            return
        self.alert_log.write(alerts)
        self.counters["alerts"] += len(alerts)
        if respond and self.responder is not None:
            for alert in alerts:
                self._acted(self.responder.handle(alert))
            self._responder_wakeup()

    def _responder_wakeup(self) -> None:
        """Wake the responder exactly when its next planned action is due."""
        assert self.responder is not None
        due = self.responder.next_due()
        if due is not None and due > self.now and due != self._responder_due:
            self._responder_due = due
            self.at(due, self._responder_tick)

    def _responder_tick(self, _: Any) -> None:
        if self.responder is not None:
            self._acted(self.responder.tick(self.now))
            self._responder_wakeup()

    def _acted(self, records: list[Any]) -> None:
        for record in records:
            typed = (record if isinstance(record, ActionRecord)  # already a validated record
                     else ActionRecord.model_validate(record))
            self.counters["actions"] += 1
            self.at(max(self.now, typed.effective_at), self._enforce, typed)

    def _enforce(self, record: Any) -> None:
        """An action lands: the containment state every later decide_flow reads changes now."""
        state = self.network.state
        apply_action(state, record)
        if state.rate_limited != self._rate_limits:  # else the same caps would be rebuilt
            self._rate_limits = dict(state.rate_limited)
            self.network.rate_caps = {host: self.network.rate_caps.get(host) or
                                      RateCap(rate, burst=5.0, now=self.now)
                                      for host, rate in state.rate_limited.items() if rate > 0}
        self._dirty = True

    def _stop_check(self, _: Any) -> None:
        self.at(self.now + self.timing.stop_check_s, self._stop_check)
        if not self._dirty or not self.infected:
            return
        self._dirty = False
        assert self._oracle is not None
        when = self.spec.stop.when
        reasons = []
        if self._oracle.burned_out(self.infected, self.patient_zero):
            if "all-infected" in when:
                reasons.append("all-infected")
        elif "contained" in when and self._oracle.contained(self.infected, self.network.state):
            reasons.append("contained")
        if "crown-jewel-infected" in when and any(
                self.topology.hosts[h].tier == Tier.CROWN_JEWEL for h in self.infected):
            reasons.append("crown-jewel-infected")
        # The condition must still hold when the grace period ends, as on the emulator: a
        # release right after containment re-opens the run instead of ending it as contained.
        if reasons and self._stop_at is None:
            self.stop_reason = reasons[0]
            self._stop_at = self.now + self.spec.stop.grace_s
            self.at(self._stop_at, self._stop)
        elif not reasons and self._stop_at is not None:
            self.stop_reason = "time limit"
            self._stop_at = None

    # ---- infection -------------------------------------------------------------------------
    def _wake_patient_zero(self, host: int) -> None:
        self._wake(host, "wake-file", generation=0, inherited=())

    def _wake(self, host: int, reason: str, *, generation: int,
              inherited: tuple[float, ...]) -> None:
        if self.active[host]:
            return
        self.active[host] = 1
        name = self.names[host]
        config = self.configs[name]
        now = self.now
        self.infected.setdefault(name, now)
        self._dirty = True
        self.truth.emit(name, "wake", now, generation=generation,
                        detail={"reason": reason, "profile": config.worm.profile})
        worm_config = config.worm
        brain = Brain(WormView.from_config(config), worm_config.profile, worm_config.params,
                      seed=derive_seed(config.seed, "worm"), start=now, inherited=inherited)
        for peer in self.peers.get(host, ()):
            brain.see_peer(peer)
        cap = RateCap(worm_config.max_probe_rate,
                      burst=max(1.0, worm_config.max_probe_rate / 5), now=now)
        worm = _Worm(host, config, brain, cap, generation, frozenset(config.trusts))
        self.worms[host] = worm
        self.at(now, self._worm_step, worm)

    @cached_property
    def may_wake(self) -> bytearray:
        """Per host index, 1 if its worm can ever run: patient zero, or a host with a service
        vulnerability it has not patched (``exploit_verdict`` accepts nothing else). The
        peers and neighbours of the others are never read (``_wake`` is where they are), so
        they are not kept: at 100,000 hosts that is most of them."""
        may = bytearray(len(self.hosts))
        for index, host in enumerate(self.hosts):
            may[index] = host.patched is not True and any(
                vuln not in host.patched for service in host.services for vuln in service.vulns)
        for name in self.patient_zero:  # by name: the address index is not built for this
            may[self.names.index(name)] = 1
        return may

    def _note_peer(self, host: int, peer: str) -> None:
        """``Agent.note_peer``: a host that talked to us joins the worm's hit list."""
        if self.profile not in OBSERVING_PROFILES or not self.may_wake[host]:
            return  # only these brains read peers; a host that never wakes has no brain
        peers = self.peers.get(host)
        if peers is None:
            peers = self.peers[host] = OrderedDict()
        worm = self.worms.get(host)
        if remember_peer(peers, peer) and worm is not None:
            worm.brain.see_peer(peer)

    def _note_neighbours(self, flow: Flow) -> None:
        """The kernel's neighbour tables after ``flow`` (``testbed.agent.neighbours`` reads
        them on netns): an on-link flow whose ARP resolution succeeded puts each end in the
        other's table (the receiver learns the sender from its request). Router interfaces are
        gateways, left out on netns too, so only on-link host-to-host flows count."""
        if flow.target < 0 or len(flow.segments) != 1 or \
                not self.network.resolved(flow.src_ip, flow.dst_ip):
            return
        may_wake = self.may_wake
        for host, address in ((flow.src, flow.dst_ip), (flow.target, flow.src_ip)):
            if not may_wake[host]:
                continue  # never read: see may_wake
            table = self.neighbours.setdefault(host, {})
            if address not in table:
                table[address] = None  # its worm reads it at its next look (``_worm_step``)

    # ---- the worm loop ---------------------------------------------------------------------
    def _worm_step(self, worm: _Worm) -> None:
        brain, now = worm.brain, self.now
        if self._reads_neighbours:
            # As the agent: the worm reads its host's ARP table at most once a second (at wake,
            # then at the first plan NEIGHBOUR_POLL_S later), not the moment an entry appears,
            # and it wakes for that look.
            if now >= worm.next_look:
                table = self.neighbours.get(worm.host)
                if table is not None and len(table) > worm.looked:
                    for address in itertools.islice(table, worm.looked, None):
                        brain.see_neighbour(address)
                    worm.looked = len(table)
                worm.next_look = now + NEIGHBOUR_POLL_S
            plan = brain.plan(now)
            worm.wake_at = min(plan.wake_at, worm.next_look)
        else:
            plan = brain.plan(now)
            worm.wake_at = plan.wake_at
        worm.queue.extend(plan.probes)
        self._launch(worm)

    def _launch(self, worm: Any) -> None:
        now = self.now
        queue = worm.queue
        while queue:
            if not worm.blocked:
                delay = worm.cap.delay(now)
                if delay > 0:
                    # at least 1 ns: a bucket short of a token by float noise asks for less
                    # than one ulp of ``now``, and now + delay == now would spin forever
                    self.at(now + max(delay, _MIN_WAIT_S), self._launch, worm)
                    return
            if worm.in_flight >= worm.config.worm.max_in_flight:
                worm.blocked = True  # resumed by the next probe that completes
                return
            worm.blocked = False
            worm.in_flight += 1
            self._start_probe(worm, queue.popleft())
        self.at(max(now, worm.wake_at), self._worm_step, worm)

    def _start_probe(self, worm: _Worm, probe: Probe) -> None:
        now = self.now
        self.counters["probes"] += 1
        worm_config = worm.config.worm
        network = self.network
        self._salt += 1
        if probe.vuln is None:  # an interleaved, benign-looking connection (benign_request)
            outcome, done, flow = self._benign_exchange(
                worm.host, probe.target, probe.port, probe.proto, probe.service,
                worm_config.connect_timeout_s + worm_config.reply_timeout_s)
            outcome = {"failed": "not-vulnerable"}.get(outcome, outcome)
            self.at(done, self._probe_done,
                    (worm, probe, outcome, False, outcome in ("ok", "not-vulnerable"), now))
            return
        payload = b""
        if self.sensor is not None and self.sensor.want_data:
            payload = exploit_bytes(
                secret=self.secret, run=self.run_name, vuln=probe.vuln,
                source=worm.config.address, target=probe.target,
                issued_ms=int((self.wall_base + now) * 1000), generation=worm.generation,
                parent=worm.config.host,
                weights=worm.brain.weights() if self.profile == "adaptive" else (),
                encoding=probe.encoding, salt=self._salt)
        flow = network.open(worm.host, probe.target, probe.port, probe.proto, now,
                            worm_config.connect_timeout_s,
                            payload=payload if probe.proto == "udp" else b"")
        if self._reads_neighbours:
            self._note_neighbours(flow)
        if flow.status != "open":
            self.at(flow.at, self._probe_done, (worm, probe, flow.status, False, False, now))
            return
        exploit = _Exploit(worm, probe, flow, now, self._salt)
        if probe.proto == "tcp":
            if payload:  # only a sensor that wants data reads it
                network.send(flow, flow.at, from_initiator=True, payload=payload)
            self.at(flow.at + flow.one_way, self._deliver, exploit)
        else:
            self.at(flow.at, self._deliver, exploit)

    def _deliver(self, exploit: _Exploit) -> None:
        """The exploit line reaches the target's mock service: ``ExploitHandler.handle``."""
        now = self.now
        worm, probe, flow = exploit.worm, exploit.probe, exploit.flow
        worm_config = worm.config.worm
        if self.network.state.quarantined and self.network.cut(flow):  # landed in flight
            if flow.proto == "tcp":  # connected, but the reply never comes
                self.at(flow.at + worm_config.reply_timeout_s, self._probe_done,
                        (worm, probe, "not-vulnerable", False, True, exploit.started))
            else:
                self.at(exploit.started + worm_config.connect_timeout_s, self._probe_done,
                        (worm, probe, "timeout", False, False, exploit.started))
            return
        target = flow.target
        target_name = self.names[target]
        source = worm.config.address
        self._note_peer(target, source)
        assert flow.service is not None and probe.vuln is not None
        verdict = exploit_verdict(self.hosts[target], flow.service, probe.vuln)
        if verdict.accepted:
            if self.active[target]:
                status = "already"
            else:
                status = "infected"
                sent_weights = worm.brain.weights() if self.profile == "adaptive" else ()
                arms = arm_names(worm_config.arsenal)
                weights = (dict(zip(arms, sent_weights, strict=True))
                           if len(sent_weights) == len(arms) else {})
                service = flow.service
                self.truth.emit(target_name, "infection", now,
                                technique=TECHNIQUES["tool-transfer"], source=source,
                                parent=worm.config.host, vuln=probe.vuln, service=service.name,
                                port=service.port, proto=service.proto, encoding=probe.encoding,
                                generation=worm.generation + 1, weights=weights or None)
                self._wake(target, "infection", generation=worm.generation + 1,
                           inherited=sent_weights if weights else ())
        else:
            status = verdict.reply
            service = flow.service
            if self.record_probes:  # one per probe: per-probe records' switch
                self.truth.emit(target_name, "token-rejected", now,
                                technique=TECHNIQUES["exploit"], source=source,
                                service=service.name, port=service.port, proto=service.proto,
                                vuln=probe.vuln, encoding=probe.encoding, reason=verdict.reason)
        replied = now + self.timing.service_s
        if self.sensor is not None and self.sensor.want_data:
            self.network.send(flow, replied, from_initiator=False,
                              payload=reply_bytes(status, probe.encoding, exploit.salt))
        already = status == "already"
        outcome = "infected" if already else status
        self.at(replied + flow.one_way, self._probe_done,
                (worm, probe, outcome, already, True, exploit.started))

    def _probe_done(self, result: tuple[_Worm, Probe, str, bool, bool, float]) -> None:
        """The prober learns the outcome: ground truth, ``Brain.observe``, defence signals."""
        worm, probe, outcome, already, connected, started = result
        now = self.now
        name = worm.config.host
        if self.record_probes:
            technique = (TECHNIQUES["valid-credentials"] if probe.target in worm.trusts and
                         probe.tactic in ("hitlist", "interleave") else
                         TECHNIQUES["exploit"] if connected and probe.vuln else
                         TECHNIQUES["scan"])
            self.truth.emit(name, "probe", now, technique=technique, target=probe.target,
                            port=probe.port, proto=probe.proto, service=probe.service,
                            vuln=probe.vuln, tactic=probe.tactic, encoding=probe.encoding,
                            outcome=outcome, generation=worm.generation,
                            start_mono=round(started, 6),
                            detail={"already": True} if already else None)
        brain = worm.brain
        signals = brain.observe(Observation(probe, "already" if already else outcome, now))
        for kind in signals:
            self.truth.emit(name, "defence-signal", now, signal=kind, target=probe.target,
                            port=probe.port, proto=probe.proto, tactic=probe.tactic,
                            detail={"rate": round(brain.current_rate, 4),
                                    "encoding": brain.encoding})
        worm.in_flight -= 1
        if worm.blocked:
            self._launch(worm)

    # ---- benign traffic --------------------------------------------------------------------
    def _benign_exchange(self, source: int, address: str, port: int, proto: str, kind: str,
                         timeout: float) -> tuple[str, float, Flow]:
        """``benign_request``: (outcome ok/failed/connect outcome, when it is known, flow)."""
        network = self.network
        flow = network.open(source, address, port, proto, self.now, timeout)
        if self._reads_neighbours:
            self._note_neighbours(flow)
        if flow.status != "open":
            return flow.status, flow.at, flow
        assert flow.service is not None
        self._note_peer(flow.target, flow.src_ip)
        answered = benign_answer_ok(kind, flow.service)
        if proto == "udp":
            if not answered:
                return "timeout", self.now + timeout, flow
            return "ok", flow.at + self.timing.service_s + flow.one_way, flow
        done = flow.at + flow.one_way + self.timing.service_s + flow.one_way
        return ("ok" if answered else "failed"), min(done, self.now + timeout), flow

    def _benign_record(self, source: int, role: str, target: BenignTarget | tuple[str, int],
                       outcome: str) -> None:
        self.counters["benign_requests"] += 1
        if not self.record_probes:
            return
        if isinstance(target, BenignTarget):
            fields: dict[str, Any] = {"target": target.address, "port": target.port,
                                      "proto": target.proto, "service": target.service}
        else:
            fields = {"target": target[0], "port": target[1], "proto": "tcp", "service": "scan"}
        self.truth.emit(self.names[source], "benign-request", self.now, role=role,
                        outcome="ok" if outcome == "ok" else "failed",
                        detail=None if outcome == "ok" else {"why": outcome}, **fields)

    def _start_benign(self) -> None:
        """``Agent._start_benign``: the same seeds and the same order of draws."""
        if not self.configs.has_benign:
            return
        for index, host in enumerate(self.hosts):
            config = self.configs[host.name]
            if not (config.users or config.backup or config.scanner):
                continue
            rng = random.Random(derive_seed(config.seed, "benign"))
            for job_index, job in enumerate(config.users):
                user_rng = random.Random(rng.getrandbits(64) + job_index)
                if job.targets:
                    gaps = user_gaps(job.per_minute, user_rng)
                    self.at(next(gaps), self._user_request, (index, job, user_rng, gaps))
            if config.backup is not None:
                backup_rng = random.Random(rng.getrandbits(64))
                if config.backup.targets:
                    self.at(backup_rng.uniform(0, config.backup.every_s), self._backup_round,
                            (index, config.backup))
            if config.scanner is not None:
                scanner_rng = random.Random(rng.getrandbits(64))
                self.at(scanner_rng.uniform(0, config.scanner.every_s), self._scanner_round,
                        (index, config.scanner))

    def _user_request(self, state: tuple[int, Any, random.Random, Iterator[float]]) -> None:
        index, job, rng, _gaps = state
        target = job.targets[rng.randrange(len(job.targets))]
        outcome, done, _ = self._benign_exchange(index, target.address, target.port,
                                                 target.proto, target.service,
                                                 REQUEST_TIMEOUT_S)
        self.at(done, self._user_done, (state, target, outcome))

    def _user_done(self, result: tuple[Any, BenignTarget, str]) -> None:
        state, target, outcome = result
        self._benign_record(state[0], "user", target, outcome)
        self.at(self.now + next(state[3]), self._user_request, state)

    def _backup_round(self, job_state: tuple[int, Any]) -> None:
        index, job = job_state
        round_state = {"index": index, "job": job, "started": self.now,
                       "pending": deque(job.targets), "running": 0}
        for _ in range(min(4, len(job.targets))):  # asyncio.Semaphore(4)
            self._backup_next(round_state)

    def _backup_next(self, round_state: dict[str, Any]) -> None:
        target = round_state["pending"].popleft()
        round_state["running"] += 1
        outcome, done, _ = self._benign_exchange(round_state["index"], target.address,
                                                 target.port, target.proto, target.service,
                                                 REQUEST_TIMEOUT_S)
        self.at(done, self._backup_done, (round_state, target, outcome))

    def _backup_done(self, result: tuple[dict[str, Any], BenignTarget, str]) -> None:
        round_state, target, outcome = result
        self._benign_record(round_state["index"], "backup", target, outcome)
        round_state["running"] -= 1
        if round_state["pending"]:
            self._backup_next(round_state)
        elif round_state["running"] == 0:
            job = round_state["job"]
            self.at(max(self.now, round_state["started"] + job.every_s), self._backup_round,
                    (round_state["index"], job))

    def _scanner_round(self, job_state: tuple[int, ScannerJob]) -> None:
        index, job = job_state
        own = str(self.hosts[index].ip)
        items = ((str(address), port) for cidr in job.cidrs
                 for address in ipaddress.IPv4Network(cidr).hosts() if str(address) != own
                 for port in job.ports)
        self._scan_next({"index": index, "job": job, "started": self.now, "items": items,
                         "pending": 0, "waiting": False, "exhausted": False})

    def _scan_next(self, scan: dict[str, Any]) -> None:
        if scan["pending"] >= 16:
            scan["waiting"] = True
            return
        scan["waiting"] = False
        item = next(scan["items"], None)
        if item is None:
            scan["exhausted"] = True
            self._scan_round_over(scan)
            return
        address, port = item
        flow = self.network.open(scan["index"], address, port, "tcp", self.now, SCAN_TIMEOUT_S)
        if self._reads_neighbours:
            self._note_neighbours(flow)
        if flow.status == "open":
            self._note_peer(flow.target, flow.src_ip)
        scan["pending"] += 1
        self.at(flow.at, self._scan_done,
                (scan, item, "ok" if flow.status == "open" else flow.status))
        self.at(self.now + 1.0 / scan["job"].per_second, self._scan_next, scan)

    def _scan_done(self, result: tuple[dict[str, Any], tuple[str, int], str]) -> None:
        scan, item, outcome = result
        self._benign_record(scan["index"], "scanner", item, outcome)
        scan["pending"] -= 1
        if scan["waiting"]:
            self._scan_next(scan)
        elif scan["exhausted"]:
            self._scan_round_over(scan)

    def _scan_round_over(self, scan: dict[str, Any]) -> None:
        if scan["pending"] == 0 and not scan.get("rescheduled"):
            scan["rescheduled"] = True
            job = scan["job"]
            self.at(max(self.now, scan["started"] + job.every_s), self._scanner_round,
                    (scan["index"], job))
