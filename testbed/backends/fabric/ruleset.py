"""Policy compiler: a resolved Topology plus ContainmentState become nftables ruleset text.

Owns: translating router rules, host firewalls, egress guards and run-time containment
(quarantine, blocks, rate limits) into ``nft -f`` text, through a small intermediate form
(:class:`NftRule`) that unit tests evaluate against :func:`testbed.policy.decide_flow`, the single
reference semantics. Pure text: it never loads anything into the kernel, knows nothing of
namespaces or containers; the fabric loads it (:mod:`testbed.kernel.nftables`) for every node
runtime alike.

Where each piece is enforced (the backends put the text there):

- every host namespace: table ``inet <table>`` with the *egress guard* (drops and counts packets
  to non-topology destinations, and all IPv6) and, when the host has one, its inbound firewall;
- every router namespace: the same guard, plus a guard on forwarded traffic from or to
  non-topology addresses, and the router's forward policy (stateful: established and related
  packets pass, new ones meet the rules, first match wins, else the router's default);
- the fabric (where the segment bridges live): table ``bridge <table>`` drops every frame from or
  to a quarantined host's bridge port (ARP included, so same-segment traffic is cut too), and
  table ``inet <table>`` (bridged IPv4 through br_netfilter) holds the blocks and rate limits,
  stateful so that they only stop *new* flows, as :class:`testbed.policy.Block` says.

Each ruleset is one ``nft -f`` transaction; with ``replace=True`` it first declares and deletes
its table, so loading it again replaces the old one atomically.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from testbed.errors import BackendError
from testbed.model.topology import Host, Router, Rule, Topology
from testbed.policy import Block, ContainmentState

__all__ = [
    "EGRESS_COUNTER",
    "QUARANTINE_COUNTER",
    "QUARANTINE_SET",
    "NftRule",
    "block_rules",
    "compile_firewall",
    "compile_rule",
    "containment_rules",
    "containment_update",
    "fabric_ruleset",
    "host_ruleset",
    "quarantine_update",
    "rate_limit_rules",
    "router_ruleset",
    "topology_networks",
]

EGRESS_COUNTER = "egress_dropped"
"""Named counter in every host and router table: packets the egress guard dropped."""
QUARANTINE_SET = "quarantined_ports"
"""Set of bridge-port interface names in the fabric's bridge table."""
CONTAINMENT_CHAIN = "containment"
QUARANTINE_COUNTER = "quarantine_dropped"
"""Named counter in the fabric's bridge table: frames dropped at quarantined ports."""
STRAY_COUNTER = "stray_dropped"

Network = ipaddress.IPv4Network
PortRanges = tuple[tuple[int, int], ...]


# ---- the intermediate form -------------------------------------------------------------------
@dataclass(frozen=True)
class NftRule:
    """One nft rule: every present match must hold. ``None`` means "any"."""

    verdict: str  # "accept" or "drop"
    sources: tuple[Network, ...] | None = None
    destinations: tuple[Network, ...] | None = None
    protocols: tuple[str, ...] | None = None  # l4 protocol names: tcp, udp, icmp
    ports: PortRanges | None = None  # destination ports (only with tcp/udp protocols)

    def matches(self, source: ipaddress.IPv4Address, destination: ipaddress.IPv4Address,
                port: int | None, proto: str) -> bool:
        """What the rendered rule does to the first packet of a flow (for tests)."""
        if self.sources is not None and not any(source in n for n in self.sources):
            return False
        if self.destinations is not None and not any(destination in n for n in self.destinations):
            return False
        if self.protocols is not None and proto not in self.protocols:
            return False
        if self.ports is not None:
            if port is None or not any(low <= port <= high for low, high in self.ports):
                return False
        return True

    def render(self, prefix: str = "") -> str:
        parts = [prefix] if prefix else []
        if self.sources is not None:
            parts.append(f"ip saddr {_set(_network_text(n) for n in self.sources)}")
        if self.destinations is not None:
            parts.append(f"ip daddr {_set(_network_text(n) for n in self.destinations)}")
        if self.protocols is not None:
            parts.append(f"meta l4proto {_set(self.protocols)}")
        if self.ports is not None:
            parts.append(f"th dport {_set(_port_text(r) for r in self.ports)}")
        if len(parts) == (1 if prefix else 0):
            parts.append("meta nfproto ipv4")
        parts.append(self.verdict)
        return " ".join(parts)


def _set(items: Iterable[str]) -> str:
    values = list(items)
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _network_text(network: Network) -> str:
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def _port_text(port_range: tuple[int, int]) -> str:
    low, high = port_range
    return str(low) if low == high else f"{low}-{high}"


def _merge_ports(ranges: Iterable[tuple[int, int]]) -> PortRanges:
    """Sorted, non-overlapping, non-adjacent ranges (nft refuses overlapping set intervals)."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def _collapse(networks: Iterable[Network]) -> tuple[Network, ...]:
    return tuple(ipaddress.collapse_addresses(networks))


# ---- policy rules ----------------------------------------------------------------------------
def _endpoint_networks(endpoints: Sequence[object]) -> tuple[Network, ...] | bool | None:
    """Networks of a rule side; None for "any"; False when it can never match (empty group)."""
    networks: list[Network] = []
    for endpoint in endpoints:
        if getattr(endpoint, "is_any", False):
            return None
        networks.extend(getattr(endpoint, "networks", ()))
    if not networks:
        return False
    collapsed = _collapse(networks)
    if collapsed == (ipaddress.IPv4Network("0.0.0.0/0"),):
        return None
    return collapsed


def compile_rule(rule: Rule) -> list[NftRule]:
    """The nft rules equivalent to one policy rule (:meth:`Rule.matches` is the reference).

    A rule with ports and protocol ``any`` matches TCP and UDP on those ports, and every ICMP
    packet (ICMP has no ports), exactly as :meth:`Rule.matches` does.
    """
    sources = _endpoint_networks(rule.sources)
    destinations = _endpoint_networks(rule.destinations)
    if sources is False or destinations is False:
        return []  # an empty group: the rule matches nothing
    assert sources is not True and destinations is not True
    verdict = "accept" if rule.action == "allow" else "drop"
    ports = None if rule.ports is None else _merge_ports(rule.ports)

    def make(protocols: tuple[str, ...] | None, with_ports: PortRanges | None) -> NftRule:
        return NftRule(verdict, sources, destinations, protocols, with_ports)  # type: ignore[arg-type]

    if rule.proto == "any":
        if ports is None:
            return [make(None, None)]
        return [make(("tcp", "udp"), ports), make(("icmp",), None)]
    if rule.proto == "icmp":
        return [make(("icmp",), None)]
    return [make((rule.proto,), ports)]


def compile_firewall(rules: Sequence[Rule]) -> list[NftRule]:
    """First match wins: rule order is kept; the chain policy carries the default."""
    compiled: list[NftRule] = []
    for rule in rules:
        compiled.extend(compile_rule(rule))
    return compiled


def topology_networks(topology: Topology) -> tuple[Network, ...]:
    """Every segment CIDR, collapsed: the whole address space a deployment may use."""
    return _collapse(topology.cidrs)


def _elements(networks: Iterable[Network]) -> str:
    return ", ".join(_network_text(n) for n in networks)


def _guard_definitions(topology: Topology) -> list[str]:
    return [
        "  set topology_nets {",
        "    type ipv4_addr; flags interval;",
        f"    elements = {{ {_elements(topology_networks(topology))} }}",
        "  }",
        f"  counter {EGRESS_COUNTER} {{ }}",
        "  chain egress_guard {",
        "    type filter hook output priority -10; policy accept;",
        '    oifname "lo" accept',
        f"    meta nfproto ipv6 counter name {EGRESS_COUNTER} drop",
        f"    ip daddr != @topology_nets counter name {EGRESS_COUNTER} drop",
        "  }",
        "  chain ingress_guard {",
        "    type filter hook input priority -10; policy accept;",
        '    iifname "lo" accept',
        "    meta nfproto ipv6 drop",
        "    ip saddr != @topology_nets drop",
        "  }",
    ]


def _table(family: str, table: str, body: list[str], replace: bool) -> str:
    # With ``replace``, declaring then deleting first makes the load idempotent (one
    # transaction). Only then: deleting a table makes the kernel wait for an RCU grace period
    # (about 10 ms) when the nft socket closes, which would dominate a fresh deployment.
    preamble = [f"table {family} {table}", f"delete table {family} {table}"] if replace else []
    return "\n".join([*preamble, f"table {family} {table} {{", *body, "}", ""])


def host_ruleset(topology: Topology, host: Host, table: str, *, replace: bool = False) -> str:
    """The ruleset of one host's namespace: egress guard and the host's inbound firewall."""
    body = _guard_definitions(topology)
    if not host.firewall.is_open:
        policy = "accept" if host.firewall.default == "allow" else "drop"
        body += [
            "  chain host_firewall {",
            f"    type filter hook input priority 0; policy {policy};",
            '    iifname "lo" accept',
            "    ct state established,related accept",
            *(f"    {rule.render()}" for rule in compile_firewall(host.firewall.rules)),
            "  }",
        ]
    return _table("inet", table, body, replace)


def router_ruleset(topology: Topology, router: Router, table: str, *,
                   replace: bool = False) -> str:
    """The ruleset of one router's namespace: guards and its stateful forward policy."""
    policy = "accept" if router.default == "allow" else "drop"
    body = [
        *_guard_definitions(topology),
        "  chain forward {",
        f"    type filter hook forward priority 0; policy {policy};",
        f"    meta nfproto ipv6 counter name {EGRESS_COUNTER} drop",
        f"    ip saddr != @topology_nets counter name {EGRESS_COUNTER} drop",
        f"    ip daddr != @topology_nets counter name {EGRESS_COUNTER} drop",
        "    ct state established,related accept",
        *(f"    {rule.render()}" for rule in compile_firewall(router.rules)),
        "  }",
        # A router's own addresses offer no service: new connections to it are dropped, as
        # testbed.policy.decide_flow says (the worm probing a gateway sees silence).
        "  chain router_input {",
        "    type filter hook input priority 0; policy drop;",
        '    iifname "lo" accept',
        "    ct state established,related accept",
        "  }",
    ]
    return _table("inet", table, body, replace)


# ---- the fabric: quarantine, blocks, rate limits ---------------------------------------------
def fabric_ruleset(topology: Topology, table: str, *, quarantined_ports: Iterable[str] = (),
                   containment_rules: Iterable[str] = (), replace: bool = False) -> str:
    """Both fabric tables: bridge-level quarantine and the (stateful) containment chain."""
    ports = sorted(quarantined_ports)
    quarantine_elements = (f"    elements = {{ {', '.join(_quote(p) for p in ports)} }}"
                           if ports else "")
    bridge = [
        f"  set {QUARANTINE_SET} {{",
        "    type ifname;",
        *([quarantine_elements] if quarantine_elements else []),
        "  }",
        f"  counter {QUARANTINE_COUNTER} {{ }}",
        "  chain forward {",
        "    type filter hook forward priority -200; policy accept;",
        f"    iifname @{QUARANTINE_SET} counter name {QUARANTINE_COUNTER} drop",
        f"    oifname @{QUARANTINE_SET} counter name {QUARANTINE_COUNTER} drop",
        "  }",
    ]
    inet = [
        "  set topology_nets {",
        "    type ipv4_addr; flags interval;",
        f"    elements = {{ {_elements(topology_networks(topology))} }}",
        "  }",
        f"  counter {STRAY_COUNTER} {{ }}",
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        f"    ip saddr != @topology_nets counter name {STRAY_COUNTER} drop",
        f"    ip daddr != @topology_nets counter name {STRAY_COUNTER} drop",
        # Conntrack runs from the start, so a flow that predates a block stays established
        # (blocks stop new flows only) instead of being picked up mid-stream as "new".
        "    ct state established,related accept",
        f"    jump {CONTAINMENT_CHAIN}",
        "  }",
        f"  chain {CONTAINMENT_CHAIN} {{",
        *(f"    {line}" for line in containment_rules),
        "  }",
    ]
    return _table("bridge", table, bridge, replace) + _table("inet", table, inet, replace)


def _quote(name: str) -> str:
    return f'"{name}"'


def quarantine_update(table: str, port: str, *, add: bool) -> str:
    """One atomic set-element change: cut (or restore) every frame of a host's bridge port."""
    verb = "add" if add else "delete"
    return f"{verb} element bridge {table} {QUARANTINE_SET} {{ {_quote(port)} }}\n"


def _resolve_endpoint(topology: Topology, endpoint: str) -> tuple[Network, ...] | None:
    if endpoint == "any":
        return None
    if endpoint in topology.hosts:
        return (ipaddress.IPv4Network(topology.hosts[endpoint].ip),)
    try:
        return (ipaddress.IPv4Network(endpoint, strict=False),)
    except ValueError:
        raise BackendError(f"{endpoint!r} is neither a host of topology {topology.name!r}, a "
                           "CIDR, nor 'any'") from None


def block_rules(topology: Topology, block: Block) -> list[NftRule]:
    """Rules that drop the flows :meth:`Block.matches` names (put behind ``ct state new``)."""
    sources = _resolve_endpoint(topology, block.source)
    destinations = _resolve_endpoint(topology, block.destination)
    if block.proto not in ("any", "tcp", "udp", "icmp"):
        raise BackendError(f"unknown protocol {block.proto!r} (use tcp, udp, icmp or any)")
    if block.port is not None and not 1 <= block.port <= 65535:
        raise BackendError(f"port {block.port} is not within 1-65535")
    ports = None if block.port is None else ((block.port, block.port),)
    if block.proto == "any":
        protocols: tuple[str, ...] | None = None if ports is None else ("tcp", "udp")
    elif block.proto == "icmp":
        if ports is not None:
            return []  # ICMP has no ports: Block.matches never matches such a block
        protocols = ("icmp",)
    else:
        protocols = (block.proto,)
    return [NftRule("drop", sources, destinations, protocols, ports)]


def rate_limit_rules(topology: Topology, host: str, per_second: float,
                     bridge_of_segment: Mapping[str, str]) -> list[str]:
    """Limit new flows a host starts, counted once: where they enter its own segment's bridge."""
    if per_second <= 0:
        raise BackendError(f"rate limit must be positive, not {per_second}")
    if per_second >= 1:
        rate = f"{round(per_second)}/second"
    else:
        rate = f"{max(1, round(per_second * 60))}/minute"
    address = topology.hosts[host].ip
    bridge = bridge_of_segment[topology.hosts[host].segment]
    return [f'ct state new iifname "{bridge}" ip saddr {address} limit rate over {rate} drop']


def containment_rules(topology: Topology, state: ContainmentState,
                      bridge_of_segment: Mapping[str, str]) -> list[str]:
    """The fabric containment chain's rules for the blocks and rate limits in ``state``."""
    lines: list[str] = []
    for block in state.blocks:
        lines.extend(rule.render("ct state new") for rule in block_rules(topology, block))
    for host, per_second in sorted(state.rate_limited.items()):
        lines.extend(rate_limit_rules(topology, host, per_second, bridge_of_segment))
    return lines


def containment_update(topology: Topology, table: str, state: ContainmentState,
                       bridge_of_segment: Mapping[str, str]) -> str:
    """One atomic transaction that replaces the fabric containment chain's rules."""
    lines = [f"flush chain inet {table} {CONTAINMENT_CHAIN}"]
    lines += [f"add rule inet {table} {CONTAINMENT_CHAIN} {rule}"
              for rule in containment_rules(topology, state, bridge_of_segment)]
    return "\n".join(lines) + "\n"
