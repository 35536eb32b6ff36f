"""The egress guard: destinations outside the topology are refused before any socket exists."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from unittest import mock

import pytest

from testbed.agent.brain import Probe
from testbed.agent.clients import benign_request, tcp_connect_only
from testbed.agent.config import AgentConfig, ExploitSpec, ServiceConfig, WormConfig
from testbed.agent.events import EventLog
from testbed.agent.guards import Egress, RateCap, RefusedDestination, classify_connect_error
from testbed.agent.runtime import Agent

OUTSIDE = ["8.8.8.8", "192.168.77.1", "10.0.2.1", "127.0.0.1", "0.0.0.0", "255.255.255.255",
           "not-an-address", "10.0.1.1.1", "::1"]


def run_without_sockets(coroutine_factory):  # type: ignore[no-untyped-def]
    """Run a coroutine with socket.socket (and socketpair) replaced by a failing mock."""
    loop = asyncio.new_event_loop()  # made before the patch: it owns a self-pipe socketpair
    try:
        with mock.patch.object(socket, "socket", side_effect=AssertionError("socket made")) as s:
            try:
                loop.run_until_complete(coroutine_factory())
            finally:
                assert s.call_count == 0
    finally:
        loop.close()


@pytest.mark.parametrize("address", OUTSIDE)
def test_outside_destinations_are_refused_before_a_socket(address: str) -> None:
    refused: list[tuple[str, int, str]] = []
    egress = Egress(["10.0.1.0/24"], on_refused=lambda a, p, pr: refused.append((a, p, pr)))

    async def attempts() -> None:
        with pytest.raises(RefusedDestination):
            await egress.open_tcp(address, 445, 1.0)
        with pytest.raises(RefusedDestination):
            await egress.udp_exchange(address, 1194, b"x", 1.0)
        with pytest.raises(RefusedDestination):
            await benign_request(egress, address, 80, "tcp", "http")
        with pytest.raises(RefusedDestination):
            await tcp_connect_only(egress, address, 22, timeout=1.0)

    run_without_sockets(attempts)
    assert refused == [(address, 445, "tcp"), (address, 1194, "udp"), (address, 80, "tcp"),
                       (address, 22, "tcp")]


def test_the_worm_runtime_logs_a_refused_destination_and_makes_no_socket(tmp_path: Path) -> None:
    config = AgentConfig(
        run="guard", host="pc", address="10.0.1.10", segment_cidr="10.0.1.0/24",
        secret=b"k" * 32, seed=1, state_dir=tmp_path, cidrs=("10.0.1.0/24",),
        services=(ServiceConfig("smb", 445, "tcp"),), patched=False,
        worm=WormConfig("classic", {}, (ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp"),)))
    agent = Agent(config)
    agent.log = EventLog(tmp_path / "events.jsonl", "pc")
    agent.egress = Egress(config.cidrs, on_refused=agent._refused)
    from testbed.agent.brain import Brain, WormView

    brain = Brain(WormView("10.0.1.10", "10.0.1.0/24", config.cidrs, config.worm.arsenal),
                  "classic", {}, seed=1, start=0.0)
    probe = Probe(1, "8.8.8.8", 445, "tcp", "smb", "MOCK-SMB-1", "uniform", "plain",
                  "MOCK-SMB-1@445/tcp")
    run_without_sockets(lambda: agent._probe(brain, probe))
    agent.log.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert '"type":"refused-destination"' in text and '"target":"8.8.8.8"' in text
    assert '"type":"probe"' not in text


def test_inside_destination_passes_the_check() -> None:
    egress = Egress(["10.0.1.0/24", "10.0.2.0/24"])
    assert egress.check("10.0.2.7", 80, "tcp") == "10.0.2.7"
    assert egress.refused == 0


def test_rate_cap_spaces_events() -> None:
    cap = RateCap(10.0, burst=2, now=0.0)
    assert cap.delay(0.0) == 0.0 and cap.delay(0.0) == 0.0  # the burst
    assert cap.delay(0.0) == pytest.approx(0.1)
    assert cap.delay(0.1) == 0.0
    granted = sum(cap.delay(t / 1000) == 0.0 for t in range(100, 10_100))
    assert granted <= 10 * 10 + 2


def test_connect_errors_are_classified() -> None:
    import errno

    assert classify_connect_error(ConnectionRefusedError(), 0.01, True) == "refused"
    assert classify_connect_error(TimeoutError(), 2.0, True) == "timeout"
    assert classify_connect_error(OSError(errno.EACCES, "x"), 0.01, True) == "prohibited"
    assert classify_connect_error(OSError(errno.EHOSTUNREACH, "x"), 0.05, False) == "prohibited"
    assert classify_connect_error(OSError(errno.EHOSTUNREACH, "x"), 3.0, True) == "unreachable"
