"""What one worm has observed around its own host, and the three tactics that read only that.

Owns: :class:`Knowledge`, the attack graph a worm builds from its own host's observations --
hosts known to be live (peers that connected to it, neighbours in its host's ARP table, hosts
that answered it, hosts its host's users contact, hosts whose credentials it holds), services
known open or closed on them, hosts that gave a defence signal, and the worm's own ledger of
first contacts (the walk a TRW detector keeps about it) -- and the target choices built on it:
``recon_pick`` (known-live hosts on known-open services only), ``planner_pick`` (value-directed
pivots, trusted credentials first) and :class:`MimicSchedule` (its host's benign users' peers,
services, rates and timing); and ``address_value``, the dotted-quad parser the brain shares.
Must not: touch sockets, files or clocks (times are arguments), know anything its host did not
observe (which hosts are vulnerable, what a host's services are before one answered), or draw
random numbers other than from the generator it is handed (the brain's, for determinism).
``testbed.agent.brain`` drives it; the drivers (runtime, simulator) feed the brain, never this.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from testbed.agent.config import BackupJob, BenignTarget, ExploitSpec, UserJob

__all__ = ["SERVICE_VALUE", "TRW_ALARM_LEAD", "Knowledge", "MimicSchedule", "address_value"]

CONNECTED = ("infected", "already", "not-vulnerable", "rejected", "ok")
"""Outcomes that prove a service listens (a connection was made)."""

TRW_ALARM_LEAD = 4
"""TRW with its paper's defaults (theta0 0.8, theta1 0.2, 99:1) multiplies its likelihood ratio
by 4 per failed first contact and by 1/4 per successful one: it alarms when failures lead
successes by 4 and restarts its walk (accepts the host as benign) when successes lead by 4."""

SERVICE_VALUE: dict[str, float] = {
    "sql": 5.0, "modbus": 4.0, "smb": 3.0, "rdp": 3.0, "ssh": 3.0, "ftp": 2.0, "vpn": 2.0,
    "http": 1.5, "mqtt": 1.5, "generic": 1.0, "rtsp": 0.5, "ipp": 0.5, "telnet": 0.5,
}
"""How valuable a host looks from a service it was seen running (what its banner names): a
database or a controller more than a file or remote-desktop server, more than a printer."""
_TRUSTED_BONUS = 2.0  # a host whose credentials are held is an administered server
_OTHER_SEGMENT_BONUS = 0.5  # a foothold in another segment widens what the worm can reach
_PIVOT_SHARE = 0.5  # share of a blocked valuable host's value credited to its segment's hosts
_COST_CREDENTIAL, _COST_OPEN, _COST_ANSWERED, _COST_LIVE = 0.5, 1.0, 2.0, 3.0
_NO_TRUSTS: frozenset[str] = frozenset()
_SEGMENT_MEMO = 1 << 17  # addresses whose segment is remembered, per topology (shared by worms)


class Knowledge:
    """The worm's observations of its surroundings, bounded by ``memory`` hosts."""

    def __init__(self, address: str, arsenal: tuple[ExploitSpec, ...], cidrs: tuple[str, ...],
                 segment_cidr: str, *, memory: int,
                 own_services: tuple[tuple[int, str], ...] = ()) -> None:
        self.address = address
        self.arsenal = arsenal
        self.memory = memory
        self.live: OrderedDict[str, None] = OrderedDict()
        self.open: dict[str, dict[tuple[int, str], str]] = {}
        self.closed: set[tuple[str, int, str]] = set()
        self.contacted: OrderedDict[str, None] = OrderedDict()  # sent a first packet to
        self.answered: set[str] = set()  # a connection to it succeeded: no more first contacts
        self.defended: set[str] = set()  # gave a defence signal: the planner keeps away
        self.service_seen: Counter[tuple[int, str]] = Counter()  # open (port, proto), per host
        self._seen_total = 0  # sum(service_seen.values())
        self.tried: set[tuple[str, str]] = set()  # (address, exploit key) recon/planner sent
        self.first_in_flight: set[int] = set()  # probe seqs that were first contacts
        self.first_lead = 0  # failures minus successes of its first contacts (TRW's walk)
        self.first_failures = 0
        self.first_successes = 0
        # (host, exploit, exploit.key): recon's queues of moves (the key is formatted once)
        self._known_open: deque[tuple[str, ExploitSpec, str]] = deque()
        self._second: deque[tuple[str, ExploitSpec, str]] = deque()
        self._unexplored: deque[str] = deque()
        self._blocked_value: dict[str, float] = {}  # segment prefix -> best value out of reach
        self._segment_key = _segment_keys(tuple(cidrs))
        self._own_segment = segment_cidr
        self._own_services = frozenset(own_services)  # hosts near it tend to run what it runs
        self._endpoints = tuple((exploit, exploit.key, (exploit.port, exploit.proto))
                                for exploit in arsenal)
        # The planner's search is pruned and cached, exactly: whether a (host, exploit) move is
        # still possible only ever goes from yes to no (hosts get infected or defended, moves
        # get tried, settled or refused: the caller's ``done`` and ``infected`` only grow), so
        # an exhausted, infected or defended host leaves the walk for good; and a move's
        # score changes only when ``version`` does (a new observation).
        self.version = 0
        self._exhausted: set[str] = set()
        # ``live`` less the hosts the search can no longer choose (exhausted, infected,
        # defended), in ``live``'s order: what the search walks
        self._candidates: dict[str, None] = {}
        # value(address, trusted) as last computed; dropped when its inputs change (the host's
        # open services; any defence signal, which moves ``defended`` and the pivot values)
        self._values: dict[tuple[str, bool], float] = {}
        self._last_pick: tuple[int, bool, tuple[str, ...],
                               tuple[str, ExploitSpec, bool] | None] | None = None

    # ---- what the host observed ------------------------------------------------------------
    def note_live(self, address: str) -> None:
        """A host known to exist (the caller checked it is in the topology and not ourselves)."""
        if address in self.live:
            return
        self.version += 1
        self.live[address] = None
        if address not in self._exhausted:
            self._candidates[address] = None
        if len(self.live) > self.memory:
            forgotten, _ = self.live.popitem(last=False)
            self._candidates.pop(forgotten, None)
        if address not in self.contacted:
            self._unexplored.append(address)

    def note_open(self, address: str, port: int, proto: str, service: str) -> None:
        """A service known to listen: its host answered on it, or its host's users use it."""
        self.note_live(address)
        services = self.open.setdefault(address, {})
        if (port, proto) in services:
            return
        self.version += 1
        services[(port, proto)] = service
        self._values.pop((address, False), None)
        self._values.pop((address, True), None)
        self.service_seen[(port, proto)] += 1
        self._seen_total += 1
        for exploit, key, endpoint in self._endpoints:
            if endpoint == (port, proto):
                self._known_open.append((address, exploit, key))

    def planned(self, seq: int, address: str) -> None:
        """A probe is about to leave: is it the first packet ever to ``address``?"""
        if address in self.contacted:
            return
        self.contacted[address] = None
        if len(self.contacted) > 16 * self.memory:
            self.contacted.popitem(last=False)
        self.first_in_flight.add(seq)

    def observed(self, seq: int, address: str, port: int, proto: str, service: str,
                 outcome: str, signals: list[str]) -> None:
        """One probe's outcome (``signals``: the defence signals it revealed)."""
        connected = outcome in CONNECTED
        if seq in self.first_in_flight:
            self.first_in_flight.discard(seq)
            if connected:
                self.first_successes += 1
                self.first_lead -= 1
                if self.first_lead <= -TRW_ALARM_LEAD:
                    self.first_lead = 0  # TRW accepts the host as benign and restarts
            else:
                self.first_failures += 1
                self.first_lead += 1
        if connected:
            self.note_open(address, port, proto, service)
            if address not in self.answered:
                self.version += 1
                self.answered.add(address)
                services = self.open[address]
                for exploit, key, endpoint in self._endpoints:
                    if endpoint not in services:  # its other services: no first contacts now
                        self._second.append((address, exploit, key))
        elif outcome == "refused":
            self.note_live(address)
            self.closed.add((address, port, proto))
        if signals:
            self.version += 1
            self._values.clear()
            self.defended.add(address)
            value = self.value(address, trusted=False)
            segment = self._segment_key(address)
            if segment is not None and value > self._blocked_value.get(segment, 0.0):
                self._blocked_value[segment] = value

    # ---- recon: only known-live hosts, first contacts only on known-open services -----------
    def recon_pick(self, done: set[tuple[str, str]], infected: set[str],
                   guess_budget: float) -> tuple[str, ExploitSpec] | None:
        """The next (host, exploit): a known-open service first; then the other services of a
        host that already answered (no longer a first contact); then, only while its own TRW
        walk stays ``guess_budget`` below the alarm counting every first contact in flight as
        failed, a live host's most commonly seen service. None: nothing it may do now."""
        for queue in (self._known_open, self._second):
            while queue:
                address, exploit, key = queue.popleft()
                if self._usable(address, exploit, done, infected, key):
                    self.tried.add((address, key))
                    return address, exploit
        if not self.may_guess(guess_budget):
            return None
        while self._unexplored:
            address = self._unexplored.popleft()
            if address in self.contacted or address in infected or address not in self.live:
                continue
            for exploit in self.by_prior():
                if self._usable(address, exploit, done, infected):
                    self.tried.add((address, exploit.key))
                    return address, exploit
        return None

    def recon_available(self, done: set[tuple[str, str]], infected: set[str],
                        guess_budget: float) -> bool:
        """Whether ``recon_pick`` has something (drops stale queue heads, picks nothing)."""
        for queue in (self._known_open, self._second):
            while queue:
                address, exploit, key = queue[0]
                if self._usable(address, exploit, done, infected, key):
                    return True
                queue.popleft()
        if not self.may_guess(guess_budget):
            return False
        while self._unexplored and (self._unexplored[0] in self.contacted
                                    or self._unexplored[0] in infected
                                    or self._unexplored[0] not in self.live):
            self._unexplored.popleft()
        return bool(self._unexplored)

    def may_guess(self, guess_budget: float) -> bool:
        """A speculative first contact keeps TRW's walk at least ``4 - guess_budget`` below its
        alarm even if it and every first contact in flight fail (budget 0: never guess)."""
        if guess_budget <= 0:
            return False
        worst = self.first_lead + len(self.first_in_flight) + 1
        return worst <= min(guess_budget, TRW_ALARM_LEAD - 1)

    def by_prior(self) -> list[ExploitSpec]:
        """The arsenal, services most often seen open first, then those its own host runs
        (one golden image for a segment is the common case); arsenal order on ties."""
        seen, own = self.service_seen, self._own_services
        return sorted(self.arsenal, key=lambda e: (-seen.get((e.port, e.proto), 0),
                                                   (e.port, e.proto) not in own))

    def _usable(self, address: str, exploit: ExploitSpec, done: set[tuple[str, str]],
                infected: set[str], key: str | None = None) -> bool:
        """Whether ``exploit`` (whose ``key`` the caller may already hold) may still go to
        ``address``."""
        move = (address, exploit.key if key is None else key)
        return not (address in infected or move in done or move in self.tried
                    or (address, exploit.port, exploit.proto) in self.closed
                    or address in self.defended)

    # ---- planner: value-directed pivots over the observed graph ------------------------------
    def value(self, address: str, *, trusted: bool) -> float:
        """How valuable ``address`` looks: its most valuable observed service, a credential
        held for it, a foothold in another segment, and the value of a host out of reach from
        here in its segment (a pivot toward it)."""
        services = self.open.get(address, {})
        value = 1.0 + max((SERVICE_VALUE.get(kind, 1.0) for kind in services.values()),
                          default=0.0)
        if trusted:
            value += _TRUSTED_BONUS
        key = self._segment_key(address)
        if key is not None:
            if key != self._own_segment:
                value += _OTHER_SEGMENT_BONUS
            if address not in self.defended:
                value += _PIVOT_SHARE * self._blocked_value.get(key, 0.0)
        return value

    def planner_pick(self, done: set[tuple[str, str]], infected: set[str],
                     trusts: tuple[str, ...], rng: Random, *, credentials: bool
                     ) -> tuple[str, ExploitSpec, bool] | None:
        """The best (host, exploit, uses a credential) by value / cost over the graph: a held
        credential (cost 0.5) before an exploit on a service seen open (1), on a host that
        answered (2), on a live host (3, less for a commonly seen service). Hosts that gave a
        defence signal are never chosen. Ties: ``rng``. None: the graph holds no move. The
        caller marks the pick ``tried`` when it sends it."""
        last = self._last_pick
        version = self.version
        if last is not None and last[0] == version and last[1] == credentials and \
                last[2] == trusts:
            pick = last[3]
            if pick is None or self._usable(pick[0], pick[1], done, infected):
                return pick
        if not trusts and not self._candidates:  # nothing to walk: no move, no tie to break
            self._last_pick = (version, credentials, trusts, None)
            return None
        trusted = set(trusts) if trusts else _NO_TRUSTS
        seen = self.service_seen
        total_seen = self._seen_total or 1
        best_score = 0.0
        best: list[tuple[str, ExploitSpec, bool]] = []
        tried, closed, exhausted = self.tried, self.closed, self._exhausted
        candidates, values = self._candidates, self._values
        # the live hosts not yet exhausted, in live order (exhausted ones would be skipped)
        for address in (*trusts, *candidates) if trusts else tuple(candidates):
            if address in exhausted or address == self.address:
                continue
            if address in infected or address in self.defended:
                # skipped for good (both sets only grow): no longer walked
                candidates.pop(address, None)
                continue
            is_trusted = address in trusted
            value = -1.0  # looked up once a move is possible (most hosts here have none)
            services = self.open.get(address, {})
            possible = False
            for exploit, key, endpoint in self._endpoints:
                if (address, key) in done or (address, key) in tried or \
                        (address, *endpoint) in closed:
                    continue
                if not possible:
                    possible = True
                    value = values.get((address, is_trusted), -1.0)
                    if value < 0:
                        if len(values) >= 4 * self.memory:
                            values.clear()
                        value = values[(address, is_trusted)] = self.value(address,
                                                                           trusted=is_trusted)
                credential = credentials and is_trusted
                if credential:
                    cost = _COST_CREDENTIAL
                elif endpoint in services:
                    cost = _COST_OPEN
                else:
                    base = _COST_ANSWERED if address in self.answered else _COST_LIVE
                    cost = base - seen.get(endpoint, 0) / total_seen
                score = value / cost
                if score > best_score + 1e-9:
                    best_score, best = score, [(address, exploit, credential)]
                elif score >= best_score - 1e-9:
                    best.append((address, exploit, credential))
            if not possible:
                exhausted.add(address)
                candidates.pop(address, None)
        pick = (None if not best else
                best[rng.randrange(len(best))] if len(best) > 1 else best[0])
        self._last_pick = (version, credentials, trusts, pick)
        return pick


@dataclass(frozen=True)
class _Job:
    rate: float  # requests per second
    targets: tuple[BenignTarget, ...]
    round_robin: bool  # a backup round visits every target in turn; a user picks at random


class MimicSchedule:
    """Its host's benign users (and backup round): which peers, on which services, how often.

    ``rate`` is their combined request rate; a mimicking worm draws exponential gaps at no more
    than that and picks each request's job in proportion to the job's rate and the target the
    way the job does, so its traffic has the users' peers, services, rate and timing."""

    def __init__(self, users: tuple[UserJob, ...], backup: BackupJob | None,
                 arsenal: tuple[ExploitSpec, ...]) -> None:
        jobs = [_Job(user.per_minute / 60.0, user.targets, False) for user in users
                if user.targets]
        if backup is not None and backup.targets:
            jobs.append(_Job(len(backup.targets) / backup.every_s, backup.targets, True))
        self.jobs = tuple(jobs)
        self.rate = sum(job.rate for job in jobs)
        self._cursor = [0] * len(jobs)
        self.pairs: tuple[tuple[BenignTarget, ExploitSpec], ...] = tuple(
            dict.fromkeys((target, exploit) for job in jobs for target in job.targets
                          for exploit in arsenal if _serves(target, exploit)))

    @property
    def targets(self) -> tuple[BenignTarget, ...]:
        return tuple(dict.fromkeys(t for job in self.jobs for t in job.targets))

    def next_target(self, rng: Random) -> BenignTarget:
        """The peer and service of the next request, as the users would choose it."""
        draw = rng.random() * self.rate
        index = len(self.jobs) - 1
        for position, job in enumerate(self.jobs):
            if draw < job.rate:
                index = position
                break
            draw -= job.rate
        job = self.jobs[index]
        if job.round_robin:
            target = job.targets[self._cursor[index] % len(job.targets)]
            self._cursor[index] += 1
            return target
        return job.targets[rng.randrange(len(job.targets))]

    def exploit_for(self, target: BenignTarget, done: set[tuple[str, str]],
                    infected: set[str], in_flight: set[tuple[str, str]]
                    ) -> ExploitSpec | None:
        """An exploit for ``target``'s own service not yet settled there, else None."""
        if target.address in infected:
            return None
        for candidate, exploit in self.pairs:
            key = (target.address, exploit.key)
            if candidate == target and key not in done and key not in in_flight:
                return exploit
        return None

    def remaining(self, done: set[tuple[str, str]], infected: set[str],
                  in_flight: set[tuple[str, str]]) -> list[tuple[BenignTarget, ExploitSpec]]:
        return [(t, e) for t, e in self.pairs if _open_pair(t, e, done, infected, in_flight)]

    def has_remaining(self, done: set[tuple[str, str]], infected: set[str],
                      in_flight: set[tuple[str, str]]) -> bool:
        """``bool(remaining(...))`` without building the list."""
        return bool(self.pairs) and any(_open_pair(t, e, done, infected, in_flight)
                                        for t, e in self.pairs)


def _open_pair(target: BenignTarget, exploit: ExploitSpec, done: set[tuple[str, str]],
               infected: set[str], in_flight: set[tuple[str, str]]) -> bool:
    """Whether ``exploit`` on ``target`` is still to try: not infected, settled or in flight."""
    key = (target.address, exploit.key)
    return target.address not in infected and key not in done and key not in in_flight


def _serves(target: BenignTarget, exploit: ExploitSpec) -> bool:
    return (target.port, target.proto, target.service) == (exploit.port, exploit.proto,
                                                           exploit.service)


def address_value(address: str) -> int:
    """``int(IPv4Address(address))``; a plain dotted quad without ``ipaddress`` (anything else
    goes through ``ipaddress``, which accepts it or raises ``ValueError`` as before)."""
    parts = address.split(".")
    if len(parts) == 4:
        value = 0
        for part in parts:
            if not (part.isascii() and part.isdigit()) or len(part) > 3 or \
                    (len(part) > 1 and part[0] == "0"):
                break
            octet = int(part)
            if octet > 255:
                break
            value = value << 8 | octet
        else:
            return value
    return int(ipaddress.IPv4Address(address))  # the reference parser: accepts or raises


@functools.lru_cache(maxsize=16)
def _segment_keys(cidrs: tuple[str, ...]) -> Callable[[str], str | None]:
    """address -> the topology CIDR holding it (None outside). One function and one memo per
    distinct ``cidrs``, shared by every worm of a topology: the answer depends on nothing else."""
    networks = [(int(n.network_address), int(n.netmask), str(n))
                for n in (ipaddress.IPv4Network(c) for c in cidrs)]

    known: dict[str, str | None] = {}

    def key(address: str) -> str | None:
        try:
            return known[address]
        except KeyError:
            pass
        found = None
        try:
            value: int | None = address_value(address)
        except ValueError:
            value = None
        if value is not None:
            for network, mask, text in networks:
                if value & mask == network:
                    found = text
                    break
        if len(known) < _SEGMENT_MEMO:
            known[address] = found
        return found

    return key
