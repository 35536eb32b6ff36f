"""Load, validate and resolve a topology file into a :class:`~testbed.model.topology.Topology`.

Owns: the semantic checks a schema cannot express (references, overlapping networks, addresses,
policy that can never match), address assignment, and the single function that resolves host
fields ``defaults < group < host``. Collects every problem before raising, never just the first.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pydantic

from testbed.errors import Diagnostic, ValidationError
from testbed.model.diagnose import diagnostics_from_pydantic, did_you_mean
from testbed.model.spec import (
    LARGEST_SEGMENT_PREFIX,
    SMALLEST_SEGMENT_PREFIX,
    TIER_VALUES,
    HostFields,
    HostRuleSpec,
    RuleSpec,
    SegmentSpec,
    Tier,
    TopologySpec,
)
from testbed.model.topology import (
    Endpoint,
    Host,
    HostFirewall,
    Router,
    Rule,
    Segment,
    Service,
    Topology,
)
from testbed.yamlsource import KeyPath, SourceDocument, load_yaml

__all__ = ["MAX_HOSTS", "load_topology", "resolve_host_fields", "topology_from_document"]

MAX_HOSTS = 1_048_576
"""The most hosts a topology may have: a /12's worth, the simulation backend's scale. How many an
emulation backend holds depends on the machine; it says so before deploying anything
(``testbed.backends.preflight``)."""

PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in
                       ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))

_INHERITED = tuple(name for name in HostFields.model_fields)


@dataclass(frozen=True)
class _Declared:
    """The resolved fields one declaration gives each of its hosts."""

    tier: Tier
    value: float
    os: str
    device: str
    services: tuple[Service, ...]
    trusts: tuple[str, ...]
    trust_entries: tuple[str | tuple[str, ...], ...]  # as declared: a host, or a group's members
    trusted_groups_members: frozenset[str]  # a member of one of these drops itself from trusts
    patched: frozenset[str] | Literal[True]
    cpus: float | None
    memory_mb: int | None
    image: str | None
    description: str


class _EndpointNames(Mapping[str, Endpoint]):
    """Every name a rule may use (``any``, segments, groups, hosts) -> its Endpoint, made when a
    rule first names it: a million-host topology's rules name a handful."""

    _ANY = Endpoint("any", (ipaddress.IPv4Network("0.0.0.0/0"),))

    def __init__(self, segments: Mapping[str, SegmentSpec], groups: dict[str, tuple[str, ...]],
                 hosts: dict[str, Host]) -> None:
        self._segments, self._groups, self._hosts = segments, groups, hosts
        self._made: dict[str, Endpoint] = {"any": self._ANY}

    def __getitem__(self, name: str) -> Endpoint:
        made = self._made.get(name)
        if made is not None:
            return made
        if name in self._segments:
            made = Endpoint(name, (self._segments[name].cidr,))
        elif name in self._groups:
            made = Endpoint(name, tuple(_single(self._hosts[member].ip)
                                        for member in self._groups[name]
                                        if member in self._hosts))
        elif name in self._hosts:
            made = Endpoint(name, (_single(self._hosts[name].ip),))
        else:
            raise KeyError(name)
        self._made[name] = made
        return made

    def __contains__(self, name: object) -> bool:
        return (name == "any" or name in self._segments or name in self._groups
                or name in self._hosts)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for names in (("any",), self._segments, self._groups, self._hosts):
            for name in names:
                if name not in seen:
                    seen.add(name)
                    yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _single(address: ipaddress.IPv4Address) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(address), 32))


@lru_cache(maxsize=1)
def topology_schema() -> dict[str, Any]:
    return TopologySpec.model_json_schema(by_alias=True)


def resolve_host_fields(defaults: HostFields, group: HostFields | None,
                        host: HostFields | None) -> dict[str, Any]:
    """The one place where host values resolve: defaults < group < host (later wins).

    Only keys a level actually sets override; ``services`` and ``trusts`` replace, not merge.
    """
    resolved: dict[str, Any] = {}
    for level in (defaults, group, host):
        if level is None:
            continue
        for key in level.model_fields_set & set(_INHERITED):
            resolved[key] = getattr(level, key)
    return resolved


def load_topology(path: str | Path, *, display_name: str | None = None) -> Topology:
    """Load and fully validate a topology file. Raises ValidationError listing every problem."""
    document = load_yaml(path, display_name=display_name)
    return topology_from_document(document)


def topology_from_document(document: SourceDocument) -> Topology:
    try:
        spec = TopologySpec.model_validate(document.data)
    except pydantic.ValidationError as err:
        raise ValidationError(diagnostics_from_pydantic(err, document, topology_schema())) from None
    with _collector_paused():
        return _Resolver(spec, document).resolve()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Resolving makes millions of objects for a large topology and no reference cycles; the
    cyclic collector would rescan them all again and again (a million hosts: 58 s instead of
    22 s to load)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Resolver:
    def __init__(self, spec: TopologySpec, document: SourceDocument) -> None:
        self.spec, self.document = spec, document
        self.problems: list[Diagnostic] = []

    def error(self, path: KeyPath, message: str, hint: str = "", at_key: bool = False) -> None:
        diagnostic = self.document.diagnostic(path, message, hint=hint, at_key=at_key)
        # A group's members share one declaration: report its problem once, not per member.
        if diagnostic not in self.problems:
            self.problems.append(diagnostic)

    # ------------------------------------------------------------------------------------
    def resolve(self) -> Topology:
        spec = self.spec
        # Counted before any member is stamped: the counts alone may ask for millions.
        total = len(spec.hosts) + sum(group.count for group in spec.groups.values())
        if total > MAX_HOSTS:
            self.error(("groups",), f"{total} hosts is more than the limit of {MAX_HOSTS}",
                       hint="split the topology or lower the group counts")
            raise ValidationError(self.problems)
        self._check_segments()
        self._check_unique_names()
        segments = {name: Segment(name, s.cidr, s.zone, s.description)
                    for name, s in spec.segments.items()}
        host_specs = self._stamp_hosts()
        groups = {name: tuple(f"{name}-{i}" for i in range(1, g.count + 1))
                  for name, g in spec.groups.items()}
        reserved = self._reserve_fixed_addresses(host_specs)
        router_addresses = self._assign_router_addresses(reserved)
        hosts = self._build_hosts(host_specs, reserved, groups)
        names = self._endpoint_names(groups, hosts)
        routers = {name: Router(name, router_addresses.get(name, {}), r.default,
                                tuple(self._rule(("routers", name, "rules", i), rule, names, i)
                                      for i, rule in enumerate(r.rules)), r.description)
                   for name, r in spec.routers.items()}
        self._check_decoys(reserved)
        if self.problems:
            raise ValidationError(self.problems)
        topology = Topology(spec.name, spec.description, segments, hosts, routers, groups,
                            tuple(spec.decoys), str(self.document.file))
        self._check_single_path(topology)
        if self.problems:
            raise ValidationError(self.problems)
        self._check_rules_can_match(topology)
        if self.problems:
            raise ValidationError(self.problems)
        return topology

    # ------------------------------------------------------------------------------------
    def _check_segments(self) -> None:
        items = list(self.spec.segments.items())
        for name, segment in items:
            path = ("segments", name, "cidr")
            if not any(segment.cidr.subnet_of(r) for r in PRIVATE_RANGES):
                self.error(path, f"{segment.cidr} is not inside a private range",
                           hint="use 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10")
            if not LARGEST_SEGMENT_PREFIX <= segment.cidr.prefixlen <= SMALLEST_SEGMENT_PREFIX:
                self.error(path, f"prefix length /{segment.cidr.prefixlen} is out of range",
                           hint=f"segments are between /{LARGEST_SEGMENT_PREFIX} and "
                                f"/{SMALLEST_SEGMENT_PREFIX}")
        for i, (name, segment) in enumerate(items):
            for other_name, other in items[:i]:
                if segment.cidr.overlaps(other.cidr):
                    self.error(("segments", name, "cidr"),
                               f"{segment.cidr} overlaps segment {other_name!r} ({other.cidr})",
                               hint="every segment needs its own network")

    def _check_unique_names(self) -> None:
        seen: dict[str, str] = {}
        spec = self.spec
        kinds: list[tuple[str, list[str]]] = [
            ("segments", list(spec.segments)), ("groups", list(spec.groups)),
            ("hosts", list(spec.hosts)), ("routers", list(spec.routers))]
        for kind, names in kinds:
            for name in names:
                if name == "any":
                    self.error((kind, name), "'any' is reserved", at_key=True,
                               hint="rules use 'any' for every address")
                if name in seen:
                    self.error((kind, name), f"name {name!r} is already used by a "
                                             f"{seen[name].removesuffix('s')}",
                               hint="segments, groups, hosts and routers share one namespace so "
                                    "that rules can name any of them", at_key=True)
                seen.setdefault(name, kind)
        # Group members ('pc' -> pc-1 .. pc-N) join the same namespace.
        for group, g in spec.groups.items():
            for i in range(1, g.count + 1):
                stamped = f"{group}-{i}"
                if stamped not in seen:
                    continue
                kind = seen[stamped]
                if kind == "hosts":
                    self.error(("hosts", stamped), f"host {stamped!r} collides with a member of "
                               f"group {group!r}", at_key=True, hint="rename the host")
                else:
                    self.error((kind, stamped), f"{kind.removesuffix('s')} {stamped!r} collides "
                               f"with a member of group {group!r}", at_key=True,
                               hint=f"rename {stamped!r} or group {group!r}")

    def _stamp_hosts(self) -> dict[str, tuple[dict[str, Any], KeyPath, str | None]]:
        """Every host's resolved fields, where it was declared, and its group."""
        spec = self.spec
        stamped: dict[str, tuple[dict[str, Any], KeyPath, str | None]] = {}
        for name, host in spec.hosts.items():
            fields = resolve_host_fields(spec.defaults, None, host)
            fields["ip"] = host.ip
            stamped[name] = (fields, ("hosts", name), None)
        for group, g in spec.groups.items():
            fields = resolve_host_fields(spec.defaults, g, None)
            for i in range(1, g.count + 1):
                stamped[f"{group}-{i}"] = (dict(fields, ip=None), ("groups", group), group)
        reported: set[KeyPath] = set()  # one message per declaration, not per group member
        for name, (fields, path, member_of) in stamped.items():
            segment = fields.get("segment")
            if segment is None:
                if path not in reported:
                    what = f"group {member_of!r}" if member_of else f"host {name!r}"
                    self.error(path, f"{what} has no segment",
                               hint="set 'segment:' on the host, its group, or in defaults")
                reported.add(path)
            elif segment not in spec.segments:
                declared: HostFields = (spec.groups[member_of] if member_of else spec.hosts[name])
                origin: KeyPath = ((*path, "segment") if "segment" in declared.model_fields_set
                                   else ("defaults", "segment"))
                if origin not in reported:
                    self.error(origin, f"unknown segment {segment!r}",
                               hint=did_you_mean(segment, set(spec.segments), "segments"))
                reported.add(origin)
        return stamped

    def _reserve_fixed_addresses(self, host_specs: dict[str, tuple[dict[str, Any], KeyPath,
                                                                   str | None]]
                                 ) -> dict[ipaddress.IPv4Address, str]:
        reserved: dict[ipaddress.IPv4Address, str] = {}

        def claim(address: ipaddress.IPv4Address, owner: str, segment: str | None,
                  path: KeyPath) -> None:
            if segment in self.spec.segments:
                network = self.spec.segments[segment].cidr
                if address not in network:
                    self.error(path, f"{address} is outside segment {segment!r} ({network})",
                               hint=f"pick an address in {network}")
                    return
                if address in (network.network_address, network.broadcast_address):
                    self.error(path, f"{address} is the network or broadcast address of "
                                     f"{network}", hint="pick a host address")
                    return
            if address in reserved:
                self.error(path, f"{address} is already used by {reserved[address]}",
                           hint="each address belongs to one host or interface")
                return
            reserved[address] = owner

        for name, router in self.spec.routers.items():
            for segment, address in router.addresses.items():
                path: KeyPath = ("routers", name, "addresses", segment)
                if segment not in router.segments:
                    self.error(path, f"router {name!r} has no interface on segment {segment!r}",
                               hint=f"add {segment!r} to its segments, or remove this address")
                    continue
                claim(address, f"router {name!r}", segment, path)
        for name, (fields, host_path, _group) in host_specs.items():
            if fields.get("ip") is not None:
                claim(fields["ip"], f"host {name!r}", fields.get("segment"), (*host_path, "ip"))
        return reserved

    def _free_addresses(self, segment: str, reserved: dict[ipaddress.IPv4Address, str]):  # type: ignore[no-untyped-def]
        decoys = set(self.spec.decoys)
        for address in self.spec.segments[segment].cidr.hosts():
            if address not in reserved and address not in decoys:
                yield address

    def _assign_router_addresses(self, reserved: dict[ipaddress.IPv4Address, str]
                                 ) -> dict[str, dict[str, ipaddress.IPv4Address]]:
        assigned: dict[str, dict[str, ipaddress.IPv4Address]] = {}
        for name, router in self.spec.routers.items():
            interfaces: dict[str, ipaddress.IPv4Address] = {}
            for index, segment in enumerate(router.segments):
                path: KeyPath = ("routers", name, "segments", index)
                if segment not in self.spec.segments:
                    self.error(path, f"unknown segment {segment!r}",
                               hint=did_you_mean(segment, set(self.spec.segments), "segments"))
                    continue
                if segment in interfaces:
                    self.error(path, f"segment {segment!r} is listed twice")
                    continue
                address = router.addresses.get(segment)
                if address is None:
                    address = next(self._free_addresses(segment, reserved), None)
                    if address is None:
                        self.error(path, f"segment {segment!r} has no free address left",
                                   hint="use a larger CIDR")
                        continue
                    reserved[address] = f"router {name!r}"
                interfaces[segment] = address
            assigned[name] = interfaces
        return assigned

    def _build_hosts(self, host_specs: dict[str, tuple[dict[str, Any], KeyPath, str | None]],
                     reserved: dict[ipaddress.IPv4Address, str],
                     groups: dict[str, tuple[str, ...]]) -> dict[str, Host]:
        hosts: dict[str, Host] = {}
        free = {segment: self._free_addresses(segment, reserved) for segment in self.spec.segments}
        all_names = set(host_specs) | set(groups)
        # Hosts left without an address, per declaration: one message per group, not per member.
        starved: dict[KeyPath, tuple[str, list[str]]] = {}
        declared: dict[KeyPath, _Declared] = {}
        for name, (fields, path, group) in host_specs.items():
            segment = fields.get("segment")
            if segment not in self.spec.segments:
                continue
            address = fields.get("ip")
            if address is None:
                address = next(free[segment], None)
                if address is None:
                    starved.setdefault(path, (segment, []))[1].append(name)
                    continue
                reserved[address] = f"host {name!r}"
            shared = declared.get(path)
            if shared is None:  # once per declaration: a group's members share all of it
                shared = declared[path] = self._declared_fields(fields, path, groups,
                                                                host_specs, all_names)
            trusts = shared.trusts
            if name in shared.trusted_groups_members:  # trusting one's own group: not oneself
                trusts = tuple(dict.fromkeys(
                    member for entry in shared.trust_entries for member in
                    (entry if isinstance(entry, tuple) else (entry,))
                    if not (isinstance(entry, tuple) and member == name)))
            hosts[name] = Host(
                name=name, segment=segment, ip=address, tier=shared.tier, value=shared.value,
                os=shared.os, device=shared.device, services=shared.services, trusts=trusts,
                patched=shared.patched,
                firewall=HostFirewall(),  # rules resolved below once every name is known
                group=group, cpus=shared.cpus, memory_mb=shared.memory_mb, image=shared.image,
                description=shared.description)
        for path, (segment, left_out) in starved.items():
            network = self.spec.segments[segment].cidr
            who = (f"host {left_out[0]!r}" if len(left_out) == 1 else
                   f"{len(left_out)} hosts ({left_out[0]} .. {left_out[-1]})")
            self.error(path, f"segment {segment!r} ({network}) has no free address left for "
                             f"{who}", hint=f"{network} has {max(network.num_addresses - 2, 0)} "
                                            "usable addresses; use a larger CIDR or fewer hosts")
        names = self._endpoint_names(groups, hosts)
        for name, (fields, path, _group) in host_specs.items():
            firewall = fields.get("firewall")
            if firewall is None or name not in hosts:
                continue
            rules = tuple(self._rule((*path, "firewall", "rules", i), rule, names, i)
                          for i, rule in enumerate(firewall.rules))
            host = hosts[name]
            hosts[name] = Host(**{**host.__dict__, "firewall": HostFirewall(firewall.default,
                                                                             rules)})
        return hosts

    def _declared_fields(self, fields: dict[str, Any], path: KeyPath,
                         groups: dict[str, tuple[str, ...]],
                         host_specs: dict[str, tuple[dict[str, Any], KeyPath, str | None]],
                         all_names: set[str]) -> _Declared:
        """What every host of one declaration (a host, or all members of a group) shares,
        checked once."""
        tier = fields.get("tier") or Tier.WORKSTATION
        services = tuple(Service.make(s.name, s.port, s.proto, s.banner, s.vulns)
                         for s in fields.get("services") or ())
        seen_ports: set[tuple[int, str]] = set()
        for index, service in enumerate(services):
            if (service.port, service.proto) in seen_ports:
                self.error((*path, "services", index),
                           f"port {service.port}/{service.proto} is used by two services",
                           hint="give one of them another 'port:'")
            seen_ports.add((service.port, service.proto))
        trusts: list[str] = []
        entries: list[str | tuple[str, ...]] = []  # a host's name, or a group's members
        for index, trusted in enumerate(fields.get("trusts") or ()):
            if trusted in groups:
                trusts.extend(groups[trusted])
                entries.append(groups[trusted])
            elif trusted in host_specs:
                trusts.append(trusted)
                entries.append(trusted)
            else:
                self.error((*path, "trusts", index), f"unknown host or group {trusted!r}",
                           hint=did_you_mean(trusted, all_names, "hosts"))
        unique = tuple(dict.fromkeys(trusts))
        patched = fields.get("patched")
        limits = fields.get("limits")
        return _Declared(
            tier=tier,
            value=fields["value"] if fields.get("value") is not None else TIER_VALUES[tier],
            os=fields.get("os") or "linux", device=fields.get("device") or "",
            services=services, trusts=unique, trust_entries=tuple(entries),
            trusted_groups_members=frozenset(member for entry in entries
                                             if isinstance(entry, tuple) for member in entry),
            patched=True if patched is True else frozenset(patched or ()),
            cpus=limits.cpus if limits else None,
            memory_mb=limits.memory_mb if limits else None,
            image=fields.get("image"), description=fields.get("description") or "")

    def _endpoint_names(self, groups: dict[str, tuple[str, ...]],
                        hosts: dict[str, Host]) -> Mapping[str, Endpoint]:
        return _EndpointNames(self.spec.segments, groups, hosts)

    def _rule(self, path: KeyPath, rule: RuleSpec | HostRuleSpec, names: Mapping[str, Endpoint],
              index: int) -> Rule:
        def endpoints(values: list[str], key: str) -> tuple[Endpoint, ...]:
            found: list[Endpoint] = []
            for i, value in enumerate(values):
                value = str(value)
                if value in names:
                    found.append(names[value])
                    continue
                try:
                    found.append(Endpoint(value, (ipaddress.IPv4Network(value),)))
                    continue
                except ValueError:
                    pass
                self.error((*path, key, i) if len(values) > 1 else (*path, key),
                           f"unknown segment, group or host {value!r}",
                           hint=did_you_mean(value, set(names) | set(self.spec.hosts)
                                             | set(self.spec.groups), "names"))
            return tuple(found)

        ports: tuple[tuple[int, int], ...] | None = None
        if rule.ports is not None:
            parsed: list[tuple[int, int]] = []
            for i, item in enumerate(rule.ports):
                # Integers arrive as int (possibly negative); ranges as 'low-high' strings that
                # the spec's pattern already checked for digits.
                if isinstance(item, int):
                    low_port = high_port = item
                else:
                    low, _, high = item.partition("-")
                    low_port, high_port = int(low), int(high or low)
                if not 1 <= low_port <= high_port <= 65535:
                    self.error((*path, "ports", i), f"port range {item!r} is not within 1-65535 "
                               "or runs backwards", hint="ports are 1-65535; ranges low-high")
                    continue
                parsed.append((low_port, high_port))
            ports = tuple(parsed)
            if rule.proto == "icmp":
                self.error((*path, "ports"), "ICMP has no ports", hint="remove 'ports' or use "
                                                                      "proto tcp/udp")
        sources = endpoints(rule.from_, "from")
        destinations = endpoints(getattr(rule, "to", ["any"]), "to")
        return Rule(rule.action, sources, destinations, ports, rule.proto, index, rule.description)

    def _check_decoys(self, reserved: dict[ipaddress.IPv4Address, str]) -> None:
        seen: set[ipaddress.IPv4Address] = set()
        for i, decoy in enumerate(self.spec.decoys):
            network = next((s.cidr for s in self.spec.segments.values() if decoy in s.cidr), None)
            if network is None:
                self.error(("decoys", i), f"decoy {decoy} is outside every segment",
                           hint="decoys are unused addresses inside a segment")
            elif decoy in (network.network_address, network.broadcast_address):
                self.error(("decoys", i), f"decoy {decoy} is the network or broadcast address "
                                          f"of {network}", hint="pick a host address")
            elif decoy in seen:
                self.error(("decoys", i), f"decoy {decoy} is listed twice")
            elif decoy in reserved:
                self.error(("decoys", i), f"decoy {decoy} is used by {reserved[decoy]}",
                           hint="decoys must be addresses no host uses")
            seen.add(decoy)

    def _check_single_path(self, topology: Topology) -> None:
        """Routers must not form a loop through segments.

        With one path between any two segments, forward and return traffic cross the same
        routers, so stateful firewalls see both directions and the policy has one meaning.
        Emulating a routing protocol over redundant paths is out of scope.
        """
        import networkx as nx

        graph = topology.segment_graph
        if nx.is_forest(graph):
            return
        cycle = nx.find_cycle(graph)
        routers = sorted({node[2:] for edge in cycle for node in edge if node.startswith("r:")})
        segments = sorted({node[2:] for edge in cycle for node in edge if node.startswith("s:")})
        self.error(("routers", routers[0], "segments"),
                   f"routers {', '.join(routers)} form a loop through segments "
                   f"{', '.join(segments)}",
                   hint="the testbed needs exactly one path between two segments; drop one "
                        "router's attachment to a segment of the loop")

    def _check_rules_can_match(self, topology: Topology) -> None:
        """A router rule that names a segment (or a host/group on one) whose traffic never
        crosses that router can never match: almost always a mistake."""
        crossing: dict[str, set[str]] = {name: set() for name in topology.routers}
        for (a, b), path in topology.router_paths.items():
            for router in path or ():
                crossing[router].update((a, b))
        for name, router_spec in self.spec.routers.items():
            for index, rule in enumerate(router_spec.rules):
                for key, values in (("from", rule.from_), ("to", rule.to)):
                    for value in values:
                        segment = self._segment_of(str(value), topology)
                        if segment is None:
                            continue
                        attached = topology.routers[name].interfaces
                        if segment not in crossing[name] and segment not in attached:
                            self.error(("routers", name, "rules", index, key),
                                       f"names {value!r} on segment {segment!r}, but router "
                                       f"{name!r} is not attached to it and no traffic of it "
                                       f"crosses this router", hint=f"attach {name!r} to "
                                       f"{segment!r} or move the rule to a router that is")

    def _segment_of(self, name: str, topology: Topology) -> str | None:
        if name in topology.segments:
            return name
        if name in topology.hosts:
            return topology.hosts[name].segment
        if topology.groups.get(name):
            first = topology.groups[name][0]
            return topology.hosts[first].segment if first in topology.hosts else None
        return None
