"""Resolving a topology file into the frozen model: field precedence, group stamping, address
assignment, tiers, router interfaces and routes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from testbed.errors import ValidationError
from testbed.model import Tier, Topology, load_topology, resolve_host_fields
from testbed.model.load_topology import topology_from_document
from testbed.model.spec import TIER_VALUES, HostFields, HostSpec, ServiceSpec
from testbed.yamlsource import parse_yaml_text

REPO = Path(__file__).resolve().parents[2]


def topology(text: str) -> Topology:
    return topology_from_document(parse_yaml_text(text, "t.yaml"))


def ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


# ---- precedence: defaults < group < host ---------------------------------------------------
def test_resolve_host_fields_later_levels_win_and_unset_keys_do_not_override() -> None:
    defaults = HostFields(os="linux", tier=Tier.WORKSTATION, device="pc")
    group = HostFields(os="windows-10", segment="lab")
    host = HostFields(os="windows-7", services=[ServiceSpec(name="smb")])
    resolved = resolve_host_fields(defaults, group, host)
    assert resolved["os"] == "windows-7"  # host beats group and defaults
    assert resolved["segment"] == "lab"  # from the group
    assert resolved["tier"] == Tier.WORKSTATION and resolved["device"] == "pc"  # defaults
    assert [s.name for s in resolved["services"]] == ["smb"]
    assert "trusts" not in resolved  # nobody set it


def test_resolve_host_fields_without_group_or_host() -> None:
    defaults = HostFields(os="linux")
    assert resolve_host_fields(defaults, None, None) == {"os": "linux"}
    assert resolve_host_fields(HostFields(), None, HostSpec(tier=Tier.SERVER)) == {
        "tier": Tier.SERVER}


def test_an_explicit_null_at_a_higher_level_still_counts_as_set() -> None:
    """Writing ``os: null`` on a host is a deliberate reset, unlike leaving it out."""
    resolved = resolve_host_fields(HostFields(os="linux"), None, HostFields(os=None))
    assert resolved == {"os": None}


PRECEDENCE = """
name: p
segments:
  lan: {cidr: 10.1.0.0/24}
  dmz: {cidr: 10.2.0.0/24}
defaults:
  segment: lan
  os: linux
  tier: server
  services: [{name: ssh}]
groups:
  pc:
    count: 3
    os: windows-10
    tier: workstation
hosts:
  web:
    segment: dmz
    services: [{name: http, port: 8080}]
  plain: {}
"""


def test_precedence_through_a_whole_topology() -> None:
    t = topology(PRECEDENCE)
    web, plain, pc = t.hosts["web"], t.hosts["plain"], t.hosts["pc-2"]
    assert (web.segment, web.os, web.tier) == ("dmz", "linux", Tier.SERVER)
    assert [(s.name, s.port, s.proto) for s in web.services] == [("http", 8080, "tcp")]
    assert (plain.segment, plain.os, plain.tier) == ("lan", "linux", Tier.SERVER)
    assert [(s.name, s.port) for s in plain.services] == [("ssh", 22)]  # replaced, not merged
    assert (pc.segment, pc.os, pc.tier, pc.group) == ("lan", "windows-10", Tier.WORKSTATION, "pc")
    assert [s.name for s in pc.services] == ["ssh"]


# ---- group stamping ------------------------------------------------------------------------
def test_group_members_are_named_one_to_count_in_order() -> None:
    t = topology("name: g\nsegments: {lab: {cidr: 10.0.0.0/24}}\n"
                 "groups: {lab-pc: {count: 40, segment: lab}}\n")
    expected = tuple(f"lab-pc-{i}" for i in range(1, 41))
    assert t.groups["lab-pc"] == expected
    assert list(t.hosts) == list(expected)
    assert all(t.hosts[name].group == "lab-pc" for name in expected)


def test_trusting_a_group_means_trusting_its_members_but_not_oneself() -> None:
    t = topology("""
name: tr
segments: {lan: {cidr: 10.0.0.0/24}}
groups: {pc: {count: 3, segment: lan, trusts: [pc, files]}}
hosts:
  files: {segment: lan, trusts: [pc, pc, files]}
""")
    assert t.hosts["pc-2"].trusts == ("pc-1", "pc-3", "files")
    assert t.hosts["files"].trusts == ("pc-1", "pc-2", "pc-3", "files")  # deduplicated


# ---- tiers and values ----------------------------------------------------------------------
def test_tier_defaults_and_values() -> None:
    assert TIER_VALUES == {Tier.LAUNCH_PAD: 1.0, Tier.WORKSTATION: 5.0, Tier.SERVER: 20.0,
                           Tier.CROWN_JEWEL: 100.0}
    t = topology("""
name: tiers
segments: {lan: {cidr: 10.0.0.0/24}}
hosts:
  nothing: {segment: lan}
  pad: {segment: lan, tier: launch-pad}
  srv: {segment: lan, tier: server}
  jewel: {segment: lan, tier: crown-jewel}
  priced: {segment: lan, tier: crown-jewel, value: 7}
""")
    assert t.hosts["nothing"].tier == Tier.WORKSTATION and t.hosts["nothing"].value == 5.0
    assert [t.hosts[n].value for n in ("pad", "srv", "jewel")] == [1.0, 20.0, 100.0]
    assert t.hosts["priced"].value == 7
    assert [h.name for h in t.hosts_of_tier(Tier.CROWN_JEWEL)] == ["jewel", "priced"]


def test_patched_flags() -> None:
    t = topology("""
name: patches
segments: {lan: {cidr: 10.0.0.0/24}}
defaults: {services: [{name: smb, vulns: [MOCK-SMB-1, MOCK-SMB-2]}]}
hosts:
  open: {segment: lan}
  half: {segment: lan, patched: [MOCK-SMB-1]}
  full: {segment: lan, patched: true}
  none: {segment: lan, services: [{name: http}]}
""")
    assert t.hosts["open"].susceptible and t.hosts["open"].is_vulnerable_to("MOCK-SMB-1")
    half = t.hosts["half"]
    assert not half.is_vulnerable_to("MOCK-SMB-1") and half.is_vulnerable_to("MOCK-SMB-2")
    assert half.susceptible
    assert t.hosts["full"].patched is True and not t.hosts["full"].susceptible
    assert not t.hosts["none"].susceptible and t.hosts["none"].vulnerable_services() == ()


# ---- addresses -----------------------------------------------------------------------------
ADDRESSES = """
name: addr
segments:
  a: {cidr: 10.0.0.0/29}
  b: {cidr: 10.0.1.0/24}
groups:
  pc: {count: 3, segment: a}
hosts:
  fixed: {segment: a, ip: 10.0.0.2}
  free: {segment: a}
  other: {segment: b}
routers:
  r1: {segments: [a, b]}
  r2: {segments: [b], addresses: {b: 10.0.1.254}}
decoys: [10.0.0.4]
"""


def test_addresses_are_assigned_in_a_documented_order() -> None:
    """Router interfaces first (file order), then hosts (file order), then group members;
    fixed addresses and decoys are never handed out."""
    t = topology(ADDRESSES.replace("count: 3", "count: 2"))
    assert t.routers["r1"].interfaces == {"a": ip("10.0.0.1"), "b": ip("10.0.1.1")}
    assert t.routers["r2"].interfaces == {"b": ip("10.0.1.254")}
    assert t.hosts["fixed"].ip == ip("10.0.0.2")
    assert t.hosts["free"].ip == ip("10.0.0.3")
    assert t.hosts["other"].ip == ip("10.0.1.2")
    # .4 is a decoy, so the group gets .5 and .6 (.7 is the broadcast address)
    assert [t.hosts[f"pc-{i}"].ip for i in (1, 2)] == [ip("10.0.0.5"), ip("10.0.0.6")]


def test_exhausting_a_segment_is_one_error_for_the_group() -> None:
    from testbed.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        topology(ADDRESSES)
    [diagnostic] = info.value.diagnostics
    assert "host 'pc-3'" in diagnostic.message and diagnostic.path == "groups.pc"


def test_address_assignment_is_deterministic() -> None:
    text = ADDRESSES.replace("count: 3", "count: 2")
    first, second = topology(text), topology(text)
    assert {n: h.ip for n, h in first.hosts.items()} == {n: h.ip for n, h in second.hosts.items()}
    assert len({h.ip for h in first.hosts.values()}) == len(first.hosts)
    assert first.used_addresses == {h.ip for h in first.hosts.values()} | {
        address for r in first.routers.values() for address in r.interfaces.values()}


def test_example_addresses_are_stable_across_loads() -> None:
    a = load_topology(REPO / "topologies" / "campus.yaml")
    b = load_topology(REPO / "topologies" / "campus.yaml")
    assert [(h.name, h.ip) for h in a.hosts.values()] == [(h.name, h.ip) for h in b.hosts.values()]


def test_lookups() -> None:
    t = topology(ADDRESSES.replace("count: 3", "count: 2"))
    assert t.host_by_ip[ip("10.0.0.3")].name == "free"
    assert t.contains_address("10.0.1.200") and not t.contains_address("10.0.2.1")
    assert t.cidrs == (ipaddress.IPv4Network("10.0.0.0/29"), ipaddress.IPv4Network("10.0.1.0/24"))
    assert [h.name for h in t.hosts_in("b")] == ["other"]
    assert [r.name for r in t.routers_on("b")] == ["r1", "r2"]
    assert t.decoys == (ip("10.0.0.4"),)


# ---- routes --------------------------------------------------------------------------------
CHAIN = """
name: chain
segments:
  a: {cidr: 10.0.1.0/24}
  b: {cidr: 10.0.2.0/24}
  c: {cidr: 10.0.3.0/24}
  island: {cidr: 10.0.9.0/24}
routers:
  r1: {segments: [a, b], default: allow}
  r2: {segments: [b, c], default: allow, addresses: {b: 10.0.2.2, c: 10.0.3.1}}
  lonely: {segments: [island]}
"""


def test_router_paths() -> None:
    t = topology(CHAIN)
    paths = t.router_paths
    assert paths[("a", "a")] == ()
    assert paths[("a", "b")] == ("r1",)
    assert paths[("a", "c")] == ("r1", "r2")
    assert paths[("c", "a")] == ("r2", "r1")
    assert paths[("a", "island")] is None and paths[("island", "c")] is None


def test_next_hop() -> None:
    t = topology(CHAIN)
    assert t.next_hop("a", "c") == ("r1", ip("10.0.1.1"))
    assert t.next_hop("c", "a") == ("r2", ip("10.0.3.1"))
    assert t.next_hop("b", "c") == ("r2", ip("10.0.2.2"))
    assert t.next_hop("a", "a") is None
    assert t.next_hop("a", "island") is None


def test_routes_for_router() -> None:
    t = topology(CHAIN)
    assert t.routes_for_router("r1") == {"c": ("b", ip("10.0.2.2"))}
    assert t.routes_for_router("r2") == {"a": ("b", ip("10.0.2.1"))}
    assert t.routes_for_router("lonely") == {}


def test_router_loops_are_refused_so_every_path_is_unique() -> None:
    # A shortcut a<->c next to a-r1-b-r2-c makes two paths; forward and return traffic could
    # then cross different stateful routers, so the loader refuses it.
    with pytest.raises(ValidationError, match="form a loop through segments a, b, c"):
        topology(CHAIN.replace("  lonely: {segments: [island]}",
                               "  shortcut: {segments: [a, c]}"))
