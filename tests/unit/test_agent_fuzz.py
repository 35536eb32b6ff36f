"""Fuzzing the mock services: random, malformed, replayed and forged messages never infect and
never crash a handler. Sans-IO: the protocol handlers are called directly, as the runtime does."""

from __future__ import annotations

import binascii
import os
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.agent.config import ServiceConfig
from testbed.agent.events import EventLog
from testbed.agent.protocol import (
    PAYLOAD_MARKER,
    InfectionGate,
    encode_line,
    make_exploit,
    message_line,
)
from testbed.agent.services import SERVICE_KINDS, ExploitHandler, MockService
from testbed.model.spec import DEFAULT_PORTS

SECRET = os.urandom(32)
RUN = "fuzz"
VICTIM, ATTACKER = "10.9.0.9", "10.9.0.5"
VULN = "MOCK-FZ-1"


class Victim:
    def __init__(self, log_path: Path, *, patched: bool = False) -> None:
        self.log = EventLog(log_path, "victim", schedule=lambda delay, callback: None)
        self.accepted = 0
        gate = InfectionGate(run=RUN, secret=SECRET, own_address=VICTIM, patched=patched)
        self.handler = ExploitHandler(gate, self.log, self._accept)
        self.services = {kind: MockService(ServiceConfig(kind, *DEFAULT_PORTS[kind], "", (VULN,)),
                                           self.handler, b"fuzz") for kind in SERVICE_KINDS}

    def __enter__(self) -> Victim:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.log.close()  # 1,500 hypothesis examples would otherwise hold 1,500 descriptors

    def _accept(self, *args: object) -> str:
        self.accepted += 1
        return "infected"

    def deliver(self, kind: str, data: bytes, rng: random.Random, peer: str = ATTACKER) -> None:
        service = self.services[kind]
        if service.config.proto == "udp":
            service.datagram(data, peer)
            return
        connection = service.connection(peer)
        connection.greeting()
        position = 0
        while position < len(data):
            size = rng.choice((1, 3, 16, 100, 4096))
            _, closed = connection.receive(data[position:position + size])
            position += size
            if closed:
                break


def valid_line(rng: random.Random, **overrides: object) -> bytes:
    fields: dict[str, object] = dict(secret=SECRET, run=RUN, vuln=VULN, source=ATTACKER,
                                     target=VICTIM, nonce=rng.randbytes(16).hex(),
                                     issued_ms=int(time.time() * 1000), generation=rng.randrange(5),
                                     parent="launch-pad",
                                     weights=tuple(rng.uniform(-1, 1) for _ in range(6)))
    fields.update(overrides)
    return message_line(make_exploit(**fields))  # type: ignore[arg-type]


def wrap(line: bytes, rng: random.Random) -> bytes:
    return encode_line(line, rng.choice(("plain", "encoded")), rng.randbytes(4))


def mutate(line: bytes, rng: random.Random) -> bytes:
    """A changed copy of ``line`` (never the same bytes: that would be a fresh valid token)."""
    while (changed := _mutate_once(line, rng)) == line:
        pass
    return changed


def _mutate_once(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    choice = rng.randrange(6)
    if choice == 0:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:  # truncate
        del data[rng.randrange(len(PAYLOAD_MARKER), len(data)):]
    elif choice == 2:  # duplicate or drop a field
        parts = bytes(data).split(b" ")
        index = rng.randrange(1, len(parts))
        if rng.random() < 0.5:
            parts.insert(index, parts[index])
        else:
            del parts[index]
        data = bytearray(b" ".join(parts))
    elif choice == 3:  # swap two fields
        parts = bytes(data).split(b" ")
        i, j = rng.randrange(1, len(parts)), rng.randrange(1, len(parts))
        parts[i], parts[j] = parts[j], parts[i]
        data = bytearray(b" ".join(parts))
    elif choice == 4:  # hostile weights: code, huge, non-finite, too many
        parts = bytes(data).split(b" ")
        parts[8] = rng.choice([b"__import__('os').system('id')", b"1e999", b"nan,inf",
                               b",".join([b"1.0"] * 200), b"1" * 5000, b"-0x1p3"])
        data = bytearray(b" ".join(parts))
    else:  # garbage appended / inserted
        data[rng.randrange(len(data)):rng.randrange(len(data))] = rng.randbytes(rng.randint(1, 40))
    return bytes(data)


def forge(rng: random.Random) -> bytes:
    line = valid_line(rng)
    parts = line.split(b" ")
    choice = rng.randrange(4)
    if choice == 0:
        return valid_line(rng, secret=rng.randbytes(32))  # another secret
    if choice == 1:
        parts[-1] = rng.randbytes(32).hex().encode()  # random mac
    elif choice == 2:  # change a signed field, keep the mac
        index = rng.choice((1, 2, 3, 5, 6, 7, 8))
        parts[index] = {1: b"MOCK-FZ-2", 2: b"10.9.0.6", 3: b"10.9.0.8", 5: b"1",
                        6: b"99", 7: b"attacker", 8: b"9.0"}[index]
    else:
        return valid_line(rng, run="another-run")
    return b" ".join(parts)


TOTAL_MESSAGES = 105_000


def test_fuzz_100k_messages_zero_infections_zero_crashes(tmp_path: Path) -> None:
    rng = random.Random(20240501)
    with Victim(tmp_path / "events.jsonl") as victim:
        kinds = list(SERVICE_KINDS)

        # positive control: the gate does accept fresh valid tokens (so zero below means something)
        consumed = [valid_line(rng) for _ in range(50)]
        for line in consumed:
            victim.deliver(rng.choice(kinds), wrap(line, rng) , rng)
        assert victim.accepted == 50
        victim.accepted = 0
        rejected_before = victim.handler.rejected

        counts = dict.fromkeys(("random", "lines", "mutated", "forged", "replayed", "misdirected",
                                "buried"), 0)
        now_ms = int(time.time() * 1000)
        for index in range(TOTAL_MESSAGES):
            kind = kinds[index % len(kinds)]
            category = rng.choices(list(counts), weights=(28, 10, 25, 15, 10, 8, 4))[0]
            counts[category] += 1
            peer = ATTACKER
            if category == "random":
                data = rng.randbytes(rng.choice((0, 1, 5, 64, 300, 2000)))
            elif category == "lines":
                alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= -"
                text = "".join(rng.choices(alphabet, k=rng.randint(1, 200)))
                if rng.random() < 0.3:
                    text = PAYLOAD_MARKER + " " + text
                data = text.encode() + b"\n"
            elif category == "mutated":
                data = wrap(mutate(valid_line(rng), rng), rng)
            elif category == "forged":
                data = wrap(forge(rng), rng)
            elif category == "replayed":
                data = wrap(rng.choice(consumed), rng)  # re-encoded with a new key: same nonce
            elif category == "misdirected":
                variant = rng.randrange(4)
                if variant == 0:
                    data = wrap(valid_line(rng, target="10.9.0.10"), rng)
                elif variant == 1:
                    data = wrap(valid_line(rng), rng)
                    peer = "10.9.0.77"  # token made for another sender
                elif variant == 2:
                    data = wrap(valid_line(rng, issued_ms=now_ms - 61_000 - rng.randrange(10**6)),
                                rng)
                else:
                    data = wrap(valid_line(rng, vuln="MOCK-FZ-OTHER"), rng)
            else:  # a fresh valid token, but not as the connection's first line
                data = b"HELLO there\r\n" + wrap(valid_line(rng), rng)
                kind = rng.choice([k for k in kinds if DEFAULT_PORTS[k][1] == "tcp"])
            victim.deliver(kind, data, rng, peer)
        victim.log.close()

        assert sum(counts.values()) >= 100_000
        assert all(counts.values())
        assert victim.accepted == 0
        # every exploit-shaped message that reached the gate was logged as token-rejected
        assert victim.handler.rejected - rejected_before >= counts["forged"] + counts["replayed"]
        logged = (tmp_path / "events.jsonl").read_bytes()
        for reason in (b"forged", b"replay", b"malformed", b"wrong-target", b"not-vulnerable"):
            assert b'"reason":"' + reason + b'"' in logged


def test_patched_host_is_never_infected_by_valid_tokens(tmp_path: Path) -> None:
    rng = random.Random(1)
    with Victim(tmp_path / "events.jsonl", patched=True) as victim:
        for index in range(2000):
            kind = SERVICE_KINDS[index % len(SERVICE_KINDS)]
            victim.deliver(kind, wrap(valid_line(rng), rng), rng)
        assert victim.accepted == 0


@pytest.mark.parametrize("kind", SERVICE_KINDS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=600), max_size=8))
def test_arbitrary_chunks_never_crash_or_infect(kind: str, chunks: list[bytes],
                                                tmp_path: Path) -> None:
    with Victim(tmp_path / "events.jsonl") as victim:
        service = victim.services[kind]
        if service.config.proto == "udp":
            for chunk in chunks:
                service.datagram(chunk, ATTACKER)
        else:
            connection = service.connection(ATTACKER)
            connection.greeting()
            for chunk in chunks:
                reply, closed = connection.receive(chunk)
                assert isinstance(reply, bytes)
                if closed:
                    break
        assert victim.accepted == 0


def test_base64_lookalikes_decode_safely() -> None:
    rng = random.Random(3)
    with Victim(Path(os.devnull)) as victim:
        for _ in range(2000):
            raw = rng.randbytes(rng.randint(5, 700))
            victim.deliver("generic", binascii.b2a_base64(raw), rng)
        assert victim.accepted == 0
