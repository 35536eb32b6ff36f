"""The compiled nftables policy agrees with testbed.policy.decide_flow, packet for packet.

One topology whose rules name segments, groups, hosts and CIDRs, with ports, port ranges, every
protocol, a default-allow and a default-deny router and host firewalls; every (host, service)
pair is probed for real, with and without run-time blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from testbed.reach import measure_reachability

POLICY_TOPOLOGY = """
name: policy-mix
segments:
  office: {cidr: 10.88.1.0/24}
  lab: {cidr: 10.88.2.0/24}
  servers: {cidr: 10.88.3.0/24}
  dmz: {cidr: 172.16.88.0/24}
defaults:
  services: [{name: ssh}]
hosts:
  boss: {segment: office, services: [{name: rdp}, {name: smb}]}
  web: {segment: dmz, services: [{name: http}, {name: generic, port: 9050}, {name: vpn}]}
  db:
    segment: servers
    services: [{name: sql}, {name: vpn}, {name: ssh}]
    firewall:
      default: deny
      rules:
        - {action: allow, from: app, ports: [3306]}
        - {action: deny, from: 10.88.2.0/25, proto: udp}
        - {action: allow, from: [lab, boss], proto: any}
groups:
  pc: {count: 3, segment: office, services: [{name: smb}, {name: http, port: 8080}]}
  student: {count: 3, segment: lab, services: [{name: rdp}, {name: vpn}]}
  app:
    count: 2
    segment: servers
    services: [{name: http}, {name: vpn}, {name: generic, port: 1500}]
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
      - {action: allow, from: 10.88.2.0/25, to: db, proto: udp}
      - {action: allow, from: servers, to: any, proto: udp}
      - {action: allow, from: lab, to: servers, ports: [22]}
      - {action: allow, from: boss, to: db}
  edge:
    segments: [servers, dmz]
    default: allow
    rules:
      - {action: deny, from: dmz, to: servers, ports: ["22", "9000-9100"]}
      - {action: deny, from: app-2, to: web, proto: tcp}
"""


def test_every_pair_agrees_with_decide_flow(deploy: Callable[..., Any]) -> None:
    deployment = deploy(POLICY_TOPOLOGY)
    report = measure_reachability(deployment)
    assert report.ok, report.describe_mismatches()
    reachable = sum(o.reachable for o in report.outcomes)
    # Both answers occur, over TCP and UDP: the agreement is not trivially all-or-nothing.
    assert 0 < reachable < len(report.outcomes)
    assert {o.probe.proto for o in report.outcomes if o.reachable} == {"tcp", "udp"}
    assert {o.probe.proto for o in report.outcomes if not o.reachable} == {"tcp", "udp"}


def test_agreement_holds_under_blocks(deploy: Callable[..., Any]) -> None:
    deployment = deploy(POLICY_TOPOLOGY)
    deployment.block("pc-1", "any", 1500, "tcp")
    deployment.block("any", "10.88.2.0/24", None, "udp")
    deployment.block("boss", "db")
    report = measure_reachability(deployment, sources=["pc-1", "pc-2", "boss", "app-1",
                                                       "student-2"])
    assert report.ok, report.describe_mismatches()
    blocked = {(o.probe.source, o.probe.target, o.probe.port) for o in report.outcomes
               if not o.reachable}
    assert ("pc-1", "app-1", 1500) in blocked and ("pc-2", "app-1", 1500) not in blocked
