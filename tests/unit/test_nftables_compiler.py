"""The nftables compiler agrees with testbed.policy (its intermediate form, evaluated in Python).

The privileged tier then checks the same agreement with real packets (tests/privileged).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.backends.fabric.ruleset import (
    EGRESS_COUNTER,
    NftRule,
    _merge_ports,
    block_rules,
    compile_firewall,
    containment_update,
    fabric_ruleset,
    host_ruleset,
    quarantine_update,
    router_ruleset,
    topology_networks,
)
from testbed.errors import BackendError
from testbed.model.load_topology import topology_from_document
from testbed.model.topology import Endpoint, Rule, Topology
from testbed.policy import Block, ContainmentState
from testbed.yamlsource import parse_yaml_text

POLICY_TOPOLOGY = """
name: policy-mix
segments:
  office: {cidr: 10.10.1.0/24}
  lab: {cidr: 10.10.2.0/24}
  servers: {cidr: 10.10.3.0/24}
  dmz: {cidr: 172.16.5.0/24}
defaults:
  services: [{name: ssh}]
hosts:
  boss: {segment: office, services: [{name: rdp}, {name: smb}]}
  web: {segment: dmz, services: [{name: http}, {name: generic, port: 9000}]}
  db:
    segment: servers
    services: [{name: sql}, {name: vpn}]
    firewall:
      default: deny
      rules:
        - {action: allow, from: app, ports: [3306]}
        - {action: deny, from: 10.10.2.0/25, proto: udp}
        - {action: allow, from: [lab, boss], proto: any}
groups:
  pc: {count: 3, segment: office, services: [{name: smb}, {name: http, port: 8080}]}
  student: {count: 3, segment: lab, services: [{name: rdp}]}
  app: {count: 2, segment: servers, services: [{name: http}, {name: vpn}]}
routers:
  core:
    segments: [office, lab, servers]
    default: deny
    rules:
      - {action: deny, from: student-1, to: servers, ports: [3306]}
      - action: allow
        from: [office, lab]
        to: app
        ports: ["80", "1000-2000", "3306"]
        proto: tcp
      - {action: allow, from: office, to: lab, proto: any}
      - {action: allow, from: 10.10.2.0/25, to: db, proto: udp}
      - {action: allow, from: servers, to: any, proto: udp}
      - {action: allow, from: lab, to: servers, ports: [22]}
      - {action: allow, from: any, to: office, proto: icmp}
  edge:
    segments: [servers, dmz]
    default: allow
    rules:
      - {action: deny, from: dmz, to: servers, ports: ["22", "9000-9100"]}
      - {action: deny, from: app-2, to: web, proto: tcp}
"""


@functools.cache
def load(text: str) -> Topology:
    return topology_from_document(parse_yaml_text(text, "<test>"))


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load(POLICY_TOPOLOGY)


def first_verdict(rules: list[NftRule], default: str, source: ipaddress.IPv4Address,
                  destination: ipaddress.IPv4Address, port: int | None, proto: str) -> str:
    for rule in rules:
        if rule.matches(source, destination, port, proto):
            return "allow" if rule.verdict == "accept" else "deny"
    return default


def interesting_flows(topology: Topology) -> list[tuple[ipaddress.IPv4Address, int | None, str]]:
    """Destinations and ports that sit on and around every boundary the rules draw."""
    addresses = [h.ip for h in topology.hosts.values()]
    addresses += [ipaddress.IPv4Address("10.10.2.200"), ipaddress.IPv4Address("10.10.3.250")]
    ports: list[int | None] = [22, 79, 80, 81, 999, 1000, 1500, 2000, 2001, 3306, 8080, 9000,
                               9100, 9101, 1194]
    flows: list[tuple[ipaddress.IPv4Address, int | None, str]] = []
    for address in addresses:
        flows += [(address, port, proto) for port in ports for proto in ("tcp", "udp")]
        flows.append((address, None, "icmp"))
    return flows


def test_router_rules_agree_with_router_decide(topology: Topology) -> None:
    checked = 0
    for router in topology.routers.values():
        compiled = compile_firewall(router.rules)
        for source_host, (destination, port, proto) in itertools.product(
                topology.hosts.values(), interesting_flows(topology)):
            expected, _rule = router.decide(source_host.ip, destination, port, proto)
            got = first_verdict(compiled, router.default, source_host.ip, destination, port,
                                proto)
            assert got == expected, (router.name, source_host.name, destination, port, proto)
            checked += 1
    assert checked > 1000


def test_host_firewall_agrees_with_policy(topology: Topology) -> None:
    db = topology.hosts["db"]
    compiled = compile_firewall(db.firewall.rules)
    for source in topology.hosts.values():
        for port, proto in itertools.product([22, 3306, 1194, 80, None],
                                             ["tcp", "udp", "icmp"]):
            action = db.firewall.default
            for rule in db.firewall.rules:
                if rule.matches(source.ip, db.ip, port, proto):
                    action = rule.action
                    break
            got = first_verdict(compiled, db.firewall.default, source.ip, db.ip, port, proto)
            assert got == action, (source.name, port, proto)


@settings(max_examples=300, deadline=None)
@given(source=st.integers(0, 255), destination=st.integers(0, 255),
       port=st.one_of(st.none(), st.integers(1, 65535)),
       proto=st.sampled_from(["tcp", "udp", "icmp", "sctp"]))
def test_random_flows_agree(source: int, destination: int, port: int | None, proto: str) -> None:
    topology = load(POLICY_TOPOLOGY)
    src = ipaddress.IPv4Address(f"10.10.{1 + source % 3}.{source}")
    dst = ipaddress.IPv4Address(f"10.10.{1 + destination % 3}.{destination}")
    for router in topology.routers.values():
        expected, _ = router.decide(src, dst, port, proto)
        assert first_verdict(compile_firewall(router.rules), router.default, src, dst, port,
                             proto) == expected


def test_any_protocol_with_ports_also_matches_icmp(topology: Topology) -> None:
    rule = next(r for r in topology.routers["edge"].rules if r.ports and r.proto == "any")
    compiled = compile_firewall([rule])
    assert [c.protocols for c in compiled] == [("tcp", "udp"), ("icmp",)]
    assert compiled[1].ports is None


def test_rule_naming_nothing_compiles_to_nothing() -> None:
    nowhere = Endpoint("no-members", ())
    rule = Rule("allow", (nowhere,), (Endpoint("any", (ipaddress.IPv4Network("0.0.0.0/0"),)),),
                None, "any", 0)
    assert compile_firewall([rule]) == []


def test_port_ranges_are_merged_for_nft() -> None:
    assert _merge_ports([(80, 80), (1000, 2000), (1500, 2500), (81, 81), (3306, 3306)]) == (
        (80, 81), (1000, 2500), (3306, 3306))


def test_router_ruleset_text(topology: Topology) -> None:
    text = router_ruleset(topology, topology.routers["core"], "testbed_tab12")
    assert "type filter hook forward priority 0; policy drop;" in text
    assert "ct state established,related accept" in text
    assert f"ip daddr != @topology_nets counter name {EGRESS_COUNTER} drop" in text
    assert "th dport { 80, 1000-2000, 3306 }" in text
    assert "delete table" not in text
    replaced = router_ruleset(topology, topology.routers["core"], "t", replace=True)
    assert replaced.startswith("table inet t\ndelete table inet t\n")
    # Rule order is kept (first match wins): the student-1 deny precedes the app allow.
    assert text.index("ip saddr 10.10.2.") < text.index("meta l4proto tcp th dport {")


def test_host_ruleset_guards_and_firewall(topology: Topology) -> None:
    open_host = host_ruleset(topology, topology.hosts["boss"], "t")
    assert "egress_guard" in open_host and "host_firewall" not in open_host
    assert "meta nfproto ipv6 counter name egress_dropped drop" in open_host
    guarded = host_ruleset(topology, topology.hosts["db"], "t")
    assert "type filter hook input priority 0; policy drop;" in guarded
    networks = ", ".join(str(n) for n in topology_networks(topology))
    assert networks in guarded


def test_blocks_follow_block_matches(topology: Topology) -> None:
    hosts = list(topology.hosts.values())
    blocks = [Block("pc-1"), Block("pc-1", "db", 3306, "tcp"), Block("any", "10.10.3.0/24"),
              Block("student-2", "any", 22, "any"), Block("boss", "web", None, "icmp"),
              Block("boss", "web", 80, "icmp")]
    for block in blocks:
        compiled = block_rules(topology, block)
        for source in hosts:
            for destination, port, proto in interesting_flows(topology):
                expected = block.matches(topology, source, destination, port, proto)
                got = any(rule.matches(source.ip, destination, port, proto)
                          for rule in compiled)
                assert got == expected, (block, source.name, destination, port, proto)


def test_block_validation(topology: Topology) -> None:
    with pytest.raises(BackendError, match="neither a host"):
        block_rules(topology, Block("no-such-host"))
    with pytest.raises(BackendError, match="protocol"):
        block_rules(topology, Block("pc-1", proto="gre"))


def test_containment_update_is_one_transaction(topology: Topology) -> None:
    state = ContainmentState(blocks=[Block("pc-1", "db", 3306, "tcp")],
                             rate_limited={"pc-2": 0.5, "pc-3": 20})
    text = containment_update(topology, "t", state, {"office": "tabs0", "lab": "tabs1",
                                                     "servers": "tabs2", "dmz": "tabs3"})
    lines = text.strip().splitlines()
    assert lines[0] == "flush chain inet t containment"
    assert any("ct state new ip saddr 10.10.1." in line and "th dport 3306 drop" in line
               for line in lines)
    assert any('iifname "tabs0"' in line and "30/minute" in line for line in lines)
    assert any("20/second" in line for line in lines)
    assert quarantine_update("t", "tabh3", add=True) == (
        'add element bridge t quarantined_ports { "tabh3" }\n')


def test_fabric_ruleset_has_quarantine_and_guard(topology: Topology) -> None:
    text = fabric_ruleset(topology, "t", quarantined_ports=["tabh1"])
    assert "table bridge t {" in text and "table inet t {" in text
    assert 'elements = { "tabh1" }' in text
    assert "iifname @quarantined_ports" in text and "oifname @quarantined_ports" in text
    assert text.index("ct state established,related accept") < text.index("jump containment")
