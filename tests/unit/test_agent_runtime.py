"""The agent process end to end on loopback: ready file, wake, infection, stop file, SIGTERM, TTL.

Agents listen on 127.0.0.x (the "topology" is 127.0.0.0/29) and bind their outbound sockets to
their own address, so several agents share one machine without any namespace. Nothing leaves the
loopback interface.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.agent import control
from testbed.agent.config import (
    AgentConfig,
    BackupJob,
    BenignTarget,
    ExploitSpec,
    ServiceConfig,
    UserJob,
    WormConfig,
    write_config,
)
from testbed.records import EVENT_TYPES, PROBE_OUTCOMES

SECRET = os.urandom(32)
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_config(state: Path, host: str, address: str, port: int, **changes: Any) -> AgentConfig:
    worm = WormConfig("classic", {"rate": 50.0}, (ExploitSpec("MOCK-SMB-1", "smb", port, "tcp"),),
                      connect_timeout_s=0.5, reply_timeout_s=0.5)
    config = AgentConfig(
        run=state.name, host=host, address=address, segment_cidr="127.0.0.0/29",
        secret=SECRET, seed=hash(host) & 0xFFFF, state_dir=state, cidrs=("127.0.0.0/29",),
        services=(ServiceConfig("smb", port, "tcp", "", ("MOCK-SMB-1",)),
                  ServiceConfig("http", 0, "tcp")),
        patched=False, worm=worm, address_book={"127.0.0.1": "a", "127.0.0.3": "b",
                                                "127.0.0.4": "c"},
        listen_address=address, bind_source=True, ttl_s=60.0)
    return AgentConfig(**{**config.__dict__, **changes})


def start(config: AgentConfig) -> subprocess.Popen[bytes]:
    path = config.state_dir / "agents" / f"{config.host}.json"
    write_config(path, config)
    return subprocess.Popen([sys.executable, "-m", "testbed.agent", "--config", str(path)],
                            cwd=REPO, stderr=subprocess.PIPE)


def events(state: Path, host: str) -> list[dict[str, Any]]:
    path = state / "hosts" / host / "events.jsonl"
    if not path.exists():
        return []
    # complete lines only: a live agent may be midway through writing the last one
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "agent-rt"
    directory.mkdir()
    return directory


def test_wake_infect_stop(state: Path) -> None:
    port = free_port()
    a = make_config(state, "a", "127.0.0.1", port)
    b = make_config(state, "b", "127.0.0.3", port, users=(UserJob(600.0, (
        BenignTarget("127.0.0.1", port, "tcp", "smb", "a"),)),))
    c = make_config(state, "c", "127.0.0.4", port, patched=True,
                    backup=BackupJob(1.0, (BenignTarget("127.0.0.3", port, "tcp", "smb", "b"),
                                           BenignTarget("8.8.8.8", 445, "tcp", "smb"))))
    processes = [start(config) for config in (a, b, c)]
    try:
        assert control.wait_ready(state, ["a", "b", "c"], 15.0) == []
        info = control.ready_info(state, "a")
        assert info is not None and {"name": "smb", "port": port, "proto": "tcp"} in \
            info["services"]
        time.sleep(0.5)
        assert not [e for e in events(state, "a") if e["type"] == "probe"]  # dormant
        control.wake(state, "a")
        assert wait_for(lambda: any(e["type"] == "infection" for e in events(state, "b")))
        assert wait_for(lambda: any(e.get("reason") == "patched" for e in events(state, "c")))
        assert wait_for(lambda: any(e["type"] == "benign-request" and e["role"] == "backup"
                                    for e in events(state, "c")))
        control.stop_all(state)
        for process in processes:
            assert process.wait(10) == 0, process.stderr.read() if process.stderr else ""
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    infection = next(e for e in events(state, "b") if e["type"] == "infection")
    assert infection["parent"] == "a" and infection["generation"] == 1
    assert infection["source"] == "127.0.0.1" and infection["vuln"] == "MOCK-SMB-1"
    assert infection["technique"] == "T1570"
    assert not [e for e in events(state, "c") if e["type"] in ("infection", "wake")]
    every = [e for host in "abc" for e in events(state, host)]
    assert all(e["type"] in EVENT_TYPES and {"wall", "mono", "host"} <= set(e) for e in every)
    probes = [e for e in every if e["type"] == "probe"]
    assert probes and all(e["outcome"] in PROBE_OUTCOMES for e in probes)
    assert all(e["technique"] in ("T1046", "T1210", "T1021") for e in probes)
    assert any(e["outcome"] == "infected" and e["target_host"] == "b" for e in probes)
    benign = [e for e in every if e["type"] == "benign-request"]
    assert any(e["role"] == "user" and e["outcome"] == "ok" for e in benign)
    refused = [e for e in events(state, "c") if e["type"] == "refused-destination"]
    assert refused and refused[0]["target"] == "8.8.8.8"
    stops = [e for e in every if e["type"] == "stop"]
    assert len(stops) == 3 and {e["detail"]["reason"] for e in stops} == {"stop-file"}
    assert not (state / "hosts" / "a" / "ready").exists()


def test_sigterm_and_ttl_end_the_agent_cleanly(state: Path) -> None:
    port = free_port()
    terminated = start(make_config(state, "a", "127.0.0.1", port))
    expiring = start(make_config(state, "b", "127.0.0.3", port, ttl_s=1.0))
    try:
        assert control.wait_ready(state, ["a"], 15.0) == []
        terminated.send_signal(signal.SIGTERM)
        assert terminated.wait(10) == 0
        assert expiring.wait(15) == 0
    finally:
        for process in (terminated, expiring):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert events(state, "a")[-1]["detail"]["reason"] == "signal"
    assert events(state, "b")[-1]["detail"]["reason"] == "ttl"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"format": 1}', "missing key"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = subprocess.run([sys.executable, "-m", "testbed.agent", "--config", str(path)],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_profile_is_a_clear_error(state: Path) -> None:
    config = make_config(state, "a", "127.0.0.1", free_port())
    config = AgentConfig(**{**config.__dict__,
                            "worm": WormConfig("clasic", {}, config.worm.arsenal)})
    process = start(config)
    assert process.wait(30) == 2
    assert process.stderr is not None
    error = process.stderr.read().decode()
    assert "unknown worm profile 'clasic'" in error and "Traceback" not in error


def test_udp_service_answers_and_a_token_over_udp_infects(tmp_path: Path) -> None:
    import asyncio

    from testbed.agent.clients import benign_request
    from testbed.agent.guards import Egress
    from testbed.agent.protocol import encode_line, make_exploit, message_line, parse_reply
    from testbed.agent.runtime import Agent

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = AgentConfig(
        run="udp", host="vpn-gw", address="127.0.0.1", segment_cidr="127.0.0.0/29",
        secret=SECRET, seed=1, state_dir=tmp_path, cidrs=("127.0.0.0/29",),
        services=(ServiceConfig("vpn", port, "udp", "", ("MOCK-VPN-1",)),), patched=False,
        worm=WormConfig("classic", {"rate": 0.01}, ()), listen_address="127.0.0.1")
    agent = Agent(config)

    async def scenario() -> tuple[str, str | None]:
        running = asyncio.create_task(agent.run())
        while not config.ready_path.exists():
            await asyncio.sleep(0.01)
        egress = Egress(config.cidrs)
        benign = await benign_request(egress, "127.0.0.1", port, "udp", "vpn", timeout=2.0)
        message = make_exploit(secret=SECRET, run="udp", vuln="MOCK-VPN-1", source="127.0.0.1",
                               target="127.0.0.1", nonce=os.urandom(16).hex(),
                               issued_ms=int(time.time() * 1000), generation=2, parent="pz")
        reply = await egress.udp_exchange("127.0.0.1", port, encode_line(
            message_line(message), "encoded", os.urandom(4)), 2.0)
        agent.stop("test")
        await running
        return benign.outcome, parse_reply(reply or b"")

    assert asyncio.run(scenario()) == ("ok", "infected")
    assert agent.active and agent.generation == 3


def test_agent_package_imports_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'pydantic', 'yaml', 'networkx', 'scapy', 'pyroute2',\n"
        "                                  'docker', 'rich'}:\n"
        "            raise ImportError('not allowed in the agent: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import testbed.agent.runtime, testbed.agent.control, testbed.agent.__main__\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_wake_file_written_ahead_wakes_at_the_moment_it_names(state: Path) -> None:
    """The runner writes the wake file at t0 naming t0 + start_s: the agent wakes then, not at
    the phase of its 0.25 s control poll; a file without a moment (or a past one) wakes at once."""
    import asyncio
    import contextvars

    from testbed.agent.runtime import Agent

    async def woken_at(moment_ahead: float | None) -> tuple[float, bool, float]:
        agent = Agent(make_config(state, "a", "127.0.0.1", free_port()))
        agent._context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        woke = loop.create_future()
        agent.wake = lambda reason, **_: woke.done() or woke.set_result(loop.time())  # type: ignore[method-assign]
        now = time.monotonic()
        control.wake(state, "a", None if moment_ahead is None else now + moment_ahead)
        assert agent.poll_control(now, stop_file=False, wake_file=lambda: True) is False
        at_once = woke.done()
        agent.poll_control(now + 0.01, stop_file=False, wake_file=lambda: True)  # read once
        return now, at_once, await asyncio.wait_for(woke, 5.0)

    asked, at_once, woke = asyncio.run(woken_at(0.3))
    assert not at_once and woke >= asked + 0.3  # at the named moment, on the monotonic clock
    _, at_once, _ = asyncio.run(woken_at(None))
    assert at_once  # no moment named: at the poll that saw the file
    assert control.wake_moment(state / "no-such-file") is None
