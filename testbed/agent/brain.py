"""The worm's brain, sans-IO: observations and the time in, the next probes out.

Owns: the tactics (target choice, exploit choice, rate and jitter, payload encoding, dormancy and
back-off, interleaving known-good connections, and the observation-driven tactics of
``testbed.agent.knowledge``: recon, mimicry of its host's benign users, value-directed planning),
the eight profiles and their parameters (``PROFILE_PARAMETERS``, kept equal to
``testbed/agent/profiles/*.yaml`` by a unit test), the adaptive profile's bandit over every
tactic and the weights offspring inherit.
Must not: touch sockets, files or clocks (time is an argument), or know which hosts are
vulnerable: it only learns from the outcomes of its own probes, the peers and neighbours its
host has seen and its host's own configuration (``WormView``).
The same brain can be driven by real sockets (``testbed.agent.runtime``) or by a simulator
(``testbed.sim.engine``); both feed it the same observations (docs/profiles.md).

Use::

    brain = Brain(view, "adaptive", params, seed=7, start=now)
    plan = brain.plan(now)                 # probes to send now, and when to ask again
    signals = brain.observe(observation)   # feed back every outcome; returns defence signals
    brain.see_peer(address)                # a host that connected to ours
    brain.see_neighbour(address)           # an entry of our host's ARP (neighbour) table
"""

from __future__ import annotations

import functools
import ipaddress
import math
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from testbed.agent.config import BackupJob, ExploitSpec, UserJob
from testbed.agent.knowledge import Knowledge, MimicSchedule, address_value
from testbed.errors import AgentError

if TYPE_CHECKING:
    from testbed.agent.config import AgentConfig

__all__ = [
    "KNOWN_GOOD_MEMORY",
    "MEMORY",
    "MIN_GAP",
    "NEIGHBOUR_PROFILES",
    "OBSERVING_PROFILES",
    "PEER_MEMORY",
    "PROFILE_PARAMETERS",
    "STEALTH_MIN_GAP",
    "TACTIC_ARMS",
    "AddressSpace",
    "Brain",
    "Observation",
    "ParamRule",
    "Plan",
    "Probe",
    "WormView",
    "arm_names",
    "remember_peer",
    "resolve_params",
]

TACTIC_ARMS = ("uniform", "sequential", "local", "hitlist", "recon", "mimic", "planned")
"""Target-choice tactics, the adaptive bandit's arms in token order; ``interleave``
(known-good connections) is not a target tactic. ``recon``: known-live hosts on known-open
services; ``mimic``: its host's benign users' peers and services; ``planned``: the planner's
value-directed pivots (its credential pivots are ``hitlist`` probes)."""
OBSERVING_PROFILES = frozenset({"hitlist", "stealth", "adaptive", "recon", "planner"})
"""Profiles whose brains read the peers and neighbours their host sees; a driver may skip
feeding ``see_peer``/``see_neighbour`` to the others (their brains ignore them)."""
NEIGHBOUR_PROFILES = frozenset({"recon", "planner", "adaptive"})
"""Profiles whose brains read their host's neighbour (ARP) table (``Brain.see_neighbour``)."""
INTERLEAVE = "interleave"
SIGNALS = ("prohibited", "vanished", "refused")
"""Defence signals: an ICMP prohibited answer; a peer that answered before and stops answering;
a service that answered before and now refuses."""

# Rewards of the adaptive bandit per outcome (infections pay; defence costs).
_REWARD = {"infected": 1.0, "already": 0.0, "not-vulnerable": 0.0, "rejected": 0.0, "ok": 0.0,
           "refused": -0.05, "unreachable": -0.02, "timeout": -0.3, "prohibited": -1.0}
_VANISH_PENALTY = -1.0
_CONNECTED = ("infected", "already", "not-vulnerable", "rejected", "ok")
_SILENT = ("timeout", "prohibited", "unreachable")
MEMORY = 4096
"""Bound on a brain's remembered answers, hit-list hosts and observed hosts."""
KNOWN_GOOD_MEMORY = 256
"""Bound on the services that connected which a stealthy brain interleaves requests to."""
PEER_MEMORY = 1024
"""Bound on the peers (hosts that connected to its host) an agent keeps for its worm
(``Agent.note_peer``; the sim's engine and fast path keep the same)."""


def remember_peer(peers: OrderedDict[Any, None], peer: Any) -> bool:
    """Keep ``peer`` among the last ``PEER_MEMORY`` peers of a host, oldest forgotten first;
    whether it is new (then its worm, if awake, sees it: ``Brain.see_peer``)."""
    if peer in peers:
        return False
    peers[peer] = None
    if len(peers) > PEER_MEMORY:
        peers.popitem(last=False)
    return True
_OBSERVED_TACTICS = frozenset({"recon", "mimic", "planned"})
_SCANNING_ARMS = ("uniform", "sequential", "local")
_IDLE_S = 3600.0
_CAP_MARGIN = 1.05  # nothing to do: ask again this much later (or after a new observation)
STEALTH_MIN_GAP = 1.001
"""stealth's floor between probes: strictly below one new destination per second."""
MIN_GAP = 1e-4
"""No two probes of one worm closer than this (seconds)."""


@dataclass(frozen=True)
class ParamRule:
    default: float | str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None


def _rate(default: float, maximum: float = 200.0) -> ParamRule:
    return ParamRule(default, 0.01, maximum)


_ENCODINGS = ("plain", "encoded")
PROFILE_PARAMETERS: dict[str, dict[str, ParamRule]] = {
    "classic": {"rate": _rate(10.0), "jitter": ParamRule(0.1, 0, 1),
                "encoding": ParamRule("plain", choices=_ENCODINGS)},
    "local-preference": {"rate": _rate(10.0), "jitter": ParamRule(0.1, 0, 1),
                         "local_bias": ParamRule(0.75, 0, 1),
                         "encoding": ParamRule("plain", choices=_ENCODINGS)},
    "hitlist": {"rate": _rate(5.0), "jitter": ParamRule(0.2, 0, 1),
                "fallback": ParamRule("local", choices=("uniform", "sequential", "local")),
                "encoding": ParamRule("plain", choices=_ENCODINGS)},
    "stealth": {"rate": _rate(0.5, 0.99), "jitter": ParamRule(0.5, 0, 1),
                "interleave": ParamRule(0.5, 0, 0.95),
                "encoding": ParamRule("encoded", choices=_ENCODINGS)},
    "adaptive": {"rate": _rate(5.0), "jitter": ParamRule(0.3, 0, 1),
                 "epsilon": ParamRule(0.1, 0, 1), "learning_rate": ParamRule(0.2, 0.01, 1),
                 "backoff": ParamRule(0.5, 0.05, 1), "dormancy_s": ParamRule(5.0, 0, 600),
                 "min_rate": ParamRule(0.2, 0.01, 200), "interleave_max": ParamRule(0.5, 0, 0.95),
                 "encoding": ParamRule("plain", choices=_ENCODINGS)},
    "recon": {"rate": _rate(2.0), "jitter": ParamRule(0.3, 0, 1),
              "guess_budget": ParamRule(0.0, 0, 3),
              "encoding": ParamRule("plain", choices=_ENCODINGS)},
    "mimic": {"rate": _rate(1.0), "share": ParamRule(1.0, 0.05, 1),
              "encoding": ParamRule("encoded", choices=_ENCODINGS)},
    "planner": {"rate": _rate(2.0), "jitter": ParamRule(0.3, 0, 1),
                "explore": ParamRule("local", choices=("local", "none")),
                "encoding": ParamRule("plain", choices=_ENCODINGS)},
}
"""Every profile's parameters with default and bounds; equal to the YAML catalog."""


def resolve_params(profile: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``params``; AgentError on an unknown profile, key or bad value."""
    if profile not in PROFILE_PARAMETERS:
        raise AgentError(f"unknown worm profile {profile!r}; known: "
                         f"{', '.join(sorted(PROFILE_PARAMETERS))}")
    rules = PROFILE_PARAMETERS[profile]
    resolved: dict[str, Any] = {key: rule.default for key, rule in rules.items()}
    for key, value in params.items():
        if key not in rules:
            raise AgentError(f"profile {profile!r} has no parameter {key!r}; known: "
                             f"{', '.join(sorted(rules))}")
        rule = rules[key]
        if rule.choices is not None:
            if value not in rule.choices:
                raise AgentError(f"{profile}.{key}: {value!r} is not one of "
                                 f"{', '.join(rule.choices)}")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value):
                raise AgentError(f"{profile}.{key}: {value!r} is not a number")
            if (rule.min is not None and value < rule.min) or \
                    (rule.max is not None and value > rule.max):
                raise AgentError(f"{profile}.{key}: {value!r} is outside {rule.min}..{rule.max}")
            value = float(value)
        resolved[key] = value
    return resolved


class AddressSpace:
    """The usable addresses (no network/broadcast) of some CIDRs, indexable without a list.

    Hot in the simulator (one ``at`` per probe, one ``index_of`` per peer seen, two spaces per
    woken worm), so: CIDRs are parsed once per distinct tuple, addresses are formatted and parsed
    as dotted quads without ``ipaddress`` objects (anything but a plain dotted quad still goes
    through ``ipaddress``, which accepts or rejects it as before), and ``index_of``'s answers are
    remembered in one memo per tuple of CIDRs, shared by every space over them."""

    __slots__ = ("_indices", "ranges", "total")

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self.ranges: list[tuple[int, int]] = list(_usable_ranges(tuple(cidrs)))
        self.total = sum(count for _, count in self.ranges)
        self._indices = _index_memo(tuple(cidrs))

    def at(self, index: int) -> str:
        index %= self.total
        for first, count in self.ranges:
            if index < count:
                value = first + index
                return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
            index -= count
        raise IndexError(index)  # unreachable

    def index_of(self, address: str) -> int | None:
        indices = self._indices
        found = indices.get(address, -1)
        if found != -1:
            return found
        value = address_value(address)  # raises on a malformed address: nothing remembered
        offset = 0
        found = None
        for first, count in self.ranges:
            if first <= value < first + count:
                found = offset + value - first
                break
            offset += count
        if len(indices) < _INDEX_MEMO:
            indices[address] = found
        return found


_INDEX_MEMO = 1 << 17  # addresses whose index is remembered, per distinct tuple of CIDRs


@functools.lru_cache(maxsize=16)
def _index_memo(cidrs: tuple[str, ...]) -> dict[str, int | None]:
    """address -> index (None: outside), shared by every space over the same CIDRs (each woken
    worm builds two; the answer depends on nothing else)."""
    return {}


@functools.lru_cache(maxsize=1024)
def _usable_ranges(cidrs: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(first usable address as int, count) per CIDR: no network/broadcast above a /31."""
    ranges = []
    for cidr in cidrs:
        network = ipaddress.IPv4Network(cidr)
        if network.num_addresses > 2:
            ranges.append((int(network.network_address) + 1, network.num_addresses - 2))
        else:
            ranges.append((int(network.network_address), network.num_addresses))
    return tuple(ranges)


@dataclass(frozen=True)
class WormView:
    """What the worm knows about where it is (no ground truth about others' weaknesses)."""

    address: str
    segment_cidr: str
    cidrs: tuple[str, ...]
    arsenal: tuple[ExploitSpec, ...]
    trusts: tuple[str, ...] = ()  # addresses of hosts whose credentials it holds
    users: tuple[UserJob, ...] = ()  # its host's benign users: their peers, services, rates
    backup: BackupJob | None = None  # its host's backup round, if it is the backup server
    services: tuple[tuple[int, str], ...] = ()  # (port, proto) its own host listens on

    @classmethod
    def from_config(cls, config: AgentConfig) -> WormView:
        """The view of the host ``config`` describes (what both drivers hand the brain)."""
        return cls(config.address, config.segment_cidr, config.cidrs, config.worm.arsenal,
                   config.trusts, config.users, config.backup,
                   tuple((service.port, service.proto) for service in config.services))


@dataclass(frozen=True, slots=True)
class Probe:
    seq: int
    target: str
    port: int
    proto: str
    service: str
    vuln: str | None  # None: an interleaved, benign-looking connection
    tactic: str
    encoding: str
    exploit_key: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    probe: Probe
    outcome: str  # testbed.records.PROBE_OUTCOMES, or "already" (target was infected before)
    time: float


@dataclass(frozen=True, slots=True)
class Plan:
    probes: tuple[Probe, ...]
    wake_at: float  # call plan() again at this time at the latest


def arm_names(arsenal: tuple[ExploitSpec, ...]) -> tuple[str, ...]:
    """The canonical order of weights in a token: tactic arms, then the exploits."""
    return TACTIC_ARMS + tuple(exploit.key for exploit in arsenal)


class Brain:
    """One worm's decision maker. Deterministic for a seed and a sequence of calls."""

    def __init__(self, view: WormView, profile: str, params: dict[str, Any], *, seed: int,
                 start: float, inherited: tuple[float, ...] = ()) -> None:
        self.view = view
        self.profile = profile
        self.params = resolve_params(profile, params)
        self.rng = random.Random(seed)
        self.space = AddressSpace(view.cidrs)
        self.local_space = AddressSpace((view.segment_cidr,))
        self.encoding: str = self.params["encoding"]
        self.rate_multiplier = 1.0
        self.next_slot_at = start
        self.dormant_until = start
        self._seq = 0
        self._sequential_index = self.rng.randrange(self.space.total)
        own_local = self.local_space.index_of(view.address)
        self._local_index = 0 if own_local is None else own_local + 1
        self.infected: set[str] = set()
        self._done: set[tuple[str, str]] = set()  # (target, exploit key) with a verdict
        self._answered: OrderedDict[str, float] = OrderedDict()  # address -> last answer time
        self._known_good: OrderedDict[tuple[str, int, str], str] = OrderedDict()
        self._hitlist: deque[tuple[str, ExploitSpec, str]] = deque()  # with exploit.key
        self._hitlisted: set[str] = set()
        self._trusts = set(view.trusts)
        self._exploit_keys = tuple((exploit, exploit.key) for exploit in view.arsenal)
        # what its host observed (recon, planner, adaptive); built before the trusts arrive
        self.knowledge: Knowledge | None = None
        if profile in NEIGHBOUR_PROFILES:
            self.knowledge = Knowledge(view.address, view.arsenal, view.cidrs,
                                       view.segment_cidr, memory=MEMORY,
                                       own_services=view.services)
        self.mimicry = MimicSchedule(view.users, view.backup, view.arsenal)
        self._mimic_in_flight: set[tuple[str, str]] = set()
        for address in view.trusts:
            self._add_to_hitlist(address)
        if self.knowledge is not None:  # its host's users reach these: they are live and open
            for target in self.mimicry.targets:
                if target.address != view.address and \
                        self.space.index_of(target.address) is not None:
                    self.knowledge.note_open(target.address, target.port, target.proto,
                                             target.service)
        self._planned_pick: tuple[str, ExploitSpec, bool] | None = None
        self.arms = arm_names(view.arsenal)
        self.values: dict[str, float] = dict.fromkeys(self.arms, 0.0)
        if len(inherited) == len(self.arms):
            self.values = {arm: _clamp(value) for arm, value in zip(self.arms, inherited,
                                                                     strict=True)}
        self._signal_times: deque[float] = deque(maxlen=64)
        self._last_backoff = -math.inf
        self.probes_planned = 0

    # ---- public ---------------------------------------------------------------------------
    def plan(self, now: float) -> Plan:
        """Probes due at ``now`` and the time to call again."""
        if not self.view.arsenal or (self.profile == "mimic" and not self.mimicry.rate):
            return Plan((), now + _IDLE_S)
        if now < self.dormant_until:
            return Plan((), self.dormant_until)
        probes: list[Probe] = []
        while self.next_slot_at <= now and len(probes) < 16:
            probe = self._next_probe(now)
            if probe is not None:
                probes.append(probe)
            self.next_slot_at += self._gap()
        if self.next_slot_at < now:  # the caller stalled: do not burst to catch up
            self.next_slot_at = now + self._gap()
        self.probes_planned += len(probes)
        return Plan(tuple(probes), self.next_slot_at)

    def observe(self, observation: Observation) -> list[str]:
        """Learn from one outcome; returns the defence signals it revealed."""
        probe, outcome, when = observation.probe, observation.outcome, observation.time
        target = probe.target
        signals: list[str] = []
        service_key = (target, probe.port, probe.proto)
        if outcome in _SILENT and target in self._answered:
            signals.append("vanished")
            del self._answered[target]
            for key in [k for k in self._known_good if k[0] == target]:
                del self._known_good[key]
        if outcome == "prohibited":
            signals.append("prohibited")
        if outcome == "refused" and service_key in self._known_good:
            signals.append("refused")
            del self._known_good[service_key]
        if outcome in _CONNECTED or outcome == "refused":
            self._remember_answer(target, when)
        if outcome in _CONNECTED:
            self._known_good[service_key] = probe.service
            self._known_good.move_to_end(service_key)
            while len(self._known_good) > KNOWN_GOOD_MEMORY:
                self._known_good.popitem(last=False)
        if outcome in ("infected", "already"):
            self.infected.add(target)
        if probe.vuln is not None and outcome in ("infected", "already", "not-vulnerable",
                                                  "rejected"):
            self._done.add((target, probe.exploit_key))
        if self.knowledge is not None:
            self.knowledge.observed(probe.seq, target, probe.port, probe.proto, probe.service,
                                    outcome, signals)
        self._mimic_in_flight.discard((target, probe.exploit_key))
        if self.profile == "adaptive":
            self._learn(probe, outcome, signals, when)
        return signals

    def see_peer(self, address: str) -> None:
        """A host that talked to us (e.g. connected to our services): a hit-list candidate."""
        if address in self._hitlisted:  # already a candidate: nothing to parse or add
            return
        if address != self.view.address and self.space.index_of(address) is not None:
            self._add_to_hitlist(address)

    def see_neighbour(self, address: str) -> None:
        """An entry of its host's neighbour (ARP) table, gateways excluded: a live host on its
        own segment that its host talked to or that talked to its host."""
        if self.knowledge is not None and address != self.view.address and \
                address not in self.knowledge.live and self.space.index_of(address) is not None:
            self.knowledge.note_live(address)

    @property
    def reads_neighbours(self) -> bool:
        """Whether :meth:`see_neighbour` changes anything (a driver may skip polling)."""
        return self.knowledge is not None

    def weights(self) -> tuple[float, ...]:
        """The learned values in canonical arm order (what a token carries to offspring)."""
        return tuple(round(_clamp(self.values[arm]), 6) for arm in self.arms)

    @property
    def current_rate(self) -> float:
        rate: float = self.params["rate"] * self.rate_multiplier
        if self.profile == "adaptive":
            rate = max(rate, self.params["min_rate"])
        elif self.profile == "mimic":  # never faster than its host's users together
            rate = min(rate, self.params["share"] * self.mimicry.rate)
        return rate

    # ---- target and exploit choice --------------------------------------------------------
    def _next_probe(self, now: float) -> Probe | None:
        share = self._interleave_share(now)
        if share > 0 and self._known_good and self.rng.random() < share:
            keys = list(self._known_good)
            address, port, proto = keys[self.rng.randrange(len(keys))]
            return self._probe(address, port, proto, self._known_good[(address, port, proto)],
                               None, INTERLEAVE)
        tactic = self._choose_tactic()
        if tactic in _OBSERVED_TACTICS:
            probe = self._observed_probe(tactic)
            if probe is not None or self.profile != "adaptive":
                return probe
            tactic = self._fallback_tactic()
        if tactic == "hitlist":
            pair = self._pop_hitlist()
            if pair is not None:
                address, exploit = pair
                return self._exploit_probe(address, exploit, tactic)
            tactic = self._fallback_tactic()
        target = self._pick_address(tactic)
        if target is None:
            return None
        return self._exploit_probe(target, self._choose_exploit(), tactic)

    def _choose_tactic(self) -> str:
        profile = self.profile
        if profile == "classic":
            return "uniform"
        if profile == "local-preference":
            return "local" if self.rng.random() < self.params["local_bias"] else "sequential"
        if profile in ("hitlist", "stealth"):
            return "hitlist" if self._has_hitlist() else self._fallback_tactic()
        if profile == "recon":
            return "recon"
        if profile == "mimic":
            return "mimic"
        if profile == "planner":
            return "planned"
        return self._bandit_choice(self._available_arms())

    def _available_arms(self) -> list[str]:
        """The adaptive brain's arms that have a move now, in ``TACTIC_ARMS`` order (scanning
        arms always do); asked in that order, since the planner's tie-break draws from the
        generator. Keeps the planned arm's pick for ``_observed_probe``."""
        knowledge = self.knowledge
        assert knowledge is not None
        done, infected = self._done, self.infected
        arms = list(_SCANNING_ARMS)
        if self._has_hitlist():
            arms.append("hitlist")
        if knowledge.recon_available(done, infected, 0.0):
            arms.append("recon")
        if self.mimicry.has_remaining(done, infected, self._mimic_in_flight):
            arms.append("mimic")
        self._planned_pick = knowledge.planner_pick(done, infected, (), self.rng,
                                                    credentials=False)
        if self._planned_pick is not None:
            arms.append("planned")
        return arms

    def _fallback_tactic(self) -> str:
        if self.profile == "hitlist":
            return str(self.params["fallback"])
        if self.profile == "adaptive":
            return self._bandit_choice(list(_SCANNING_ARMS))
        return "local"

    def _observed_probe(self, tactic: str) -> Probe | None:
        """A probe of an observation-driven tactic (recon, mimic, planned), or None when it has
        no move now (its profile then stays idle; the adaptive brain scans instead)."""
        if tactic == "mimic":
            return self._mimic_probe()
        knowledge = self.knowledge
        assert knowledge is not None
        if tactic == "recon":
            budget = self.params["guess_budget"] if self.profile == "recon" else 0.0
            pair = knowledge.recon_pick(self._done, self.infected, budget)
            return None if pair is None else self._exploit_probe(pair[0], pair[1], "recon")
        pick, self._planned_pick = self._planned_pick, None
        if pick is None:
            pick = knowledge.planner_pick(self._done, self.infected, self.view.trusts,
                                          self.rng, credentials=self.profile == "planner")
        if pick is not None:
            address, exploit, credential = pick
            knowledge.tried.add((address, exploit.key))
            # a held credential is the hit-list tactic (drivers label it valid-credentials)
            return self._exploit_probe(address, exploit, "hitlist" if credential else "planned")
        if self.profile == "planner" and self.params["explore"] == "local":
            for _ in range(8):  # discovery: its own subnet, never a host that showed defence
                target = self._pick_address("local")
                if target is not None and target not in knowledge.defended:
                    return self._exploit_probe(target, knowledge.by_prior()[0], "local")
        return None

    def _mimic_probe(self) -> Probe | None:
        """The next request its host's users would make, carrying an exploit for that peer's
        service when one is left to try there; otherwise no probe (the slot stays silent)."""
        mimicry = self.mimicry
        if self.profile == "mimic":
            target = mimicry.next_target(self.rng)
            exploit = mimicry.exploit_for(target, self._done, self.infected,
                                          self._mimic_in_flight)
        else:  # the adaptive brain's mimic arm: any benign peer with an exploit left
            remaining = mimicry.remaining(self._done, self.infected, self._mimic_in_flight)
            if not remaining:
                return None
            target, exploit = remaining[self.rng.randrange(len(remaining))]
        if exploit is None or target.address == self.view.address:
            return None
        self._mimic_in_flight.add((target.address, exploit.key))
        return self._exploit_probe(target.address, exploit, "mimic")

    def _choose_exploit(self) -> ExploitSpec:
        arsenal = self.view.arsenal
        if self.profile == "adaptive" and len(arsenal) > 1:
            key = self._bandit_choice([exploit.key for exploit in arsenal])
            return next(exploit for exploit in arsenal if exploit.key == key)
        return arsenal[self.rng.randrange(len(arsenal))]

    def _bandit_choice(self, arms: list[str]) -> str:
        rng = self.rng
        if rng.random() < self.params["epsilon"]:
            return arms[rng.randrange(len(arms))]
        values = self.values
        best = max([values[arm] for arm in arms])
        top = [arm for arm in arms if values[arm] >= best - 1e-9]
        return top[rng.randrange(len(top))]

    def _pick_address(self, tactic: str) -> str | None:
        for _ in range(8):  # skip ourselves and hosts we know we own
            if tactic == "uniform":
                address = self.space.at(self.rng.randrange(self.space.total))
            elif tactic == "sequential":
                address = self.space.at(self._sequential_index)
                self._sequential_index = (self._sequential_index + 1) % self.space.total
            else:  # local: sweep the own subnet upward from our own address
                address = self.local_space.at(self._local_index)
                self._local_index = (self._local_index + 1) % self.local_space.total
            if address != self.view.address and address not in self.infected:
                return address
        return None

    def _add_to_hitlist(self, address: str) -> None:
        if self.knowledge is not None and address not in self._trusts:
            self.knowledge.note_live(address)  # a peer or a host that answered: it exists
        if address in self._hitlisted or len(self._hitlisted) >= MEMORY:
            return
        self._hitlisted.add(address)
        for exploit, key in self._exploit_keys:
            self._hitlist.append((address, exploit, key))

    def _has_hitlist(self) -> bool:
        hitlist, infected, done = self._hitlist, self.infected, self._done
        while hitlist:
            address, _, key = hitlist[0]
            if address in infected or (address, key) in done:
                hitlist.popleft()
                continue
            return True
        return False

    def _pop_hitlist(self) -> tuple[str, ExploitSpec] | None:
        if not self._has_hitlist():
            return None
        address, exploit, _ = self._hitlist.popleft()
        return address, exploit

    def _exploit_probe(self, address: str, exploit: ExploitSpec, tactic: str) -> Probe:
        return self._probe(address, exploit.port, exploit.proto, exploit.service, exploit.vuln,
                           tactic, exploit.key)

    def _probe(self, address: str, port: int, proto: str, service: str, vuln: str | None,
               tactic: str, exploit_key: str = "") -> Probe:
        self._seq += 1
        if self.knowledge is not None:
            self.knowledge.planned(self._seq, address)
        return Probe(self._seq, address, port, proto, service, vuln, tactic, self.encoding,
                     exploit_key)

    # ---- pace -----------------------------------------------------------------------------
    def _gap(self) -> float:
        if self.profile == "mimic":  # its users' timing: exponential gaps (benign.user_gaps),
            # never closer than the agent's rate cap (1.5 x rate) lets through: a capped probe
            # would leave at the cap's time, not the users'
            return max(self.rng.expovariate(self.current_rate),
                       _CAP_MARGIN / (1.5 * self.params["rate"]))
        base = 1.0 / self.current_rate
        gap: float = base * (1.0 + self.params["jitter"] * (2.0 * self.rng.random() - 1.0))
        if self.profile == "stealth":
            gap = max(gap, STEALTH_MIN_GAP)
        return max(gap, MIN_GAP)

    def _interleave_share(self, now: float) -> float:
        if self.profile == "stealth":
            return float(self.params["interleave"])
        if self.profile == "adaptive":
            if not self._signal_times:  # no defence signal yet: nothing to hide from
                return min(float(self.params["interleave_max"]), 0.0)
            recent = sum(1 for t in self._signal_times if now - t <= 30.0)
            return min(float(self.params["interleave_max"]), 0.1 * recent)
        return 0.0

    # ---- learning -------------------------------------------------------------------------
    def _remember_answer(self, address: str, when: float) -> None:
        self._answered[address] = when
        self._answered.move_to_end(address)
        while len(self._answered) > MEMORY:
            self._answered.popitem(last=False)
        if self.profile in ("hitlist", "stealth", "adaptive"):
            self._add_to_hitlist(address)

    def _learn(self, probe: Probe, outcome: str, signals: list[str], when: float) -> None:
        if probe.tactic != INTERLEAVE:
            reward = _REWARD.get(outcome, 0.0) + (_VANISH_PENALTY if "vanished" in signals
                                                  else 0.0)
            rate = self.params["learning_rate"]
            for arm in (probe.tactic, probe.exploit_key):
                if arm in self.values:
                    self.values[arm] += rate * (reward - self.values[arm])
        if outcome == "infected":
            self.rate_multiplier = min(1.0, self.rate_multiplier * 1.25)
        for _ in signals:
            self._signal_times.append(when)
        if "vanished" in signals:
            # a peer was taken away: someone is watching. Go quiet, slow down, hide the payload.
            self._back_off(when)
            self.dormant_until = max(self.dormant_until, when + self.params["dormancy_s"])
            self.next_slot_at = max(self.next_slot_at, self.dormant_until)
            self.encoding = "encoded"
        elif signals:
            recent = sum(1 for t in self._signal_times if when - t <= 10.0)
            if recent >= 3 and when - self._last_backoff >= 5.0:
                self._back_off(when)

    def _back_off(self, when: float) -> None:
        self.rate_multiplier = max(self.rate_multiplier * self.params["backoff"],
                                   self.params["min_rate"] / self.params["rate"])
        self._last_backoff = when


def _clamp(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return max(-100.0, min(100.0, float(value)))
