"""The plug-in API: connection events in, alerts out, and a conformance checker.

This module is the whole public surface a detector plug-in may import (its ``__all__``):
``from detectors.base import Detector, Alert, ConnEvent, SensorContext, check_detector``, plus the
event-kind constants. A plug-in imports nothing else from the testbed but neutral modules
(``testbed.errors``, ``testbed.wire``, ``testbed.taps``, ``testbed.records``, ``testbed.eve``);
the engine runs plug-ins through ``testbed.detection``. Import contracts in pyproject.toml
(``lint-imports``, run by ``make test``) enforce both.

Owns: ``ConnEvent`` (what a sensor on the virtual network saw), ``Alert`` (what a detector
concluded, convertible to a Suricata EVE ``alert`` record), ``SensorContext`` (what a
network operator knows: the address inventory, the topology's networks, decoys, where the taps
are), the ``Detector`` base class every plug-in derives from, and ``check_detector(cls)``, run in
the tests over every registered detector (as Gymnasium's ``check_env``).

Must not touch: ground truth. Detectors never read ``events.jsonl`` (only ``testbed.truth`` does,
for the scorer and the report) nor import the agent runtime; the worm's public wire marker, which
a real defender would know from a published signature, is in the neutral ``testbed.wire``.

Event kinds (``ConnEvent.kind``). Raw, one per captured packet:
    ``syn`` (SYN without ACK), ``syn-ack``, ``rst``, ``data`` (a TCP segment with payload),
    ``udp``, ``icmp-echo``, ``icmp-echo-reply``, ``icmp-unreachable``, ``icmp-prohibited``,
    ``arp-request``, ``arp-reply``.
    ICMP errors are reported for the flow they quote: ``src``/``dst``/ports/``proto`` are those of
    the original packet, and ``outcome`` says what the error means (``refused`` for port
    unreachable, ``unreachable``, ``prohibited``).
Derived by the sensor's contact tracker:
    ``first-contact``: ``src`` began its first ever contact with ``dst`` (TCP SYN, UDP, ICMP echo
    or an ARP request for ``dst`` on a shared segment).
    ``outcome``: a connection attempt (``src`` -> ``dst``:``dport``/``proto``) was resolved as
    ``success``, ``refused``, ``unreachable``, ``prohibited`` or ``unanswered``; ``first`` tells
    whether it was the source's first contact with that destination (what TRW counts). An ARP
    request that got no reply is an ``unanswered`` attempt with ``proto == "ARP"``.

Times: ``ConnEvent.time`` is the sensor's clock: ``time.monotonic()`` live, the capture's epoch
timestamps offline. Detectors only ever compare times with each other.
"""

from __future__ import annotations

import ipaddress
import math
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from testbed.errors import DetectorError
from testbed.eve import DEFAULT_SENSOR, alert_record

if TYPE_CHECKING:
    from testbed.model.topology import Topology
    from testbed.records import AlertRecord
    from testbed.taps import Tap

__all__ = [
    "DERIVED_KINDS",
    "KINDS",
    "OUTCOMES",
    "RAW_KINDS",
    "Alert",
    "ConnEvent",
    "Detector",
    "SensorContext",
    "check_detector",
    "failed",
]

RAW_KINDS = ("syn", "syn-ack", "rst", "data", "udp", "icmp-echo", "icmp-echo-reply",
             "icmp-unreachable", "icmp-prohibited", "arp-request", "arp-reply")
DERIVED_KINDS = ("first-contact", "outcome")
KINDS = RAW_KINDS + DERIVED_KINDS
OUTCOMES = ("success", "refused", "unreachable", "prohibited", "unanswered")
ATTEMPT_KINDS = frozenset({"syn", "udp", "icmp-echo", "arp-request"})
"""Raw kinds that may open a connection (a UDP packet may also be a reply: see the tracker)."""


def failed(outcome: str) -> bool:
    """Whether a contact outcome counts as a failure (everything but ``success``)."""
    return outcome != "success"


class ConnEvent(NamedTuple):
    """One thing a sensor saw on the wire (see the module docstring for the kinds).

    Immutable and without a per-instance dict, like a frozen slotted dataclass, but a
    ``NamedTuple`` because the sensor builds one per packet: a frozen dataclass's ``__init__``
    costs about ten times as much (benchmarks/sensor.py). Copy with ``event._replace(...)``.
    """

    time: float
    kind: str
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    proto: str = "TCP"  # "TCP", "UDP", "ICMP", "ARP"
    outcome: str = ""  # for "outcome" events and ICMP errors
    first: bool = False  # for "outcome" events: the source's first contact with dst
    payload: bytes = b""  # first bytes of a TCP segment's or UDP datagram's payload
    tap: str = ""  # the tap that saw it first ("" when derived or offline)


@dataclass(frozen=True, slots=True)
class Alert:
    """A detector's conclusion about one source. ``to_record()`` gives the EVE alert record."""

    time: float  # the sensor's clock (see ConnEvent.time)
    detector: str
    src_ip: str
    reason: str  # one line; becomes EVE ``alert.signature``
    severity: int = 1  # 1 high .. 3 low, as in Suricata
    host: str | None = None  # the source's host name, if the inventory knows the address
    dest_ip: str = ""
    dest_port: int = 0
    src_port: int = 0
    proto: str = ""
    signature_id: int = 0
    category: str = "Detection of a Network Scan"
    evidence: Mapping[str, Any] = field(default_factory=dict)
    in_iface: str = ""  # the tap that saw the triggering packet ("" : unknown)

    def to_record(self, *, clock_offset: float | None = None, sensor: str = DEFAULT_SENSOR,
                  in_iface: str = "") -> AlertRecord:
        """The Suricata EVE ``alert`` record (``testbed.eve``: it validates against Suricata's
        schema; the detector, the run's clock, the source's host name and the evidence are under
        ``alert.metadata``). ``sensor`` becomes EVE ``host``; ``in_iface`` is used when the alert
        names no tap.

        ``clock_offset`` maps the alert's clock to epoch seconds; by default the live offset
        ``time.time() - time.monotonic()`` (offline pipelines pass 0.0: their clock is epoch).
        """
        if clock_offset is None:
            clock_offset = _time.time() - _time.monotonic()
        record = alert_record(
            epoch=self.time + clock_offset, mono=self.time, detector=self.detector,
            src_ip=self.src_ip, src_port=self.src_port, dest_ip=self.dest_ip,
            dest_port=self.dest_port, proto=self.proto, signature=self.reason,
            signature_id=self.signature_id, category=self.category, severity=self.severity,
            src_host=self.host, evidence=self.evidence, sensor=sensor,
            in_iface=self.in_iface or in_iface)
        return record  # type: ignore[return-value]


@dataclass(frozen=True)
class SensorContext:
    """What a network operator knows, and nothing more: never the ground truth.

    ``inventory`` maps each used address to its host name (routers included, named
    ``router:<name>``); ``infrastructure`` holds router addresses (their ARP and forwarding noise
    is not a host's behaviour); ``cidrs`` are the topology's networks; ``decoys`` are addresses
    no host uses, planted to catch scanners. ``taps``, ``pcap`` and ``workdir`` tell detectors
    that run their own capture (Suricata) where to listen or what to read, and where to write.
    """

    inventory: Mapping[str, str] = field(default_factory=dict)
    cidrs: tuple[ipaddress.IPv4Network, ...] = ()
    decoys: frozenset[str] = frozenset()
    infrastructure: frozenset[str] = frozenset()
    taps: tuple[Tap, ...] = ()
    pcap: Path | None = None
    workdir: Path | None = None
    _inside_cache: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_topology(cls, topology: Topology, *, taps: Iterable[Tap] = (),
                      pcap: Path | None = None, workdir: Path | None = None) -> SensorContext:
        inventory = {str(host.ip): name for name, host in topology.hosts.items()}
        infrastructure: set[str] = set()
        for router in topology.routers.values():
            for address in router.interfaces.values():
                inventory[str(address)] = f"router:{router.name}"
                infrastructure.add(str(address))
        return cls(inventory=inventory, cidrs=tuple(topology.cidrs),
                   decoys=frozenset(str(d) for d in topology.decoys),
                   infrastructure=frozenset(infrastructure), taps=tuple(taps), pcap=pcap,
                   workdir=workdir)

    def host_of(self, address: str) -> str | None:
        """The host (or ``router:NAME``) using ``address``, if the inventory knows it."""
        return self.inventory.get(address)

    def inside(self, address: str) -> bool:
        """Whether ``address`` lies in one of the topology's networks (False with no CIDRs)."""
        known = self._inside_cache.get(address)
        if known is None:
            try:
                parsed = ipaddress.IPv4Address(address)
            except ValueError:
                known = False
            else:
                known = any(parsed in network for network in self.cidrs)
            if len(self._inside_cache) < 1_000_000:
                self._inside_cache[address] = known
        return known

    def is_special(self, address: str) -> bool:
        """Network or broadcast address of one of the topology's networks."""
        parsed = ipaddress.IPv4Address(address)
        return any(parsed in (n.network_address, n.broadcast_address) for n in self.cidrs)


class Detector:
    """Base class of every detector plug-in.

    Subclasses set ``NAME`` (the registry name), ``PARAMETERS`` (literature defaults, JSON
    values), ``REFERENCES`` (where the algorithm and its defaults come from), ``KINDS`` (the event
    kinds ``observe`` cares about: the pipeline sends only those), and override ``reset``,
    ``observe``, and where useful ``tick`` and ``close``. Parameters are read from
    ``self.params``; an unknown parameter or a value of the wrong type is a ``DetectorError``.
    """

    NAME: ClassVar[str] = ""
    PARAMETERS: ClassVar[dict[str, Any]] = {}
    REFERENCES: ClassVar[tuple[str, ...]] = ()
    KINDS: ClassVar[frozenset[str]] = frozenset(KINDS)
    SIGNATURE_ID: ClassVar[int] = 0
    SEVERITY: ClassVar[int] = 1
    CATEGORY: ClassVar[str] = "Detection of a Network Scan"

    def __init__(self, context: SensorContext | None = None, **params: Any) -> None:
        self.context = context if context is not None else SensorContext()
        self.params: dict[str, Any] = {**self.PARAMETERS, **_checked(type(self), params)}
        self.seed = 0
        self.reset(0)

    # ---- the contract ----------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Forget everything observed; ``seed`` drives any randomness (most detectors have none)."""
        self.seed = seed

    def observe(self, event: ConnEvent) -> list[Alert]:
        """Take one event; return the alerts it triggers (usually none)."""
        return []

    def tick(self, now: float) -> list[Alert]:
        """The clock advanced to ``now`` with no event: time-based decisions happen here."""
        return []

    def close(self) -> list[Alert]:
        """No more events: return the alerts still pending and release resources."""
        return []

    # ---- helpers ---------------------------------------------------------------------------
    def make_alert(self, time: float, src: str, reason: str, *, severity: int | None = None,
                   evidence: Mapping[str, Any] | None = None, dest_ip: str = "",
                   dest_port: int = 0, src_port: int = 0, proto: str = "") -> Alert:
        return Alert(time=time, detector=self.NAME, src_ip=src, reason=reason,
                     severity=self.SEVERITY if severity is None else severity,
                     host=self.context.host_of(src), dest_ip=dest_ip, dest_port=dest_port,
                     src_port=src_port, proto=proto, signature_id=self.SIGNATURE_ID,
                     category=self.CATEGORY, evidence=dict(evidence or {}))

    def require(self, condition: bool, message: str) -> None:
        """Refuse a parameter combination with a clear ``DetectorError``."""
        if not condition:
            raise DetectorError(f"detector {self.NAME!r}: {message}")

    def is_infrastructure(self, address: str) -> bool:
        return address in self.context.infrastructure


def _checked(cls: type[Detector], params: Mapping[str, Any]) -> dict[str, Any]:
    known = cls.PARAMETERS
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if key not in known:
            raise DetectorError(f"detector {cls.NAME!r} has no parameter {key!r}; its "
                                f"parameters: {', '.join(sorted(known)) or '(none)'}")
        default = known[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
                value)
            if ok and isinstance(default, int) and not isinstance(value, int):
                ok = float(value).is_integer()
                value = int(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, list | tuple):
            ok = isinstance(value, list | tuple)
        else:
            ok = True
        if not ok:
            raise DetectorError(f"detector {cls.NAME!r}: parameter {key!r} must be like its "
                                f"default {default!r}, got {value!r}")
        checked[key] = value
    return checked


# ---- conformance checker ---------------------------------------------------------------------

def _probe_events(t0: float = 1000.0) -> list[ConnEvent]:
    """A small, varied event stream: a scanner failing everywhere, a client succeeding."""
    events: list[ConnEvent] = []
    t = t0
    for i in range(40):
        dst = f"10.0.0.{100 + i}"
        events.append(ConnEvent(t, "first-contact", "10.0.0.66", dst, 40000, 445))
        events.append(ConnEvent(t, "syn", "10.0.0.66", dst, 40000, 445))
        events.append(ConnEvent(t + 0.01, "rst", dst, "10.0.0.66", 445, 40000))
        events.append(ConnEvent(t + 0.01, "outcome", "10.0.0.66", dst, 40000, 445,
                                outcome="refused", first=True))
        events.append(ConnEvent(t + 0.02, "data", "10.0.0.66", dst, 40000, 445,
                                payload=b"MOCKWORM1-PAYLOAD MOCK-SMB-1 ..."))
        t += 0.1
        events.append(ConnEvent(t, "arp-request", "10.0.0.5", f"10.0.0.{10 + i % 3}", proto="ARP"))
        events.append(ConnEvent(t, "outcome", "10.0.0.5", "10.0.0.10", 50000, 80,
                                outcome="success", first=i == 0))
    return events


def check_detector(cls: type[Detector], *, context: SensorContext | None = None) -> None:
    """Check that ``cls`` honours the detector contract; raise ``DetectorError`` if not.

    Checks: class attributes (NAME, documented JSON-able PARAMETERS, REFERENCES, a docstring
    naming its defaults), construction with defaults, unknown parameters refused, every method
    returning lists of well-formed ``Alert`` objects convertible to EVE records, and determinism
    (reset(seed) + the same events -> the same alerts). That plug-ins never reach ground truth is
    an import contract (pyproject.toml, ``lint-imports``), not a check on a class.
    """
    import inspect
    import json

    def fail(message: str) -> None:
        raise DetectorError(f"detector {cls.__name__}: {message}")

    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        fail("must subclass detectors.base.Detector")
    if not cls.NAME or not isinstance(cls.NAME, str):
        fail("NAME must be a non-empty string (its registry name)")
    if not isinstance(cls.PARAMETERS, dict):
        fail("PARAMETERS must be a dict of default parameters")
    try:
        json.dumps(cls.PARAMETERS)
    except (TypeError, ValueError) as err:
        fail(f"PARAMETERS must be JSON values: {err}")
    if not cls.REFERENCES:
        fail("REFERENCES must name where the algorithm and its defaults come from")
    doc = inspect.getdoc(cls) or ""
    for key in cls.PARAMETERS:
        if key not in doc:
            fail(f"docstring must document parameter {key!r}")
    if not set(cls.KINDS) <= set(KINDS):
        fail(f"KINDS has unknown kinds: {sorted(set(cls.KINDS) - set(KINDS))}")
    try:
        cls(context, no_such_parameter_xyz=1)
    except DetectorError:
        pass
    else:
        fail("an unknown parameter must raise DetectorError")

    def run_once(seed: int) -> list[dict[str, Any]]:
        detector = cls(context)
        detector.reset(seed)
        produced: list[Alert] = []
        last = 0.0
        for event in _probe_events():
            result = detector.observe(event) if event.kind in cls.KINDS else []
            if not isinstance(result, list):
                fail(f"observe() must return a list, got {type(result).__name__}")
            produced += result
            if event.time - last >= 0.5:
                ticked = detector.tick(event.time)
                if not isinstance(ticked, list):
                    fail("tick() must return a list")
                produced += ticked
                last = event.time
        ticked = detector.tick(last + 3600.0)
        closed = detector.close()
        if not isinstance(ticked, list) or not isinstance(closed, list):
            fail("tick() and close() must return lists")
        produced += ticked + closed
        records = []
        for alert in produced:
            if not isinstance(alert, Alert):
                fail(f"alerts must be detectors.base.Alert, got {type(alert).__name__}")
            if alert.detector != cls.NAME:
                fail(f"alert.detector is {alert.detector!r}, expected {cls.NAME!r}")
            if alert.severity not in (1, 2, 3):
                fail(f"alert severity must be 1, 2 or 3, got {alert.severity}")
            if not alert.reason:
                fail("alert.reason must say why")
            record = alert.to_record(clock_offset=0.0)
            json.dumps(record)
            records.append({k: v for k, v in record.items() if k != "timestamp"})
        return records

    first, second = run_once(7), run_once(7)
    if first != second:
        fail("same seed and events must give the same alerts (determinism)")
