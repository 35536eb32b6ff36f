#!/usr/bin/env python3
"""Hand-encoded rtnetlink batches (testbed.kernel) against pyroute2, on the deploy's hot path.

Usage (root)::

    python benchmarks/netlink.py [--veths 200] [--bridges 20] [--rounds 5] [--json]

In two scratch network namespaces this script creates and removes itself (a "fabric" holding the
bridges and one end of every veth, a "node" where every peer end is born, as a deployment wires
them), it creates ``--bridges`` bridges and ``--veths`` veth pairs enslaved to them, then deletes
them again, ``--rounds`` times each way:

- ``testbed``: one :class:`testbed.kernel.RtnlBatch` buffer, sent by :class:`RtNetlink` on a
  socket opened inside the fabric namespace (what ``wire()`` does);
- ``pyroute2``: ``IPRoute(netns=...)`` with one ``link()`` call per object, as pyroute2 is
  normally used.

Prints the median seconds per phase and the ratio. Nothing leaves the scratch namespaces; both are
removed at the end, also after a failure. Without pyroute2 installed only the first row prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from testbed.kernel import (
    RtNetlink,
    RtnlBatch,
    create_named_netns,
    named_netns_path,
    remove_named_netns,
    require_root,
)

FIRST_INDEX = 100  # fixed ifindexes, as the wiring plan assigns them


def link_count(namespace: str) -> int:
    done = subprocess.run(["ip", "-n", namespace, "-o", "link"], capture_output=True, text=True,
                          check=True)
    return len(done.stdout.splitlines())


def bridge_index(number: int) -> int:
    return FIRST_INDEX + number


def veth_index(bridges: int, number: int) -> int:
    return FIRST_INDEX + bridges + number


def create_with_batch(fabric: str, node: str, veths: int, bridges: int) -> None:
    descriptor = os.open(named_netns_path(node), os.O_RDONLY | os.O_CLOEXEC)
    try:
        batch = RtnlBatch()
        for number in range(bridges):
            batch.add_bridge(f"nlb{number}", bridge_index(number))
        for number in range(veths):
            batch.add_veth(f"nlv{number}", veth_index(bridges, number),
                           master=bridge_index(number % bridges), peer_name=f"nlp{number}",
                           peer_index=FIRST_INDEX + number, peer_netns_fd=descriptor)
        with RtNetlink(named_netns_path(fabric)) as netlink:
            netlink.execute(batch.data, batch.describe)
    finally:
        os.close(descriptor)


def remove_with_batch(fabric: str, node: str, veths: int, bridges: int) -> None:
    batch = RtnlBatch()
    for number in range(veths):
        batch.delete_link(veth_index(bridges, number), f"nlv{number}")
    for number in range(bridges):
        batch.delete_link(bridge_index(number), f"nlb{number}")
    with RtNetlink(named_netns_path(fabric)) as netlink:
        netlink.execute(batch.data, batch.describe)


def create_with_pyroute2(fabric: str, node: str, veths: int, bridges: int) -> None:
    from pyroute2 import IPRoute

    with IPRoute(netns=fabric) as ipr:
        for number in range(bridges):
            ipr.link("add", ifname=f"nlb{number}", kind="bridge", index=bridge_index(number),
                     br_stp_state=0, br_forward_delay=0, state="up")
        for number in range(veths):
            ipr.link("add", ifname=f"nlv{number}", kind="veth",
                     index=veth_index(bridges, number), master=bridge_index(number % bridges),
                     state="up", peer={"ifname": f"nlp{number}", "index": FIRST_INDEX + number,
                                       "net_ns_fd": node})


def remove_with_pyroute2(fabric: str, node: str, veths: int, bridges: int) -> None:
    from pyroute2 import IPRoute

    with IPRoute(netns=fabric) as ipr:
        for number in range(veths):
            ipr.link("del", index=veth_index(bridges, number))
        for number in range(bridges):
            ipr.link("del", index=bridge_index(number))


Step = Callable[[str, str, int, int], None]


def measure(create: Step, remove: Step, fabric: str, node: str, *, veths: int, bridges: int,
            rounds: int) -> dict[str, float]:
    created: list[float] = []
    removed: list[float] = []
    empty = link_count(fabric)
    for _ in range(rounds):
        started = time.perf_counter()
        create(fabric, node, veths, bridges)
        created.append(time.perf_counter() - started)
        found = link_count(fabric) - empty
        if found != veths + bridges:  # a benchmark of work not done would be worthless
            raise SystemExit(f"expected {veths + bridges} new links, found {found}")
        started = time.perf_counter()
        remove(fabric, node, veths, bridges)
        removed.append(time.perf_counter() - started)
        if link_count(fabric) != empty:
            raise SystemExit("links left behind after removal")
    return {"create_s": statistics.median(created), "remove_s": statistics.median(removed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--veths", type=int, default=200)
    parser.add_argument("--bridges", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_root("scratch network namespaces")
    tag = f"nlbench{os.getpid()}"
    fabric, node = f"{tag}_f", f"{tag}_n"
    results: dict[str, Any] = {"veths": args.veths, "bridges": args.bridges,
                               "rounds": args.rounds}
    try:
        create_named_netns(fabric)
        create_named_netns(node)
        results["testbed"] = measure(create_with_batch, remove_with_batch, fabric, node,
                                     veths=args.veths, bridges=args.bridges, rounds=args.rounds)
        try:
            import pyroute2
        except ImportError:
            results["pyroute2"] = None
        else:
            results["pyroute2_version"] = pyroute2.__version__
            results["pyroute2"] = measure(create_with_pyroute2, remove_with_pyroute2, fabric,
                                          node, veths=args.veths, bridges=args.bridges,
                                          rounds=args.rounds)
    finally:
        remove_named_netns(node)
        remove_named_netns(fabric)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.veths} veth pairs + {args.bridges} bridges, median of {args.rounds} rounds:")
    for name in ("testbed", "pyroute2"):
        row = results.get(name)
        if row is None:
            print(f"  {name:<9} not installed")
            continue
        print(f"  {name:<9} create {row['create_s'] * 1000:8.1f} ms   "
              f"remove {row['remove_s'] * 1000:8.1f} ms")
    if results.get("pyroute2"):
        mine, theirs = results["testbed"], results["pyroute2"]
        print(f"  pyroute2 / testbed: create x{theirs['create_s'] / mine['create_s']:.1f}, "
              f"remove x{theirs['remove_s'] / mine['remove_s']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
