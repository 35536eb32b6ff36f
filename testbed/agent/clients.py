"""Benign client requests for every service kind: what users, the backup server, the IT scanner
and the worm's interleaved known-good connections send.

Owns: one plausible request per service kind and the check that its answer looks right.
Must not: connect except through ``testbed.agent.guards.Egress`` (the topology-only choke-point).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from testbed.agent.guards import Egress, RefusedDestination, classify_connect_error

__all__ = ["ClientResult", "benign_request", "tcp_connect_only"]


def _smb_negotiate() -> bytes:
    header = (b"\xfeSMB" + struct.pack("<HHIHHIIQII Q", 64, 0, 0, 0, 1, 0, 0, 0, 0xFEFF, 0, 0)
              + b"\0" * 16)
    body = struct.pack("<HHHHI16sIHH", 36, 2, 1, 0, 0x7F, os.urandom(16), 0, 0, 0) + \
        struct.pack("<HH", 0x0202, 0x0210)
    payload = header + body
    return struct.pack(">I", len(payload)) + payload


def _mqtt_connect() -> bytes:
    client_id = b"user-" + os.urandom(3).hex().encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(client_id)) + client_id
    return b"\x10" + bytes([len(variable)]) + variable + b"\xe0\x00"


Check = Callable[[bytes], bool]


def _request(kind: str, address: str) -> tuple[bytes, Check]:
    """(bytes to send first, check on what came back)."""
    if kind in ("http", "ipp"):
        path = "/printers/" if kind == "ipp" else "/"
        return (f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: Mozilla/5.0 (X11; "
                "Linux x86_64)\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode(), \
            lambda data: data.startswith(b"HTTP/1.") and b"\r\n\r\n" in data
    if kind == "rtsp":
        return f"OPTIONS rtsp://{address}/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode(), \
            lambda data: data.startswith(b"RTSP/1.0 ") and b"\r\n\r\n" in data
    if kind == "ssh":
        return b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", lambda data: data.startswith(b"SSH-2.0-")
    if kind == "ftp":
        return b"USER anonymous\r\nQUIT\r\n", lambda data: data.startswith(b"220") and \
            b"221" in data
    if kind == "telnet":
        return b"", lambda data: b"login: " in data
    if kind == "smb":
        return _smb_negotiate(), lambda data: len(data) >= 8 and data[4:8] == b"\xfeSMB"
    if kind == "rdp":
        return bytes.fromhex("030000130ee000000000000100080003000000"), \
            lambda data: len(data) >= 11 and data[0] == 3 and data[5] == 0xD0
    if kind == "mqtt":
        return _mqtt_connect(), lambda data: data.startswith(b"\x20\x02")
    if kind == "modbus":
        return bytes.fromhex("000100000006010300000002"), \
            lambda data: len(data) >= 9 and data[7] == 3
    if kind == "sql":
        return b"", lambda data: len(data) >= 5 and data[4] == 0x0A
    return b"QUIT\r\n", lambda data: data.endswith(b"\n") and len(data) > 2


@dataclass(frozen=True, slots=True)
class ClientResult:
    outcome: str  # "ok", "failed" (answered oddly), or a connect outcome: refused, timeout, ...
    seconds: float
    received: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


async def benign_request(egress: Egress, address: str, port: int, proto: str, kind: str, *,
                         timeout: float = 3.0, on_link: bool = False) -> ClientResult:
    """One benign request to a service; never raises (RefusedDestination excepted)."""
    started = time.monotonic()
    if proto == "udp":
        hello = bytes([7 << 3]) + os.urandom(8) + b"\x00" + b"\x00\x00\x00\x00"
        try:
            reply = await egress.udp_exchange(address, port, hello, timeout)
        except RefusedDestination:
            raise
        except OSError as err:
            return ClientResult(classify_connect_error(err, time.monotonic() - started, on_link),
                                time.monotonic() - started)
        good = reply is not None and (kind != "vpn" or (len(reply) > 0 and reply[0] >> 3 == 8))
        return ClientResult("ok" if good else "timeout" if reply is None else "failed",
                            time.monotonic() - started, len(reply or b""))
    request, check = _request(kind, address)
    try:
        reader, writer = await egress.open_tcp(address, port, timeout)
    except RefusedDestination:
        raise
    except (OSError, TimeoutError) as err:
        return ClientResult(classify_connect_error(err, time.monotonic() - started, on_link),
                            time.monotonic() - started)
    received = await exchange(reader, writer, request, check,
                              deadline=started + timeout)
    return ClientResult("ok" if check(received) else "failed", time.monotonic() - started,
                        len(received))


MAX_REPLY_BYTES = 16384
"""A client stops reading after this much: every mock reply is far shorter."""


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes,
                   answered: Callable[[bytes], object], *, deadline: float) -> bytes:
    """Send ``request``, read until ``answered(received)`` is truthy, the peer closes, the
    deadline (monotonic) passes or the reply gets too long; close the connection; never raises
    for network errors. Returns what was received."""
    received = b""
    try:
        if request:
            writer.write(request)
        while not answered(received) and len(received) < MAX_REPLY_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chunk = await asyncio.wait_for(reader.read(4096), remaining)
            if not chunk:
                break
            received += chunk
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()
    return received


async def tcp_connect_only(egress: Egress, address: str, port: int, *, timeout: float,
                           on_link: bool = False) -> str:
    """A scanner's connect probe: "ok" if the port is open, else the connect outcome."""
    started = time.monotonic()
    try:
        _, writer = await egress.open_tcp(address, port, timeout)
    except RefusedDestination:
        raise
    except (OSError, TimeoutError) as err:
        return classify_connect_error(err, time.monotonic() - started, on_link)
    writer.close()
    return "ok"
