"""Exploit messages, tokens and the infection gate."""

from __future__ import annotations

import os
import time

import pytest

from testbed.agent.protocol import (
    PAYLOAD_MARKER_BYTES,
    InfectionGate,
    MalformedMessage,
    decode_line,
    encode_line,
    make_exploit,
    make_reply,
    message_line,
    parse_exploit,
    parse_reply,
    parse_weights,
)

SECRET = b"s" * 32
RUN = "unit-run"


def token(**overrides: object) -> bytes:
    fields: dict[str, object] = dict(secret=SECRET, run=RUN, vuln="MOCK-SMB-1",
                                     source="10.0.1.5", target="10.0.1.9",
                                     nonce=os.urandom(16).hex(),
                                     issued_ms=int(time.time() * 1000), generation=0,
                                     parent="laptop", weights=(0.5, -1.25))
    fields.update(overrides)
    return message_line(make_exploit(**fields))  # type: ignore[arg-type]


def gate(patched: bool | frozenset[str] = frozenset()) -> InfectionGate:
    return InfectionGate(run=RUN, secret=SECRET, own_address="10.0.1.9", patched=patched)


def check(g: InfectionGate, line: bytes, peer: str = "10.0.1.5",
          vulns: tuple[str, ...] = ("MOCK-SMB-1",)) -> str:
    verdict = g.check(line, peer=peer, service_vulns=vulns, now_wall=time.time())
    return "accepted" if verdict.accepted else verdict.reason


def test_valid_token_is_accepted_once_then_replay() -> None:
    g, line = gate(), token()
    assert check(g, line) == "accepted"
    assert check(g, line) == "replay"


@pytest.mark.parametrize(("line", "reason"), [
    (lambda: token(secret=b"x" * 32), "forged"),
    (lambda: token(run="other-run"), "forged"),
    (lambda: token().replace(b"MOCK-SMB-1", b"MOCK-SMB-2"), "forged"),
    (lambda: token().replace(b" 0 laptop", b" 7 laptop"), "forged"),
    (lambda: token().replace(b"0.5,", b"9.5,"), "forged"),
    (lambda: token(target="10.0.1.10"), "wrong-target"),
    (lambda: token(source="10.0.1.6"), "forged"),  # made for another source than the peer
    (lambda: token(issued_ms=int(time.time() * 1000) - 120_000), "replay"),  # too old
    (lambda: token(issued_ms=int(time.time() * 1000) + 120_000), "replay"),  # from the future
    (lambda: token()[:-3], "malformed"),
    (lambda: token() + b" extra", "malformed"),
    (lambda: token(weights=(float("inf"),)), "malformed"),
])
def test_bad_tokens_are_rejected_with_a_reason(line, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert check(gate(), line()) == reason


def test_patched_and_not_carried_vulnerabilities_do_not_infect() -> None:
    assert check(gate(patched=True), token()) == "patched"
    assert check(gate(patched=frozenset({"MOCK-SMB-1"})), token()) == "patched"
    assert check(gate(), token(), vulns=("MOCK-HTTP-1",)) == "not-vulnerable"
    assert check(gate(patched=frozenset({"MOCK-OTHER"})), token()) == "accepted"


def test_encoded_form_hides_the_marker_and_decodes() -> None:
    line = token()
    encoded = encode_line(line, "encoded", os.urandom(4))
    assert PAYLOAD_MARKER_BYTES not in encoded
    assert encoded != encode_line(line, "encoded", bytes([1, 2, 3, 4]))
    assert decode_line(encoded, PAYLOAD_MARKER_BYTES) == (line, "encoded")
    assert decode_line(encode_line(line, "plain", b""), PAYLOAD_MARKER_BYTES) == (line, "plain")
    assert decode_line(b"GET / HTTP/1.1\r\n", PAYLOAD_MARKER_BYTES) is None
    assert decode_line(b"aGVsbG8gd29ybGQ=\n", PAYLOAD_MARKER_BYTES) is None


def test_replies_parse_after_a_banner_and_never_carry_the_marker() -> None:
    for encoding in ("plain", "encoded"):
        reply = make_reply("infected", encoding, os.urandom(4))
        assert PAYLOAD_MARKER_BYTES not in reply
        assert parse_reply(b"220 (vsFTPd 3.0.3)\r\n" + reply) == "infected"
    assert parse_reply(b"MOCKREPLY1 pwned\n") is None


def test_weights_are_numbers_only_and_bounded() -> None:
    assert parse_weights("-") == ()
    assert parse_weights("1.5,-2e3") == (1.5, -2000.0)
    for bad in ("nan", "inf", "1e999", "1_0", "0x10", ",".join(["1"] * 65), "1.0e+5000",
                "__import__('os')", "1e7"):
        with pytest.raises(MalformedMessage):
            parse_weights(bad)


def test_parse_exploit_round_trips() -> None:
    message = make_exploit(secret=SECRET, run=RUN, vuln="MOCK-A", source="10.0.0.1",
                           target="10.0.0.2", nonce="ab" * 16, issued_ms=5, generation=3,
                           parent="cam-1", weights=())
    assert parse_exploit(message_line(message)) == message


def test_nonce_cache_overflow_raises_the_watermark(monkeypatch: pytest.MonkeyPatch) -> None:
    import testbed.agent.protocol as protocol

    monkeypatch.setattr(protocol, "NONCE_CACHE_SIZE", 10)
    g = gate()
    now_ms = int(time.time() * 1000)
    lines = [token(issued_ms=now_ms - 1000 + i) for i in range(20)]
    assert all(check(g, line) == "accepted" for line in lines)
    # the first ones were forgotten, but they cannot come back
    assert check(g, lines[0]) == "replay"
    assert check(g, token(issued_ms=now_ms - 995)) == "replay"  # older than the watermark
    assert check(g, token(issued_ms=now_ms)) == "accepted"
