"""Mock services answer benign requests plausibly (sans-IO, each kind)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from testbed.agent.clients import _request
from testbed.agent.config import ServiceConfig
from testbed.agent.events import EventLog
from testbed.agent.protocol import (
    InfectionGate,
    encode_line,
    make_exploit,
    message_line,
    parse_reply,
)
from testbed.agent.services import SERVICE_KINDS, ExploitHandler, MockService
from testbed.model.spec import DEFAULT_PORTS

SECRET = os.urandom(32)


class Host:
    """One host's services with a counting infection callback."""

    def __init__(self, tmp_path: Path, *, patched: bool = False) -> None:
        self.log = EventLog(tmp_path / "events.jsonl", "victim",
                            schedule=lambda delay, callback: None)
        self.infections = 0
        gate = InfectionGate(run="r", secret=SECRET, own_address="10.0.0.9", patched=patched)
        self.exploits = ExploitHandler(gate, self.log, self._accept)

    def _accept(self, *args: object) -> str:
        self.infections += 1
        return "infected"

    def service(self, kind: str, vulns: tuple[str, ...] = ()) -> MockService:
        port, proto = DEFAULT_PORTS[kind]
        return MockService(ServiceConfig(kind, port, proto, "", vulns), self.exploits, b"seed")


def converse(service: MockService, request: bytes, *, chunk: int = 7) -> tuple[bytes, bool]:
    connection = service.connection("10.0.0.5")
    received = connection.greeting()
    closed = False
    for start in range(0, len(request), chunk):  # arrives in pieces, as on a real socket
        reply, closed = connection.receive(request[start:start + chunk])
        received += reply
        if closed:
            break
    return received, closed


def test_every_topology_service_kind_is_implemented() -> None:
    assert set(SERVICE_KINDS) == set(DEFAULT_PORTS)


@pytest.mark.parametrize("kind", [k for k in SERVICE_KINDS if DEFAULT_PORTS[k][1] == "tcp"])
def test_tcp_services_answer_the_benign_client(kind: str, tmp_path: Path) -> None:
    request, looks_right = _request(kind, "10.0.0.9")
    received, _ = converse(Host(tmp_path).service(kind), request)
    assert looks_right(received), received[:200]


def test_vpn_answers_an_openvpn_hard_reset(tmp_path: Path) -> None:
    service = Host(tmp_path).service("vpn")
    hello = bytes([7 << 3]) + b"12345678" + b"\x00" + b"\x00\x00\x00\x01"
    reply = service.datagram(hello, "10.0.0.5")
    assert reply is not None and reply[0] >> 3 == 8 and reply[-12:-4] == b"12345678"
    assert service.datagram(b"hello", "10.0.0.5") is None


@pytest.mark.parametrize(("kind", "probe", "expected"), [
    ("http", b"GET / HTTP/1.0\r\n\r\n", b"Server: Apache/2.4.57 (Debian)"),
    ("http", b"\r\n\r\n", b"400 Bad Request"),
    ("ipp", b"GET / HTTP/1.0\r\n\r\n", b"CUPS/2.4"),
    ("rtsp", b"OPTIONS / RTSP/1.0\r\n\r\n", b"Public: OPTIONS"),
    ("ssh", b"", b"SSH-2.0-OpenSSH_9.2p1"),
    ("ftp", b"HELP\r\n", b"214"),
    ("telnet", b"\xff\xfd\x01root\r\n", b"Password: "),
    ("sql", b"", b"mysql_native_password"),
    ("generic", b"hello\r\n", b"OK\r\n"),
    ("modbus", bytes.fromhex("0001000000050b2b0e0100"), b"MockTech PLC"),
    ("mqtt", b"\xc0\x00", b""),  # PINGREQ before CONNECT: closes
])
def test_nmap_style_probes_get_plausible_answers(kind: str, probe: bytes, expected: bytes,
                                                 tmp_path: Path) -> None:
    received, _ = converse(Host(tmp_path).service(kind), probe, chunk=4096)
    assert expected in received


@pytest.mark.parametrize("kind", ["smb", "http", "ssh", "ftp", "telnet", "mqtt", "modbus", "rdp",
                                  "sql", "generic", "rtsp", "ipp"])
@pytest.mark.parametrize("encoding", ["plain", "encoded"])
def test_a_valid_token_infects_through_every_tcp_service(kind: str, encoding: str,
                                                         tmp_path: Path) -> None:
    host = Host(tmp_path)
    service = host.service(kind, vulns=("MOCK-X-1",))
    message = make_exploit(secret=SECRET, run="r", vuln="MOCK-X-1", source="10.0.0.5",
                           target="10.0.0.9", nonce=os.urandom(16).hex(),
                           issued_ms=int(time.time() * 1000), generation=0, parent="pz")
    line = encode_line(message_line(message), encoding, os.urandom(4))
    received, closed = converse(service, line)
    assert closed and parse_reply(received) == "infected"
    assert host.infections == 1
    # the same line again is a replay; over UDP too
    received, _ = converse(service, line)
    assert parse_reply(received) == "rejected" and host.infections == 1


def test_patched_host_answers_not_vulnerable_and_logs_it(tmp_path: Path) -> None:
    host = Host(tmp_path, patched=True)
    service = host.service("vpn", vulns=("MOCK-VPN-1",))
    message = make_exploit(secret=SECRET, run="r", vuln="MOCK-VPN-1", source="10.0.0.5",
                           target="10.0.0.9", nonce=os.urandom(16).hex(),
                           issued_ms=int(time.time() * 1000), generation=0, parent="pz")
    reply = service.datagram(message_line(message) + b"\n", "10.0.0.5")
    assert reply is not None and parse_reply(reply) == "not-vulnerable"
    assert host.infections == 0
    host.log.close()
    assert b'"reason":"patched"' in (tmp_path / "events.jsonl").read_bytes()
