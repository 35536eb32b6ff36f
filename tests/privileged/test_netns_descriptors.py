"""A process holding over a thousand descriptors (a huge run) can still deploy and contain.

libnftables waits on its netlink socket with select(), which aborts the process for a descriptor
of 1024 or more; the backend must notice and use the nft program instead of crashing.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture()
def many_open_descriptors() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield len(held)
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_deploy_and_quarantine_with_descriptors_above_select_limit(
        many_open_descriptors: int, deploy: Callable[..., Any], small_topology: str) -> None:
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    assert probe >= 1024  # the situation that used to abort inside libnftables
    deployment = deploy(small_topology)
    host = next(iter(deployment.topology.hosts))
    timing = deployment.quarantine(host)
    assert timing.seconds >= 0
    assert host in deployment.containment().quarantined
    deployment.release(host)
    assert host not in deployment.containment().quarantined
    assert all(count == 0 for count in deployment.egress_counters().values())
