"""What a mock service answers, in the simulator: the exploit path's verdicts and benign checks.

Owns: the acceptance rule of ``testbed.agent.services.ExploitHandler`` + ``InfectionGate`` for
the tokens the simulated worm sends (always well formed, correctly signed, fresh and addressed to
the target, so the gate's HMAC/replay/target checks pass by construction) and whether a benign
client's request to a service gets the answer its check expects.

Not yet a single shared function: the gate keeps its last two checks (the service carries the
vulnerability, the host has not patched it) inside ``InfectionGate.check``, after the HMAC. Until
``testbed.agent.protocol`` exposes them as a pure function (requested from its owner), this module
states them once, in the gate's order, on the model's own ``Service.vulns`` and
``Host.is_vulnerable_to``. The wire bytes (exploit lines and replies, for signature detectors)
come from ``testbed.agent.protocol`` itself.
"""

from __future__ import annotations

import hashlib

from testbed.agent.protocol import encode_line, make_exploit, make_reply, message_line
from testbed.model.topology import Host, Service

__all__ = ["ExploitVerdict", "benign_answer_ok", "exploit_bytes", "exploit_verdict",
           "reply_bytes"]

_HTTP_LIKE = frozenset({"http", "ipp"})


class ExploitVerdict:
    """The gate's verdict: ``status`` is the reply (infected-or-already is decided by the
    caller, who knows whether the agent is active), ``reason`` the token-rejected reason."""

    __slots__ = ("accepted", "reason")

    def __init__(self, accepted: bool, reason: str) -> None:
        self.accepted, self.reason = accepted, reason

    @property
    def reply(self) -> str:
        """The status a rejected token gets back (``ExploitHandler.handle``)."""
        return "not-vulnerable" if self.reason in ("not-vulnerable", "patched") else "rejected"


_ACCEPT = ExploitVerdict(True, "")
_NOT_VULNERABLE = ExploitVerdict(False, "not-vulnerable")
_PATCHED = ExploitVerdict(False, "patched")


def exploit_verdict(host: Host, service: Service, vuln: str) -> ExploitVerdict:
    """``InfectionGate.check`` for a genuine token: the service must carry the vulnerability
    (else ``not-vulnerable``), the host must not have patched it (else ``patched``)."""
    if vuln not in service.vulns:
        return _NOT_VULNERABLE
    if not host.is_vulnerable_to(vuln):
        return _PATCHED
    return _ACCEPT


def benign_answer_ok(requested_kind: str, service: Service) -> bool:
    """Whether ``testbed.agent.clients.benign_request`` for ``requested_kind`` passes its check
    against the mock ``service``: each kind's check accepts its own kind's answer (HTTP and
    IPP answer alike); UDP services other than ``vpn`` never answer a benign datagram."""
    if service.proto == "udp":
        return service.name == "vpn" and requested_kind == "vpn"
    if requested_kind == service.name:
        return True
    return requested_kind in _HTTP_LIKE and service.name in _HTTP_LIKE


def _key(*parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def exploit_bytes(*, secret: bytes, run: str, vuln: str, source: str, target: str,
                  issued_ms: int, generation: int, parent: str, weights: tuple[float, ...],
                  encoding: str, salt: int) -> bytes:
    """The exploit line the agent would send (``make_exploit`` + ``encode_line``), with the
    nonce and encoding key derived from ``salt`` instead of ``os.urandom`` (reproducible)."""
    digest = _key(run, source, target, salt)
    message = make_exploit(secret=secret, run=run, vuln=vuln, source=source, target=target,
                           nonce=digest[:16].hex(), issued_ms=issued_ms, generation=generation,
                           parent=parent, weights=weights)
    return encode_line(message_line(message), encoding, digest[16:20])


def reply_bytes(status: str, encoding: str, salt: int) -> bytes:
    return make_reply(status, encoding, _key("reply", salt)[:4])
