"""Mock services, sans-IO: one small protocol state machine per service kind, plus the exploit
path every service shares.

Owns: what each kind of service says (banners, plausible answers to benign requests, so real
clients and nmap see them as open), bounded parsing of whatever arrives, and routing an exploit
line to the agent's :class:`ExploitHandler` (the infection gate and its ground truth).
Must not: do I/O. ``testbed.agent.runtime`` moves bytes between sockets and these objects; tests
call them directly. Nothing here ever executes or stores what a client sends.

A TCP connection is a :class:`Connection`: ``greeting()`` once, then ``receive(data)`` for every
chunk, returning ``(reply, close)``. If the connection's first line is an exploit message (plain
or encoded, see ``testbed.agent.protocol``) it goes to the exploit path; anything else goes to
the kind's protocol session. UDP services answer single datagrams (:meth:`MockService.datagram`).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import time
from collections.abc import Callable

from testbed.agent.config import ServiceConfig
from testbed.agent.events import TECHNIQUES, EventLog
from testbed.agent.protocol import (
    MAX_MESSAGE,
    PAYLOAD_MARKER_BYTES,
    ExploitMessage,
    InfectionGate,
    decode_line,
    make_reply,
)

__all__ = ["DEFAULT_BANNERS", "SERVICE_KINDS", "Connection", "ExploitHandler", "MockService",
           "Session"]

MAX_BUFFER = 8192
"""No protocol session ever holds more than this many unprocessed bytes; beyond it, it closes."""
MAX_EXPLOIT_LINE = 2 * MAX_MESSAGE + 4

DEFAULT_BANNERS = {
    "http": "Apache/2.4.57 (Debian)",
    "ipp": "CUPS/2.4 IPP/2.1",
    "rtsp": "GStreamer RTSP server",
    "ssh": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2",
    "ftp": "(vsFTPd 3.0.3)",
    "telnet": "Debian GNU/Linux 12",
    "smb": "",
    "rdp": "",
    "mqtt": "",
    "modbus": "MockTech PLC",
    "sql": "8.0.35",
    "vpn": "",
    "generic": "generic-service 1.0 ready",
}
SERVICE_KINDS = tuple(DEFAULT_BANNERS)
_BASE64_START = re.compile(rb"[A-Za-z0-9+/]")


class Session:
    """A kind's protocol state for one TCP connection."""

    def __init__(self, banner: str, seed: bytes) -> None:
        self.banner = banner
        self.seed = seed
        self.buffer = b""

    def greeting(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes received; returns (reply, close)."""
        self.buffer += data
        if len(self.buffer) > MAX_BUFFER:
            return b"", True
        return self.process()

    def process(self) -> tuple[bytes, bool]:
        return b"", False

    def take_line(self) -> bytes | None:
        index = self.buffer.find(b"\n")
        if index < 0:
            return None
        line, self.buffer = self.buffer[:index], self.buffer[index + 1:]
        return line.rstrip(b"\r")


# ---- text protocols ---------------------------------------------------------------------------
class HttpSession(Session):
    content_type = "text/html"

    def process(self) -> tuple[bytes, bool]:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                return b"", False
        head = self.buffer[:end].split(b"\n", 1)[0].rstrip(b"\r")
        self.buffer = b""
        parts = head.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return self.response(400, "Bad Request", b""), True
        method = parts[0]
        if method in (b"GET", b"HEAD", b"POST"):
            body = self.body()
            return self.response(200, "OK", b"" if method == b"HEAD" else body,
                                 length=len(body)), True
        if method == b"OPTIONS":
            return self.response(200, "OK", b"", extra="Allow: GET, HEAD, POST, OPTIONS\r\n"), True
        return self.response(501, "Not Implemented", b""), True

    def body(self) -> bytes:
        return (b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
                b"<body><h1>It works!</h1></body></html>\n")

    def response(self, code: int, reason: str, body: bytes, *, length: int | None = None,
                 extra: str = "") -> bytes:
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        head = (f"HTTP/1.1 {code} {reason}\r\nDate: {date}\r\nServer: {self.banner}\r\n"
                f"Content-Type: {self.content_type}\r\n"
                f"Content-Length: {len(body) if length is None else length}\r\n{extra}"
                "Connection: close\r\n\r\n")
        return head.encode("latin-1") + body


class IppSession(HttpSession):
    def body(self) -> bytes:
        return (b"<!DOCTYPE html><html><head><title>Home - CUPS 2.4</title></head>"
                b"<body><h1>CUPS 2.4</h1><p>Printers: office-laser</p></body></html>\n")


class RtspSession(Session):
    requests = 0

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return replies, False
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            cseq = b"0"
            for line in lines[1:]:
                if line.lower().startswith(b"cseq:"):
                    cseq = line[5:].strip()[:16]
            self.requests += 1
            if len(parts) != 3 or not parts[2].startswith(b"RTSP/1."):
                return replies + b"RTSP/1.0 400 Bad Request\r\n\r\n", True
            if parts[0] == b"OPTIONS":
                status = "200 OK"
                extra = "Public: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE\r\n"
            elif parts[0] == b"DESCRIBE":
                status, extra = "401 Unauthorized", 'WWW-Authenticate: Basic realm="camera"\r\n'
            else:
                status, extra = "405 Method Not Allowed", ""
            replies += (f"RTSP/1.0 {status}\r\nCSeq: {cseq.decode('latin-1')}\r\n"
                        f"Server: {self.banner}\r\n{extra}\r\n").encode("latin-1")
            if self.requests >= 32:
                return replies, True


class SshSession(Session):
    identified = False

    def greeting(self) -> bytes:
        banner = self.banner if self.banner.startswith("SSH-") else f"SSH-2.0-{self.banner}"
        return banner.encode("latin-1") + b"\r\n"

    def process(self) -> tuple[bytes, bool]:
        if not self.identified:
            line = self.take_line()
            if line is None:
                return b"", False
            if not line.startswith(b"SSH-"):
                return b"Invalid SSH identification string.\r\n", True
            self.identified = True
        # key exchange is where a real server would go on; the mock ends the session politely
        return b"", bool(self.buffer)


class FtpSession(Session):
    commands = 0

    def greeting(self) -> bytes:
        return f"220 {self.banner}\r\n".encode("latin-1")

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while (line := self.take_line()) is not None:
            self.commands += 1
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"QUIT":
                return replies + b"221 Goodbye.\r\n", True
            replies += {
                b"USER": b"331 Please specify the password.\r\n",
                b"PASS": b"530 Login incorrect.\r\n",
                b"SYST": b"215 UNIX Type: L8\r\n",
                b"FEAT": b"211-Features:\r\n EPSV\r\n PASV\r\n UTF8\r\n211 End\r\n",
                b"NOOP": b"200 NOOP ok.\r\n",
                b"HELP": b"214 Help OK.\r\n",
            }.get(verb, b"530 Please login with USER and PASS.\r\n")
            if self.commands >= 32:
                return replies, True
        return replies, False


class TelnetSession(Session):
    attempts = 0
    awaiting_password = False

    def greeting(self) -> bytes:
        negotiate = bytes([255, 251, 1, 255, 251, 3, 255, 253, 31])  # WILL ECHO, WILL SGA, DO NAWS
        return negotiate + f"\r\n{self.banner}\r\n\r\nlogin: ".encode("latin-1")

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        return super().feed(_strip_telnet_commands(data))

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while self.take_line() is not None:
            if not self.awaiting_password:
                self.awaiting_password = True
                replies += b"Password: "
                continue
            self.awaiting_password = False
            self.attempts += 1
            if self.attempts >= 3:
                return replies + b"\r\nLogin incorrect\r\n", True
            replies += b"\r\nLogin incorrect\r\nlogin: "
        return replies, False


def _strip_telnet_commands(data: bytes) -> bytes:
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 255 and index + 1 < len(data):
            command = data[index + 1]
            index += 3 if command in (251, 252, 253, 254) else 2
            continue
        if byte not in (0, 255):
            out.append(byte)
        index += 1
    return bytes(out)


class GenericSession(Session):
    lines = 0

    def greeting(self) -> bytes:
        return f"{self.banner}\r\n".encode("latin-1")

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while (line := self.take_line()) is not None:
            self.lines += 1
            if line.strip().upper() == b"QUIT":
                return replies + b"BYE\r\n", True
            replies += b"OK\r\n"
            if self.lines >= 64:
                return replies, True
        return replies, False


# ---- binary protocols -------------------------------------------------------------------------
class SmbSession(Session):
    """NetBIOS session service framing; answers a negotiate with an SMB2 negotiate response."""

    negotiated = False
    frames = 0

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while len(self.buffer) >= 4:
            kind, high, length = self.buffer[0], self.buffer[1], \
                struct.unpack(">H", self.buffer[2:4])[0]
            length += (high & 1) << 16
            if kind == 0x85:  # keep-alive
                self.buffer = self.buffer[4:]
                continue
            if kind != 0x00 or high & 0xFE or length > MAX_BUFFER - 4:
                return replies, True
            if len(self.buffer) < 4 + length:
                return replies, False
            frame, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
            self.frames += 1
            if frame.startswith(b"\xffSMB") or (frame.startswith(b"\xfeSMB") and
                                                 not self.negotiated):
                smb2 = frame.startswith(b"\xfeSMB")
                message_id = struct.unpack("<Q", frame[24:32])[0] if smb2 and len(frame) >= 32 \
                    else 0
                replies += self._frame(self._negotiate(0x0210 if smb2 else 0x02FF, message_id))
                self.negotiated = True
            elif frame.startswith(b"\xfeSMB") and len(frame) >= 64:
                command, = struct.unpack("<H", frame[12:14])
                message_id, = struct.unpack("<Q", frame[24:32])
                body = struct.pack("<HBBI", 9, 0, 0, 0) + b"\0"
                replies += self._frame(self._header(command, message_id, 0xC0000022) + body)
            else:
                return replies, True
            if self.frames >= 16:
                return replies, True
        return replies, False

    @staticmethod
    def _frame(payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + payload

    @staticmethod
    def _header(command: int, message_id: int, status: int) -> bytes:
        return (b"\xfeSMB" + struct.pack("<HHIHHIIQII Q", 64, 0, status, command, 1, 1, 0,
                                         message_id, 0xFEFF, 0, 0) + b"\0" * 16)

    def _negotiate(self, dialect: int, message_id: int) -> bytes:
        now_filetime = int((time.time() + 11644473600) * 10_000_000)
        guid = hashlib.sha256(b"smb" + self.seed).digest()[:16]
        body = struct.pack("<HHHH16sIIIIQQHHI", 65, 1, dialect, 0, guid, 0x7, 8388608, 8388608,
                           8388608, now_filetime, 0, 128, 0, 0) + b"\0"
        return self._header(0, message_id, 0) + body


class RdpSession(Session):
    """TPKT + X.224: answers a connection request with a confirm selecting standard RDP."""

    def process(self) -> tuple[bytes, bool]:
        if len(self.buffer) < 4:
            return b"", False
        if self.buffer[0] != 3:
            return b"", True
        length = struct.unpack(">H", self.buffer[2:4])[0]
        if not 7 <= length <= MAX_BUFFER:
            return b"", True
        if len(self.buffer) < length:
            return b"", False
        packet, self.buffer = self.buffer[:length], b""
        if packet[5] & 0xF0 == 0xE0:  # X.224 connection request
            return bytes.fromhex("030000130ed000001234000200080000000000"), False
        return b"", True


class MqttSession(Session):
    connected = False
    packets = 0

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while self.buffer:
            parsed = _mqtt_packet(self.buffer)
            if parsed is None:
                return replies, False
            if isinstance(parsed, str):  # "bad"
                return replies, True
            header, body, used = parsed
            self.buffer = self.buffer[used:]
            self.packets += 1
            kind = header >> 4
            if kind == 1:  # CONNECT
                self.connected = True
                replies += b"\x20\x02\x00\x00"
            elif not self.connected or kind == 14:  # anything before CONNECT, or DISCONNECT
                return replies, True
            elif kind == 12:  # PINGREQ
                replies += b"\xd0\x00"
            elif kind == 8 and len(body) >= 2:  # SUBSCRIBE
                replies += b"\x90\x03" + body[:2] + b"\x00"
            elif kind == 3:  # PUBLISH
                qos = (header >> 1) & 3
                if qos and len(body) >= 2:
                    topic_length = struct.unpack(">H", body[:2])[0]
                    packet_id = body[2 + topic_length:4 + topic_length]
                    if len(packet_id) == 2:
                        replies += (b"\x40\x02" if qos == 1 else b"\x50\x02") + packet_id
            else:
                return replies, True
            if self.packets >= 256:
                return replies, True
        return replies, False


def _mqtt_packet(data: bytes) -> tuple[int, bytes, int] | str | None:
    """(header byte, body, bytes used), "bad", or None when more bytes are needed."""
    length, multiplier, index = 0, 1, 1
    while True:
        if index >= len(data):
            return None
        byte = data[index]
        length += (byte & 0x7F) * multiplier
        index += 1
        if not byte & 0x80:
            break
        multiplier *= 128
        if index > 4:
            return "bad"
    if length > MAX_BUFFER:
        return "bad"
    if len(data) < index + length:
        return None
    return data[0], data[index:index + length], index + length


class ModbusSession(Session):
    requests = 0

    def process(self) -> tuple[bytes, bool]:
        replies = b""
        while len(self.buffer) >= 7:
            transaction, protocol, length, unit = struct.unpack(">HHHB", self.buffer[:7])
            if protocol != 0 or not 2 <= length <= 254:
                return replies, True
            if len(self.buffer) < 6 + length:
                return replies, False
            pdu, self.buffer = self.buffer[7:6 + length], self.buffer[6 + length:]
            answer = self._answer(pdu)
            replies += struct.pack(">HHHB", transaction, 0, len(answer) + 1, unit) + answer
            self.requests += 1
            if self.requests >= 1024:
                return replies, True
        return replies, False

    def _answer(self, pdu: bytes) -> bytes:
        function = pdu[0]

        def exception(code: int) -> bytes:
            return bytes([function | 0x80, code])

        if function in (1, 2, 3, 4):
            if len(pdu) != 5:
                return exception(3)
            start, quantity = struct.unpack(">HH", pdu[1:5])
            limit = 2000 if function <= 2 else 125
            if not 1 <= quantity <= limit or start + quantity > 0x10000:
                return exception(3)
            if function <= 2:
                count = (quantity + 7) // 8
                return bytes([function, count]) + b"\0" * count
            values = b"".join(struct.pack(">H", (start + i) * 7 % 65536) for i in range(quantity))
            return bytes([function, 2 * quantity]) + values
        if function in (5, 6):
            return pdu[:5] if len(pdu) == 5 else exception(3)
        if function in (15, 16):
            return pdu[:5] if len(pdu) >= 6 else exception(3)
        if function == 0x2B and len(pdu) >= 4 and pdu[1] == 0x0E:
            objects = [self.banner.encode("latin-1")[:64] or b"MockTech", b"PLC-1200", b"V2.4"]
            body = bytes([0x2B, 0x0E, pdu[2] or 1, 0x01, 0, 0, len(objects)])
            for object_id, value in enumerate(objects):
                body += bytes([object_id, len(value)]) + value
            return body
        return exception(1)


class SqlSession(Session):
    """MySQL-like: a protocol-10 greeting, then 'Access denied' to any login."""

    def greeting(self) -> bytes:
        scramble = hashlib.sha256(b"sql" + self.seed + os.urandom(8)).digest()
        salt1 = bytes(33 + b % 90 for b in scramble[:8])
        salt2 = bytes(33 + b % 90 for b in scramble[8:20])
        payload = (b"\x0a" + self.banner.encode("latin-1") + b"\0" +
                   struct.pack("<I", int.from_bytes(scramble[20:23], "little") + 8) +
                   salt1 + b"\0" + struct.pack("<HBHH", 0xF7FF, 255, 0x0002, 0xDFFF) +
                   bytes([21]) + b"\0" * 10 + salt2 + b"\0" + b"mysql_native_password\0")
        return _mysql_packet(0, payload)

    def process(self) -> tuple[bytes, bool]:
        if len(self.buffer) < 4:
            return b"", False
        length = int.from_bytes(self.buffer[:3], "little")
        if length > MAX_BUFFER - 4:
            return b"", True
        if len(self.buffer) < 4 + length:
            return b"", False
        sequence = self.buffer[3]
        message = b"Access denied for user (using password: YES)"
        payload = b"\xff" + struct.pack("<H", 1045) + b"#28000" + message
        return _mysql_packet((sequence + 1) & 0xFF, payload), True


def _mysql_packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def vpn_datagram(data: bytes, seed: bytes) -> bytes | None:
    """OpenVPN-like: answer a P_CONTROL_HARD_RESET_CLIENT_V2 with a server reset; else silence.

    Lenient about the client's packet-id field, like nmap's 13-byte OpenVPN probe."""
    if len(data) < 13 or data[0] >> 3 != 7:
        return None
    client_session = data[1:9]
    ack_count = data[9]
    if ack_count > 8:
        return None
    offset = 10 + 4 * ack_count + (8 if ack_count else 0)
    if len(data) < offset:
        return None
    packet_id = (data[offset:offset + 4] + b"\0\0\0\0")[:4]
    server_session = hashlib.sha256(b"vpn" + seed).digest()[:8]
    return (bytes([8 << 3]) + server_session + b"\x01" + packet_id + client_session +
            b"\x00\x00\x00\x00")


_SESSIONS: dict[str, type[Session]] = {
    "http": HttpSession, "ipp": IppSession, "rtsp": RtspSession, "ssh": SshSession,
    "ftp": FtpSession, "telnet": TelnetSession, "smb": SmbSession, "rdp": RdpSession,
    "mqtt": MqttSession, "modbus": ModbusSession, "sql": SqlSession, "generic": GenericSession,
}


# ---- the exploit path -------------------------------------------------------------------------
class ExploitHandler:
    """The agent's one place where an exploit message can infect it.

    ``on_accept(message, service, peer, encoding)`` is called for a token the gate accepts and
    returns "infected" (the dormant worm woke) or "already" (it was active). Every rejection is
    logged as ``token-rejected`` with its reason.
    """

    def __init__(self, gate: InfectionGate, log: EventLog,
                 on_accept: Callable[[ExploitMessage, ServiceConfig, str, str], str],
                 clock: Callable[[], float] = time.time) -> None:
        self.gate = gate
        self.log = log
        self.on_accept = on_accept
        self.clock = clock
        self.rejected = 0

    def handle(self, plain: bytes, encoding: str, peer: str, service: ServiceConfig) -> bytes:
        verdict = self.gate.check(plain, peer=peer, service_vulns=service.vulns,
                                  now_wall=self.clock())
        if verdict.accepted and verdict.message is not None:
            status = self.on_accept(verdict.message, service, peer, encoding)
        else:
            self.rejected += 1
            message = verdict.message
            self.log.emit("token-rejected", technique=TECHNIQUES["exploit"], source=peer,
                          service=service.name, port=service.port, proto=service.proto,
                          vuln=message.vuln if message else None, encoding=encoding,
                          reason=verdict.reason)
            status = ("not-vulnerable" if verdict.reason in ("not-vulnerable", "patched")
                      else "rejected")
        return make_reply(status, encoding, os.urandom(4))


class MockService:
    """One configured service of the host: makes connections and answers datagrams."""

    def __init__(self, config: ServiceConfig, exploits: ExploitHandler, seed: bytes) -> None:
        self.config = config
        self.exploits = exploits
        self.banner = config.banner or DEFAULT_BANNERS.get(config.name, "")
        self.seed = seed
        if config.name not in DEFAULT_BANNERS:
            raise ValueError(f"unknown service kind {config.name!r}")

    def connection(self, peer: str) -> Connection:
        return Connection(self, peer)

    def datagram(self, data: bytes, peer: str) -> bytes | None:
        """One UDP datagram in, at most one out."""
        data = data[:MAX_BUFFER]
        line = data.split(b"\n", 1)[0]
        if len(line) <= MAX_EXPLOIT_LINE:
            decoded = decode_line(line, PAYLOAD_MARKER_BYTES)
            if decoded is not None:
                return self.exploits.handle(decoded[0], decoded[1], peer, self.config)
        if self.config.name == "vpn":
            return vpn_datagram(data, self.seed)
        return None


class Connection:
    """One TCP connection to a mock service. Sans-IO."""

    def __init__(self, service: MockService, peer: str) -> None:
        self.service = service
        self.peer = peer
        kind = service.config.name
        self.session: Session = _SESSIONS.get(kind, GenericSession)(service.banner, service.seed)
        self._pending = b""
        self._decided = False
        self.closed = False

    def greeting(self) -> bytes:
        return self.session.greeting()

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        if self.closed:
            return b"", True
        if self._decided:
            reply, close = self.session.feed(data)
        else:
            reply, close = self._undecided(data)
        self.closed = close
        return reply, close

    def _undecided(self, data: bytes) -> tuple[bytes, bool]:
        """The first line decides: exploit message or ordinary protocol data."""
        self._pending += data
        pending = self._pending
        newline = pending.find(b"\n")
        maybe_exploit = (PAYLOAD_MARKER_BYTES.startswith(pending[:len(PAYLOAD_MARKER_BYTES)])
                         or _BASE64_START.match(pending) is not None)
        if maybe_exploit and newline < 0 and len(pending) <= MAX_EXPLOIT_LINE:
            return b"", False  # wait for the end of the first line
        if maybe_exploit and 0 <= newline <= MAX_EXPLOIT_LINE:
            decoded = decode_line(pending[:newline], PAYLOAD_MARKER_BYTES)
            if decoded is not None:
                self._pending = b""
                return self.service.exploits.handle(decoded[0], decoded[1], self.peer,
                                                    self.service.config), True
        self._decided = True
        self._pending = b""
        return self.session.feed(pending)
