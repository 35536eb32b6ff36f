#!/usr/bin/env python3
"""Deploy and teardown time of synthetic topologies, and containment action latency.

Usage (root)::

    python benchmarks/deploy.py [--backend netns] [--sizes 10,50,200,500] [--actions 50] [--json]

For every size it builds a topology in memory (four segments, two routers with rules, a few
host firewalls), deploys it under a private state directory, times quarantine/release and
block/unblock (ActionTiming.seconds: call -> kernel commit) and tears it down. Prints one line
per size; ``--json`` prints the same as JSON. Yardsticks: Mininet starts 200 hosts in 35-75 s;
200 bare namespaces with one ``ip`` process per step take 2.5 s on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import yaml

from testbed.backends import get_backend
from testbed.model.load_topology import topology_from_document
from testbed.model.topology import Topology
from testbed.yamlsource import parse_yaml_text


def synthetic_topology(hosts: int) -> Topology:
    """``hosts`` hosts over four segments, two routers with rules naming segments, groups,
    hosts, CIDRs, port ranges and protocols, and host firewalls on the servers."""
    servers = max(2, hosts // 20)
    remaining = hosts - servers
    office, lab, dmz = remaining // 2, remaining // 3, remaining - remaining // 2 - remaining // 3
    data: dict[str, Any] = {
        "name": f"synthetic-{hosts}",
        "description": "benchmark topology generated in memory",
        "segments": {
            "office": {"cidr": "10.60.0.0/21"}, "lab": {"cidr": "10.61.0.0/21"},
            "servers": {"cidr": "10.62.0.0/24"}, "dmz": {"cidr": "10.63.0.0/21"},
        },
        "defaults": {"services": [{"name": "smb", "vulns": ["MOCK-SMB-1"]}, {"name": "ssh"}]},
        "groups": {
            "pc": {"count": office, "segment": "office"},
            "student": {"count": lab, "segment": "lab", "services": [{"name": "rdp"}]},
            "srv": {"count": servers, "segment": "servers", "tier": "server",
                    "services": [{"name": "http"}, {"name": "sql"}, {"name": "vpn"}],
                    "firewall": {"default": "deny", "rules": [
                        {"action": "allow", "from": "office", "ports": ["80", "3306"]},
                        {"action": "allow", "from": "10.61.0.0/22", "proto": "tcp"},
                        {"action": "allow", "from": "any", "proto": "udp"}]}},
            "web": {"count": dmz, "segment": "dmz", "services": [{"name": "http"}]},
        },
        "routers": {
            "core": {"segments": ["office", "lab", "servers"], "default": "deny", "rules": [
                {"action": "deny", "from": "lab", "to": "servers", "ports": ["3306"]},
                {"action": "allow", "from": ["office", "lab"], "to": "srv",
                 "ports": ["80", "1000-4000"], "proto": "tcp"},
                {"action": "allow", "from": "office", "to": "lab", "proto": "any"},
                {"action": "allow", "from": "servers", "to": "any", "proto": "udp"},
                {"action": "allow", "from": "srv-1", "to": "any"}]},
            "edge": {"segments": ["servers", "dmz"], "default": "allow", "rules": [
                {"action": "deny", "from": "dmz", "to": "servers", "ports": ["22"]}]},
        },
    }
    document = parse_yaml_text(yaml.safe_dump(data, sort_keys=False), f"<synthetic-{hosts}>")
    return topology_from_document(document)


def bench_size(backend_name: str, hosts: int, actions: int) -> dict[str, Any]:
    topology = synthetic_topology(hosts)
    backend = get_backend(backend_name)
    run_name = f"bench-{hosts}-{os.getpid()}"
    started = time.perf_counter()
    deployment = backend.deploy(topology, run_name)
    deployed = time.perf_counter() - started
    try:
        names = list(topology.hosts)
        quarantine: list[float] = []
        release: list[float] = []
        block: list[float] = []
        for i in range(actions):
            host = names[(i * 7) % len(names)]
            quarantine.append(deployment.quarantine(host).seconds)
            release.append(deployment.release(host).seconds)
            block.append(deployment.block(host, "any", 445, "tcp").seconds)
            deployment.unblock(host, "any", 445, "tcp")
    finally:
        started = time.perf_counter()
        deployment.teardown()
        torn_down = time.perf_counter() - started
    return {
        "hosts": len(topology.hosts), "routers": len(topology.routers),
        "namespaces": len(topology.hosts) + len(topology.routers) + 1,
        "deploy_s": round(deployed, 3), "teardown_s": round(torn_down, 3),
        "up_and_down_s": round(deployed + torn_down, 3),
        "quarantine_median_ms": round(statistics.median(quarantine) * 1000, 3) if actions else None,
        "quarantine_max_ms": round(max(quarantine) * 1000, 3) if actions else None,
        "release_median_ms": round(statistics.median(release) * 1000, 3) if actions else None,
        "block_median_ms": round(statistics.median(block) * 1000, 3) if actions else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="netns")
    parser.add_argument("--sizes", default="10,50,200,500",
                        help="comma-separated host counts (default: 10,50,200,500)")
    parser.add_argument("--actions", type=int, default=50,
                        help="quarantine/release and block/unblock cycles per size")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/deploy.py needs root", file=sys.stderr)
        return 3
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="testbed-bench-") as state:
        os.environ["TESTBED_STATE_DIR"] = state  # never touches other runs' state
        if not args.json:
            print(f"backend {args.backend}, {os.cpu_count()} CPUs, "
                  f"{args.actions} containment cycles per size")
            print(f"{'hosts':>6} {'routers':>7} {'deploy s':>9} {'teardown s':>10} "
                  f"{'up+down s':>9} {'quarantine ms (median/max)':>27} {'block ms':>9}")
        for size in sizes:
            result = bench_size(args.backend, size, args.actions)
            results.append(result)
            if not args.json:
                print(f"{result['hosts']:>6} {result['routers']:>7} {result['deploy_s']:>9.3f} "
                      f"{result['teardown_s']:>10.3f} {result['up_and_down_s']:>9.3f} "
                      f"{result['quarantine_median_ms']!s:>18} / "
                      f"{result['quarantine_max_ms']!s:<6} "
                      f"{result['block_median_ms']!s:>9}", flush=True)
    if args.json:
        json.dump({"backend": args.backend, "cpus": os.cpu_count(), "results": results},
                  sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
