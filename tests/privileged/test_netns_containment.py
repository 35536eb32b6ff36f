"""Quarantine, release, block and rate limits are enforced in the fabric, both directions."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from testbed.kernel import entered
from testbed.reach import measure_reachability

SOURCES = ["pc-1", "pc-2", "pc-3", "laptop", "fileserver", "db"]


def test_quarantine_cuts_both_ways_and_release_restores(
        deploy: Callable[..., Any],
        small_topology: str) -> None:
    deployment = deploy(small_topology)
    before = measure_reachability(deployment, sources=SOURCES)
    assert before.ok, before.describe_mismatches()
    # pc-1 talks to its own segment and across both routers before the quarantine.
    reached = {o.probe.target for o in before.outcomes if o.probe.source == "pc-1" and o.reachable}
    assert {"pc-2", "laptop", "fileserver"} <= reached

    timing = deployment.quarantine("pc-1")
    assert timing.action == "quarantine" and timing.seconds > 0
    assert deployment.containment().quarantined == {"pc-1"}
    during = measure_reachability(deployment, sources=SOURCES)
    assert during.ok, during.describe_mismatches()
    touching = [o for o in during.outcomes if "pc-1" in (o.probe.source, o.probe.target)]
    assert touching and not any(o.reachable for o in touching)  # same segment and routed
    assert any(o.reachable for o in during.outcomes if o.probe.source == "pc-2")

    deployment.release("pc-1")
    assert deployment.containment().quarantined == set()
    after = measure_reachability(deployment, sources=SOURCES)
    assert after.ok, after.describe_mismatches()
    assert [o.reachable for o in after.outcomes] == [o.reachable for o in before.outcomes]


def test_block_drops_only_matching_new_flows(
        deploy: Callable[..., Any],
        small_topology: str) -> None:
    deployment = deploy(small_topology)
    fileserver = str(deployment.topology.hosts["fileserver"].ip)
    # A connection made before the block survives it: blocks stop new flows only.
    listener_path, client_path = (deployment.netns_path("fileserver"),
                                  deployment.netns_path("pc-1"))
    with entered(listener_path):
        server = socket.create_server((fileserver, 445))
    with entered(client_path):
        client = socket.create_connection((fileserver, 445), timeout=3)
    accepted, _ = server.accept()

    deployment.block("pc-1", "fileserver", 445, "tcp")
    report = measure_reachability(deployment, sources=["pc-1", "pc-2"])
    assert report.ok, report.describe_mismatches()
    outcome = {(o.probe.source, o.probe.target, o.probe.port): o.reachable
               for o in report.outcomes}
    assert outcome[("pc-1", "fileserver", 445)] is False
    assert outcome[("pc-2", "fileserver", 445)] is True
    assert outcome[("pc-1", "pc-2", 445)] is True

    client.sendall(b"still there")
    accepted.settimeout(3)
    assert accepted.recv(64) == b"still there"
    for sock in (client, accepted, server):
        sock.close()

    deployment.unblock("pc-1", "fileserver", 445, "tcp")
    assert deployment.containment().blocks == []
    report = measure_reachability(deployment, sources=["pc-1"])
    assert report.ok and any(o.reachable for o in report.outcomes
                             if o.probe.target == "fileserver")


def test_rate_limit_caps_new_flows(
        deploy: Callable[..., Any],
        small_topology: str) -> None:
    deployment = deploy(small_topology)
    target = str(deployment.topology.hosts["pc-3"].ip)
    with entered(deployment.netns_path("pc-3")):
        server = socket.create_server((target, 445), backlog=64)
    deployment.rate_limit("pc-2", 1.0)
    assert deployment.containment().rate_limited == {"pc-2": 1.0}
    succeeded = 0
    with entered(deployment.netns_path("pc-2")):
        for _ in range(20):
            try:
                socket.create_connection((target, 445), timeout=0.3).close()
                succeeded += 1
            except OSError:
                pass
    server.close()
    assert 1 <= succeeded < 20  # the burst passes, the rest of the rapid flows do not
    deployment.remove_rate_limit("pc-2")
    assert deployment.containment().rate_limited == {}
