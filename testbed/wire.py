"""The mock worm's public wire constants: what a defender could read in a published signature.

Owns: ``PAYLOAD_MARKER`` (and its bytes), the fixed ASCII string every *plain* exploit message
starts with. Two sides share it and must not import each other for it: the agent runtime
(``testbed.agent.protocol`` writes it) and the ``signature`` detector plug-in (matches it); the
Suricata rules in ``detectors/rules/testbed.rules`` carry the same string (a unit test checks).

Must not import anything but the standard library: the agent runs inside hosts with nothing but
python3, and detector plug-ins may import only the plug-in API and neutral modules like this one.
The rest of the message format (fields, HMAC, encodings) stays private to ``testbed.agent``.
"""

from __future__ import annotations

__all__ = ["PAYLOAD_MARKER", "PAYLOAD_MARKER_BYTES"]

PAYLOAD_MARKER = "MOCKWORM1-PAYLOAD"
"""Fixed ASCII string at the start of every plain exploit message (never in encoded ones, never in
replies or benign traffic). Signature detectors and Suricata rules match on it."""
PAYLOAD_MARKER_BYTES = PAYLOAD_MARKER.encode("ascii")
