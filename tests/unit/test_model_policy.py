"""The reference policy semantics (testbed.policy.decide_flow) on small hand-made topologies."""

from __future__ import annotations

import pytest

from testbed.model import Topology
from testbed.model.load_topology import topology_from_document
from testbed.policy import Block, ContainmentState, decide_flow, host_can_reach_service
from testbed.yamlsource import parse_yaml_text

OFFICE = """
name: office
segments:
  users: {cidr: 10.0.1.0/24}
  servers: {cidr: 10.0.2.0/24}
  vault: {cidr: 10.0.3.0/24}
  island: {cidr: 10.0.9.0/24}
groups:
  pc: {count: 3, segment: users}
hosts:
  admin: {segment: users}
  files: {segment: servers, services: [{name: smb, vulns: [MOCK-SMB-1]}]}
  web: {segment: servers, services: [{name: http}]}
  db:
    segment: vault
    tier: crown-jewel
    services: [{name: sql}]
    firewall:
      default: deny
      rules:
        - {action: allow, from: web, ports: 3306, proto: tcp}
        - {action: deny, from: servers}
        - {action: allow, from: admin}
  hermit: {segment: island}
routers:
  core:
    segments: [users, servers]
    default: deny
    rules:
      - {action: deny, from: pc-3, to: files}
      - {action: allow, from: pc, to: files, ports: 445, proto: tcp}
      - {action: allow, from: users, to: web, ports: ["80-90"], proto: tcp}
      - {action: allow, from: admin, to: [servers, vault]}
      - {action: allow, from: users, to: servers, proto: icmp}
  inner:
    segments: [servers, vault]
    default: allow
    rules:
      - {action: deny, from: users, to: vault, proto: udp}
"""


@pytest.fixture(scope="module")
def office() -> Topology:
    return topology_from_document(parse_yaml_text(OFFICE, "office.yaml"))


def flow(t: Topology, source: str, destination: str, port: int | None, proto: str = "tcp",
         state: ContainmentState | None = None):  # type: ignore[no-untyped-def]
    target = t.hosts[destination].ip if destination in t.hosts else destination
    return decide_flow(t, t.hosts[source], target, port, proto, state)


def test_same_segment_crosses_no_router(office: Topology) -> None:
    verdict = flow(office, "pc-1", "pc-2", 445)
    assert verdict and verdict.routers == () and "same segment" in verdict.reason


def test_allow_rule_with_ports(office: Topology) -> None:
    verdict = flow(office, "pc-1", "files", 445)
    assert verdict.allowed and verdict.routers == ("core",)
    assert not flow(office, "pc-1", "files", 22)
    assert not flow(office, "pc-1", "files", 445, "udp")


def test_first_match_wins(office: Topology) -> None:
    verdict = flow(office, "pc-3", "files", 445)
    assert not verdict and "rule 1: deny pc-3 -> files" in verdict.reason


def test_port_ranges_are_inclusive(office: Topology) -> None:
    assert flow(office, "pc-1", "web", 80) and flow(office, "pc-1", "web", 90)
    assert not flow(office, "pc-1", "web", 91) and not flow(office, "pc-1", "web", 79)


def test_default_deny_is_explained(office: Topology) -> None:
    verdict = flow(office, "files", "pc-1", 445)
    assert not verdict and verdict.reason == "core denies (default deny)"


def test_icmp_rule_and_rules_with_ports_ignore_icmp_ports(office: Topology) -> None:
    assert flow(office, "pc-1", "files", None, "icmp")
    assert not flow(office, "files", "pc-1", None, "icmp")


def test_every_router_on_the_path_must_allow(office: Topology) -> None:
    # users -> vault crosses core, then inner; core stops pc-1 first.
    verdict = flow(office, "pc-1", "db", 3306)
    assert not verdict and verdict.reason.startswith("core denies")
    assert verdict.routers == ("core", "inner")  # the path, in crossing order
    # admin passes core, and inner's rule stops udp from users to the vault.
    verdict = flow(office, "admin", "db", 53, "udp")
    assert not verdict and verdict.reason.startswith("inner denies (rule 1: deny users -> vault")
    # admin over tcp: core allows, inner allows by default, db's firewall allows admin (rule 3).
    assert flow(office, "admin", "db", 3306)
    # web -> db: inner allows by default, then the host firewall allows web on 3306.
    verdict = flow(office, "web", "db", 3306)
    assert verdict and verdict.routers == ("inner",)


def test_host_firewall_first_match_and_default(office: Topology) -> None:
    assert not flow(office, "web", "db", 22)  # rule 2: deny from servers
    verdict = flow(office, "files", "db", 3306)
    assert not verdict and "db's host firewall denies (rule 2: deny servers" in verdict.reason


def test_host_firewall_applies_on_the_same_segment() -> None:
    t = topology_from_document(parse_yaml_text("""
name: fw
segments: {lan: {cidr: 10.0.0.0/24}}
hosts:
  a: {segment: lan}
  b: {segment: lan}
  jewel: {segment: lan, firewall: {default: deny, rules: [{action: allow, from: a}]}}
""", "fw.yaml"))
    assert flow(t, "a", "jewel", 1) and not flow(t, "b", "jewel", 1)
    assert "default deny" in flow(t, "b", "jewel", 1).reason


def test_outside_the_topology_and_no_route(office: Topology) -> None:
    outside = flow(office, "pc-1", "192.168.77.1", 80)
    assert not outside and "outside the topology" in outside.reason
    unrouted = flow(office, "pc-1", "hermit", 80)
    assert not unrouted and "no route" in unrouted.reason


def test_unused_address_follows_the_segment_policy(office: Topology) -> None:
    """Darknet probes to unused addresses are judged by routers (no host firewall there)."""
    assert flow(office, "pc-1", "10.0.1.200", 445)
    assert not flow(office, "files", "10.0.1.200", 445)


def test_quarantine_drops_both_directions(office: Topology) -> None:
    state = ContainmentState(quarantined={"pc-1"})
    assert not flow(office, "pc-1", "pc-2", 445, state=state)
    verdict = flow(office, "pc-2", "pc-1", 445, state=state)
    assert not verdict and verdict.reason == "pc-1 is quarantined"
    assert flow(office, "pc-2", "pc-3", 445, state=state)


def test_blocks_match_source_destination_port_and_proto(office: Topology) -> None:
    state = ContainmentState(blocks=[Block(source="pc-1", destination="10.0.2.0/24", port=445,
                                           proto="tcp")])
    assert not flow(office, "pc-1", "files", 445, state=state)
    assert flow(office, "pc-2", "files", 445, state=state)
    assert flow(office, "pc-1", "web", 80, state=state)
    any_block = ContainmentState(blocks=[Block(destination="files")])
    assert not flow(office, "pc-2", "files", 445, state=any_block)


def test_containment_state_copy_is_independent() -> None:
    state = ContainmentState(quarantined={"a"}, blocks=[Block()], rate_limited={"a": 1.0})
    copy = state.copy()
    copy.quarantined.add("b")
    copy.blocks.clear()
    assert state.quarantined == {"a"} and len(state.blocks) == 1


def test_host_can_reach_service(office: Topology) -> None:
    pc, files = office.hosts["pc-1"], office.hosts["files"]
    assert host_can_reach_service(office, pc, files, [(22, "tcp"), (445, "tcp")])
    assert not host_can_reach_service(office, pc, files, [(22, "tcp")])
