"""Topologies of any size, generated for experiments: ``flat``, ``enterprise`` and ``campus``.

Owns: the generators behind ``testbed generate`` (``generate_topology(kind, hosts, seed=...)``
returns a topology document, the mapping a topology YAML file holds) and its YAML text
(``topology_yaml``). Hosts are stamped by groups, so a million-host topology is a few dozen lines
of YAML; the address plan packs the segments into 10.0.0.0/8, each the smallest network that
holds its hosts (at most a /12). The seed draws how many hosts of each group carry the mock
vulnerability (binomial, ``vulnerable`` on average) and how the hosts divide among departments or
buildings. Every document loads with ``testbed.model.load_topology``.

Must not: write files (the CLI does) or touch the system.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Callable
from typing import Any

import yaml

from testbed.errors import TestbedError
from testbed.model.load_topology import MAX_HOSTS
from testbed.model.spec import LARGEST_SEGMENT_PREFIX, MAX_GROUP_HOSTS

__all__ = ["GENERATORS", "PATIENT_ZERO", "GenerateError", "generate_topology", "topology_yaml"]

PATIENT_ZERO = "laptop"
"""Every generated topology has this launch-pad host, vulnerable, for a scenario's
``worm.patient_zero``."""
ADDRESS_SPACE = ipaddress.IPv4Network("10.0.0.0/8")
SMALLEST_PREFIX = 24  # a generated segment is at least a /24, as people number them

Document = dict[str, Any]


class GenerateError(TestbedError):
    """The generator cannot make the topology asked for (too few or too many hosts ...)."""


_WORKSTATION_SERVICES = [{"name": "smb", "vulns": ["MOCK-SMB-1"]}, {"name": "rdp"}]


def _draw_binomial(rng: random.Random, trials: int, share: float) -> int:
    """A binomial draw: exact below 1,000 trials, the normal approximation above (millions of
    trials would take seconds one by one)."""
    if trials <= 0 or share <= 0:
        return 0
    if share >= 1:
        return trials
    if trials < 1000:
        return sum(rng.random() < share for _ in range(trials))
    value = round(rng.gauss(trials * share, math.sqrt(trials * share * (1 - share))))
    return min(trials, max(0, value))


def _prefix_for(hosts: int) -> int:
    """The smallest segment prefix with room for ``hosts`` hosts plus a router interface."""
    needed = hosts + 3  # network, broadcast, router
    prefix = 32 - math.ceil(math.log2(needed))
    return min(SMALLEST_PREFIX, prefix)


def _address_plan(sizes: dict[str, int]) -> dict[str, str]:
    """Non-overlapping CIDRs in 10.0.0.0/8, largest segment first (so every one is aligned)."""
    plan: dict[str, str] = {}
    cursor = int(ADDRESS_SPACE.network_address)
    for name, hosts in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        prefix = _prefix_for(hosts)
        if prefix < LARGEST_SEGMENT_PREFIX:
            raise GenerateError(f"segment {name!r} would need {hosts} hosts, more than a "
                             f"/{LARGEST_SEGMENT_PREFIX} holds")
        network = ipaddress.IPv4Network((cursor, prefix))
        plan[name] = str(network)
        cursor += network.num_addresses
    if cursor > int(ADDRESS_SPACE.broadcast_address) + 1:
        raise GenerateError("the segments do not fit into 10.0.0.0/8")
    return plan


def _groups(rng: random.Random, name: str, count: int, vulnerable: float, segment: str,
            **fields: Any) -> Document:
    """``count`` hosts as groups: ``name`` (vulnerable) and ``name-patched``, each split into
    numbered groups when above the group limit."""
    vulnerable_count = _draw_binomial(rng, count, vulnerable)
    groups: Document = {}
    for group, members, patched in ((name, vulnerable_count, False),
                                    (f"{name}-patched", count - vulnerable_count, True)):
        chunks = max(1, math.ceil(members / MAX_GROUP_HOSTS))
        for index in range(chunks):
            size = members // chunks + (1 if index < members % chunks else 0)
            if size == 0:
                continue
            key = group if chunks == 1 else f"{group}{index + 1}"
            entry: Document = {"count": size, "segment": segment, **fields}
            if patched:
                entry["patched"] = True
            groups[key] = entry
    return groups


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """``total`` hosts over ``parts`` departments, each within +-25 % of the even share."""
    weights = [rng.uniform(0.75, 1.25) for _ in range(parts)]
    scale = total / sum(weights)
    sizes = [max(1, int(weight * scale)) for weight in weights]
    sizes[-1] += total - sum(sizes)
    while sizes[-1] < 1:  # rounding took too much from the last one
        donor = sizes.index(max(sizes))
        sizes[donor] -= 1
        sizes[-1] += 1
    return sizes


def _laptop(segment: str) -> Document:
    return {"segment": segment, "tier": "launch-pad", "device": "laptop",
            "services": [{"name": "smb", "vulns": ["MOCK-SMB-1"]}]}


def flat(hosts: int, rng: random.Random, vulnerable: float) -> Document:
    """One segment: the launch-pad laptop, a file server and ``hosts - 2`` workstations."""
    if hosts < 3:
        raise GenerateError("a flat topology needs at least 3 hosts (the laptop, the file "
                            "server and a workstation)")
    return {
        "name": f"flat-{hosts}",
        "description": f"{hosts} hosts on one flat segment; about {vulnerable:.0%} of the "
                       "workstations carry MOCK-SMB-1 (generated by `testbed generate flat`).",
        "segments": {"lan": {"cidr": _address_plan({"lan": hosts})["lan"], "zone": "corp"}},
        "defaults": {"tier": "workstation", "os": "windows-10", "segment": "lan"},
        "groups": _groups(rng, "ws", hosts - 2, vulnerable, "lan",
                          services=_WORKSTATION_SERVICES, trusts=["fileserver"]),
        "hosts": {PATIENT_ZERO: _laptop("lan"),
                  "fileserver": {"tier": "server", "services": [{"name": "smb"}]}},
    }


def _servers(segment: str) -> Document:
    """The server side every enterprise and campus has: files, intranet, the finance database
    (crown jewel)."""
    return {
        "fileserver": {"segment": segment, "tier": "server",
                       "services": [{"name": "smb", "vulns": ["MOCK-SMB-1"]}]},
        "intranet": {"segment": segment, "tier": "server",
                     "services": [{"name": "http", "vulns": ["MOCK-HTTP-1"]}]},
        "finance-db": {"segment": segment, "tier": "crown-jewel",
                       "services": [{"name": "sql", "vulns": ["MOCK-SQL-1"]}]},
    }


def enterprise(hosts: int, rng: random.Random, vulnerable: float) -> Document:
    """Departments (one user segment each, about 250 hosts, at most 64 of them) behind one core
    firewall, a server segment and a DMZ. Users reach the servers' files and intranet, the DMZ's
    web; departments do not reach each other; only the DMZ web server reaches the database."""
    servers, fixed = 3, 5  # fileserver, intranet, finance-db; laptop, web
    if hosts < fixed + 1:
        raise GenerateError(f"an enterprise topology needs at least {fixed + 1} hosts")
    users = hosts - fixed
    departments = min(64, max(1, round(users / 250)))
    sizes = _split(rng, users, departments)
    names = [f"dept{index + 1}" for index in range(departments)]
    segment_sizes = {name: size + (1 if index == 0 else 0)
                     for index, (name, size) in enumerate(zip(names, sizes, strict=True))}
    segment_sizes |= {"servers": servers, "dmz": 1}
    plan = _address_plan(segment_sizes)
    groups: Document = {}
    for name, size in zip(names, sizes, strict=True):
        groups |= _groups(rng, f"{name}-pc", size, vulnerable, name, services=_WORKSTATION_SERVICES,
                          trusts=["fileserver"])
    return {
        "name": f"enterprise-{hosts}",
        "description": f"{hosts} hosts: {departments} departments behind a core firewall, "
                       "servers and a DMZ (generated by `testbed generate enterprise`).",
        "segments": {name: {"cidr": plan[name], "zone": zone}
                     for name, zone in [*((n, "corp") for n in names), ("servers", "corp"),
                                        ("dmz", "dmz")]},
        "defaults": {"tier": "workstation", "os": "windows-10"},
        "groups": groups,
        "hosts": {PATIENT_ZERO: _laptop(names[0]), **_servers("servers"),
                  "web": {"segment": "dmz", "tier": "server",
                          "services": [{"name": "http", "vulns": ["MOCK-HTTP-1"]}]}},
        "routers": {"core": {
            "segments": [*names, "servers", "dmz"], "default": "deny",
            "rules": [
                {"action": "allow", "from": names, "to": ["fileserver"], "ports": [445],
                 "proto": "tcp", "description": "file shares"},
                {"action": "allow", "from": names, "to": ["intranet", "web"], "ports": [80],
                 "proto": "tcp", "description": "intranet and web"},
                {"action": "allow", "from": ["web"], "to": ["finance-db"], "ports": [3306],
                 "proto": "tcp", "description": "the web application's database"},
            ]}},
    }


def campus(hosts: int, rng: random.Random, vulnerable: float) -> Document:
    """Buildings (a router each, on a backbone segment with the core router), each with a staff
    and a student segment; a data centre behind the core. Staff reach the data centre's files and
    intranet; students only the intranet; no building reaches another."""
    servers, fixed = 3, 4  # data centre; laptop
    if hosts < fixed + 2:
        raise GenerateError(f"a campus topology needs at least {fixed + 2} hosts")
    users = hosts - fixed
    buildings = min(32, max(1, round(users / 1000)))
    per_building = _split(rng, users, buildings)
    segment_sizes: dict[str, int] = {"dc": servers, "backbone": buildings + 1}
    groups: Document = {}
    routers: Document = {}
    for index, size in enumerate(per_building):
        building = f"b{index + 1}"
        staff = max(1, size // 3) if size > 1 else size
        students = size - staff
        staff_segment, student_segment = f"{building}-staff", f"{building}-students"
        segment_sizes[staff_segment] = staff + (1 if index == 0 else 0)
        groups |= _groups(rng, f"{building}-pc", staff, vulnerable, staff_segment,
                          services=_WORKSTATION_SERVICES, trusts=["fileserver"])
        attached = [staff_segment, "backbone"]
        if students:
            segment_sizes[student_segment] = students
            groups |= _groups(rng, f"{building}-lab", students, vulnerable, student_segment,
                              services=_WORKSTATION_SERVICES, os="linux")
            attached.insert(1, student_segment)
        building_segments = [segment for segment in attached if segment != "backbone"]
        routers[building] = {
            "segments": attached, "default": "deny",
            "rules": [
                {"action": "allow", "from": [staff_segment], "to": ["fileserver"],
                 "ports": [445], "proto": "tcp", "description": "staff file shares"},
                {"action": "allow", "from": building_segments, "to": ["intranet"],
                 "ports": [80], "proto": "tcp", "description": "intranet"},
            ]}
    staff_segments = [f"b{index + 1}-staff" for index in range(buildings)]
    user_segments = [name for name in segment_sizes if name.startswith("b")]
    routers["core"] = {
        "segments": ["backbone", "dc"], "default": "deny",
        "rules": [
            {"action": "allow", "from": staff_segments, "to": ["fileserver"], "ports": [445],
             "proto": "tcp", "description": "staff file shares"},
            {"action": "allow", "from": user_segments, "to": ["intranet"], "ports": [80],
             "proto": "tcp", "description": "intranet"},
            {"action": "allow", "from": ["intranet"], "to": ["finance-db"], "ports": [3306],
             "proto": "tcp", "description": "the intranet's database"},
        ]}
    plan = _address_plan(segment_sizes)
    return {
        "name": f"campus-{hosts}",
        "description": f"{hosts} hosts in {buildings} buildings (staff and student segments "
                       "behind a router each) and a data centre behind the core (generated by "
                       "`testbed generate campus`).",
        "segments": {name: {"cidr": plan[name]} for name in segment_sizes},
        "defaults": {"tier": "workstation", "os": "windows-10"},
        "groups": groups,
        "hosts": {PATIENT_ZERO: _laptop("b1-staff"), **_servers("dc")},
        "routers": routers,
    }


GENERATORS: dict[str, Callable[[int, random.Random, float], Document]] = {
    "flat": flat, "enterprise": enterprise, "campus": campus}


def generate_topology(kind: str, hosts: int, *, seed: int = 1,
                      vulnerable: float = 0.1) -> Document:
    """A topology document of ``kind`` with exactly ``hosts`` hosts; ``vulnerable``: the share of
    workstations carrying the mock SMB vulnerability (the rest are patched)."""
    if kind not in GENERATORS:
        raise GenerateError(f"unknown kind {kind!r}; known: {', '.join(GENERATORS)}")
    if not 1 <= hosts <= MAX_HOSTS:
        raise GenerateError(f"--hosts must be between 1 and {MAX_HOSTS}")
    if not 0 <= vulnerable <= 1:
        raise GenerateError("the vulnerable share must be between 0 and 1")
    return GENERATORS[kind](hosts, random.Random(seed), vulnerable)


class _PlainDumper(yaml.SafeDumper):
    """Writes shared lists out in full: no anchors and aliases in a file people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def topology_yaml(document: Document, *, command: str = "") -> str:
    """The document as a topology file, with the schema comment and how it was made."""
    header = f"# Generated by: {command}\n" if command else ""
    return header + yaml.dump(document, Dumper=_PlainDumper, sort_keys=False,
                              default_flow_style=None, width=100)
