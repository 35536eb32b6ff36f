"""Payload signature: the mock worm's published marker in the first payload bytes.

Owns: the ``signature`` detector. It matches the wire constant a defender would publish as a
signature (``testbed.wire.PAYLOAD_MARKER``, the neutral module the agent writes it from); encoded
exploits carry no fixed bytes, so it is blind to them, as a real signature engine would be. Never
reads ground truth; imports only the plug-in API and ``testbed.wire``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector
from testbed.wire import PAYLOAD_MARKER

__all__ = ["SignatureDetector"]


class SignatureDetector(Detector):
    """Content signature on payload bytes (as Snort/Suricata ``content:`` rules; Roesch 1999).

    Alerts when a TCP segment's or UDP datagram's first payload bytes (the sensor passes 128)
    contain ``marker`` (default: the mock worm's ``PAYLOAD_MARKER``, "MOCKWORM1-PAYLOAD").
    One alert per source. Blind to the encoded exploit variant by design.
    """

    NAME = "signature"
    PARAMETERS: ClassVar[dict[str, Any]] = {"marker": PAYLOAD_MARKER}
    REFERENCES = ("Roesch. Snort: Lightweight Intrusion Detection for Networks. LISA 1999.",
                  "testbed.wire.PAYLOAD_MARKER (the mock worm's published wire marker).")
    KINDS = frozenset({"data", "udp"})
    SIGNATURE_ID = 9100006
    CATEGORY = "A Network Trojan was Detected"

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._marker = str(self.params["marker"]).encode("latin-1")
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        if self._marker not in event.payload or event.src in self._flagged:
            return []
        self._flagged.add(event.src)
        return [self.make_alert(
            event.time, event.src, "signature: mock worm exploit marker in payload",
            dest_ip=event.dst, dest_port=event.dport, src_port=event.sport, proto=event.proto,
            evidence={"marker": self._marker.decode("latin-1"),
                      "payload_prefix": event.payload[:48].decode("latin-1")})]
