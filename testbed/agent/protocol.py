"""The mock exploit on the wire, and the infection gate that checks it.

Owns: the exploit message format (plain and encoded), the reply format, the HMAC token and its
verification (nonce cache, time window, target/source/vulnerability/patch checks). Sans-IO: no
sockets, no files; ``testbed.agent.services`` feeds it bytes and acts on its verdicts.
Must not: ever accept anything but a token made under the run's secret; the secret itself never
appears in any message.

Message (one line, at most ``MAX_MESSAGE`` bytes, ASCII)::

    MOCKWORM1-PAYLOAD <vuln> <source> <target> <nonce> <issued_ms> <generation> <parent>
        <weights> <mac>          (one line, fields separated by single spaces)

- ``vuln``: a mock vulnerability id (``MOCK-...``); ``source``/``target``: IPv4 addresses;
  ``nonce``: 32 hex digits; ``issued_ms``: wall-clock milliseconds when it was made;
  ``generation``: the sender's generation (patient zero is 0); ``parent``: the sender's host name;
  ``weights``: ``-`` or up to ``MAX_WEIGHTS`` comma-separated decimal numbers (the sender's learned
  tactic weights, in the canonical arm order both sides derive from the topology; numbers only);
  ``mac``: hex HMAC-SHA256 under the run's secret over the run name and every field above.
- plain encoding: the line as above; it starts with ``PAYLOAD_MARKER`` (what signature detectors and
  Suricata rules match).
- encoded encoding: base64 of ``key(4 bytes) + line XOR key`` with a fresh random key per message,
  so no fixed byte string survives: a signature detector is blind to it.

Reply (service to sender, same encoding as the request)::  ``MOCKREPLY1 <status>`` with status one
of ``REPLY_STATUSES``. The reply never contains ``PAYLOAD_MARKER``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import math
import re
from collections import OrderedDict
from dataclasses import dataclass

from testbed.wire import PAYLOAD_MARKER, PAYLOAD_MARKER_BYTES

__all__ = [
    "MAX_MESSAGE",
    "MAX_WEIGHTS",
    "PAYLOAD_MARKER",
    "PAYLOAD_MARKER_BYTES",
    "REPLY_PREFIX",
    "REPLY_STATUSES",
    "ExploitMessage",
    "GateVerdict",
    "InfectionGate",
    "MalformedMessage",
    "decode_line",
    "encode_line",
    "make_exploit",
    "make_reply",
    "parse_reply",
    "sign",
]

REPLY_PREFIX = "MOCKREPLY1"
REPLY_STATUSES = ("infected", "already", "not-vulnerable", "rejected")
MAX_MESSAGE = 1024
MAX_WEIGHTS = 64
WEIGHT_BOUND = 1e6
TOKEN_WINDOW_S = 60.0
"""A token is accepted only within this many seconds of ``issued_ms`` (either way)."""
NONCE_CACHE_SIZE = 100_000

_VULN = re.compile(r"MOCK-[A-Z0-9][A-Z0-9-]{0,40}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_INT = re.compile(r"[0-9]{1,15}")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_MAC = re.compile(r"[0-9a-f]{64}")
_NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,20})?(e[+-]?[0-9]{1,3})?")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]{8,1400}={0,2}")
_KEY_BYTES = 4


class MalformedMessage(ValueError):
    """A line that claims to be an exploit message but is not well formed."""


@dataclass(frozen=True, slots=True)
class ExploitMessage:
    vuln: str
    source: str
    target: str
    nonce: str
    issued_ms: int
    generation: int
    parent: str
    weights: tuple[float, ...]
    mac: str
    weights_text: str = ""  # the weights exactly as sent: the MAC covers the bytes, not values

    def signed_fields(self) -> list[str]:
        return [self.vuln, self.source, self.target, self.nonce, str(self.issued_ms),
                str(self.generation), self.parent,
                self.weights_text or format_weights(self.weights)]


def format_weights(weights: tuple[float, ...]) -> str:
    return ",".join(repr(float(w)) for w in weights) if weights else "-"


def parse_weights(text: str) -> tuple[float, ...]:
    """Numbers only: finite, bounded, at most MAX_WEIGHTS of them."""
    if text == "-":
        return ()
    parts = text.split(",")
    if len(parts) > MAX_WEIGHTS:
        raise MalformedMessage(f"more than {MAX_WEIGHTS} weights")
    weights = []
    for part in parts:
        if not _NUMBER.fullmatch(part):
            raise MalformedMessage("a weight is not a plain decimal number")
        value = float(part)
        if not math.isfinite(value) or abs(value) > WEIGHT_BOUND:
            raise MalformedMessage("a weight is not finite or out of bounds")
        weights.append(value)
    return tuple(weights)


def sign(secret: bytes, run: str, fields: list[str]) -> str:
    """HMAC-SHA256 (hex) over the run name and the fields, NUL-separated (fields never hold NUL)."""
    data = b"\0".join(part.encode("utf-8") for part in [run, *fields])
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def make_exploit(*, secret: bytes, run: str, vuln: str, source: str, target: str, nonce: str,
                 issued_ms: int, generation: int, parent: str,
                 weights: tuple[float, ...] = ()) -> ExploitMessage:
    values = tuple(float(w) for w in weights[:MAX_WEIGHTS])
    unsigned = ExploitMessage(vuln, source, target, nonce, issued_ms, generation, parent, values,
                              "", format_weights(values))
    mac = sign(secret, run, unsigned.signed_fields())
    return ExploitMessage(vuln, source, target, nonce, issued_ms, generation, parent, values, mac,
                          unsigned.weights_text)


def message_line(message: ExploitMessage) -> bytes:
    """The plain form, without the newline."""
    return " ".join([PAYLOAD_MARKER, *message.signed_fields(), message.mac]).encode("ascii")


def encode_line(line: bytes, encoding: str, key: bytes) -> bytes:
    """``line`` (no newline) in ``encoding`` with a trailing newline. ``key``: 4 random bytes."""
    if encoding == "plain":
        return line + b"\n"
    if len(key) != _KEY_BYTES:
        raise ValueError("key must be 4 bytes")
    masked = _xor(line, key)
    return binascii.b2a_base64(key + masked, newline=False) + b"\n"


def decode_line(line: bytes, prefix: bytes) -> tuple[bytes, str] | None:
    """The plain text of ``line`` if it is ``prefix``-led plain or encoded text, with the encoding
    it used; None when it is not such a line (ordinary protocol data)."""
    line = line.rstrip(b"\r\n")
    if line.startswith(prefix):
        return line, "plain"
    if len(line) > 2 * MAX_MESSAGE or not _BASE64.fullmatch(line):
        return None
    try:
        raw = binascii.a2b_base64(line, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= _KEY_BYTES:
        return None
    key, masked = raw[:_KEY_BYTES], raw[_KEY_BYTES:]
    if _xor(masked[:len(prefix)], key) != prefix:
        return None
    return _xor(masked, key), "encoded"


def _xor(data: bytes, key: bytes) -> bytes:
    """``data`` XOR the repeated ``key`` (big-integer XOR: fast in pure Python)."""
    if not data:
        return b""
    stream = (key * (len(data) // len(key) + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data),
                                                                                 "big")


def parse_exploit(plain: bytes) -> ExploitMessage:
    """Parse a plain exploit line (after ``decode_line``). Raises MalformedMessage."""
    if len(plain) > MAX_MESSAGE:
        raise MalformedMessage("message too long")
    try:
        text = plain.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedMessage("message is not ASCII") from None
    parts = text.split(" ")
    if len(parts) != 10 or parts[0] != PAYLOAD_MARKER:
        raise MalformedMessage("wrong number of fields")
    _, vuln, source, target, nonce, issued, generation, parent, weights, mac = parts
    if not _VULN.fullmatch(vuln):
        raise MalformedMessage("bad vulnerability id")
    for address in (source, target):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise MalformedMessage("bad address") from None
    if not _NONCE.fullmatch(nonce):
        raise MalformedMessage("bad nonce")
    if not _INT.fullmatch(issued) or not _INT.fullmatch(generation) or int(generation) > 100_000:
        raise MalformedMessage("bad number")
    if not _NAME.fullmatch(parent):
        raise MalformedMessage("bad parent name")
    if not _MAC.fullmatch(mac):
        raise MalformedMessage("bad mac")
    return ExploitMessage(vuln, source, target, nonce, int(issued), int(generation), parent,
                          parse_weights(weights), mac, weights)


def make_reply(status: str, encoding: str, key: bytes) -> bytes:
    # starts on a line of its own: a service's greeting may have left a prompt without newline
    return b"\r\n" + encode_line(f"{REPLY_PREFIX} {status}".encode("ascii"), encoding, key)


def parse_reply(data: bytes) -> str | None:
    """The reply status found in ``data`` (a service may have sent a banner first), else None."""
    for line in data.split(b"\n"):
        decoded = decode_line(line, REPLY_PREFIX.encode("ascii"))
        if decoded is None:
            continue
        parts = decoded[0].split(b" ")
        if len(parts) == 2:
            status = parts[1].decode("ascii", "replace")
            if status in REPLY_STATUSES:
                return status
    return None


@dataclass(frozen=True, slots=True)
class GateVerdict:
    accepted: bool
    reason: str  # "" when accepted; else "forged", "replay", "wrong-target", ...
    message: ExploitMessage | None = None


class InfectionGate:
    """Decides whether an exploit message infects this host. One per agent, shared by services.

    Checks, in order: well formed (malformed), HMAC (forged), addressed to this host
    (wrong-target), sent by the connection's peer (forged), fresh and unseen (replay), the service
    carries the vulnerability (not-vulnerable), the host has not patched it (patched).
    Forgeries never reach the nonce cache, so they cannot flood it.
    """

    def __init__(self, *, run: str, secret: bytes, own_address: str,
                 patched: bool | frozenset[str]) -> None:
        if not secret:
            raise ValueError("the run secret must not be empty")
        self.run = run
        self._secret = secret
        self.own_address = own_address
        self.patched = patched
        self._nonces: OrderedDict[str, int] = OrderedDict()  # nonce -> issued_ms, oldest first
        self._watermark_ms = -1  # tokens issued at or before it are too old to check: rejected

    def check(self, plain: bytes, *, peer: str, service_vulns: tuple[str, ...],
              now_wall: float) -> GateVerdict:
        try:
            message = parse_exploit(plain)
        except MalformedMessage:
            return GateVerdict(False, "malformed")
        expected = sign(self._secret, self.run, message.signed_fields())
        if not hmac.compare_digest(expected, message.mac):
            return GateVerdict(False, "forged", message)
        if message.target != self.own_address:
            return GateVerdict(False, "wrong-target", message)
        if message.source != peer:
            return GateVerdict(False, "forged", message)
        now_ms = int(now_wall * 1000)
        window_ms = int(TOKEN_WINDOW_S * 1000)
        if (abs(now_ms - message.issued_ms) > window_ms or message.issued_ms <= self._watermark_ms
                or message.nonce in self._nonces):
            return GateVerdict(False, "replay", message)
        self._remember(message.nonce, message.issued_ms, now_ms - window_ms)
        if message.vuln not in service_vulns:
            return GateVerdict(False, "not-vulnerable", message)
        if self.patched is True or (self.patched and message.vuln in self.patched):
            return GateVerdict(False, "patched", message)
        return GateVerdict(True, "", message)

    def _remember(self, nonce: str, issued_ms: int, oldest_ms: int) -> None:
        self._nonces[nonce] = issued_ms
        # expire by age (entries are roughly in issue order; an early stale one only costs memory)
        while self._nonces:
            first_nonce, first_issued = next(iter(self._nonces.items()))
            if first_issued >= oldest_ms and len(self._nonces) <= NONCE_CACHE_SIZE:
                break
            del self._nonces[first_nonce]
            # forgetting a nonce must not reopen it: refuse everything issued up to it
            self._watermark_ms = max(self._watermark_ms, first_issued)
