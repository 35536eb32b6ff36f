"""The sensor: what a network tap sees, turned into connection events for the detectors.

Owns: live capture on a deployment's taps (``Sensor``), offline reading of capture files
(``events_from_pcap``, ``flows_from_pcaps``), the fast frame parser, the contact tracker and
the flow table they share. Must not touch:
the deployment's configuration (it only listens) or ground truth.
"""

from __future__ import annotations

from detectors.base import ConnEvent
from testbed.sensor.capture import Sensor
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S, ContactTracker, Deduplicator
from testbed.sensor.flows import Flow, FlowTable
from testbed.sensor.offline import events_from_pcap, flows_from_pcaps

__all__ = [
    "DEFAULT_CONTACT_TIMEOUT_S",
    "ConnEvent",
    "ContactTracker",
    "Deduplicator",
    "Flow",
    "FlowTable",
    "Sensor",
    "events_from_pcap",
    "flows_from_pcaps",
]
