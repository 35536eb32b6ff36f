"""The ``reversal`` detector (issue 13's behavioural defence): a server that turns on its own
clients is flagged; clients and servers that keep their roles are not."""

from __future__ import annotations

from typing import Any

from detectors.base import ConnEvent, check_detector
from detectors.reversal import RoleReversalDetector

PRINTER, PC, FILESERVER, OTHER = "10.0.0.20", "10.0.0.31", "10.0.0.11", "10.0.0.40"


def contact(time: float, src: str, dst: str, outcome: str = "success", dport: int = 445,
            first: bool = True) -> ConnEvent:
    return ConnEvent(time, "outcome", src, dst, dport=dport, outcome=outcome, first=first)


def detector(**params: Any) -> RoleReversalDetector:
    instance = RoleReversalDetector(**params)
    instance.reset(1)
    return instance


def test_it_conforms_to_the_plug_in_contract() -> None:
    check_detector(RoleReversalDetector)


def test_a_printer_calling_a_pc_that_printed_is_flagged() -> None:
    watcher = detector()
    assert watcher.observe(contact(1.0, PC, PRINTER, dport=631)) == []
    (alert,) = watcher.observe(contact(5.0, PRINTER, PC, outcome="refused", dport=80))
    assert alert.src_ip == PRINTER and alert.detector == "reversal"
    assert alert.evidence["clients_contacted"] == [PC]
    assert watcher.observe(contact(6.0, PRINTER, OTHER)) == []  # one alert per source


def test_clients_and_servers_that_keep_their_roles_are_not() -> None:
    watcher = detector()
    events = [contact(1.0, PC, FILESERVER), contact(2.0, PC, FILESERVER, first=False),
              contact(3.0, PC, PRINTER, dport=631), contact(4.0, FILESERVER, OTHER),
              contact(5.0, PC, OTHER, outcome="refused")]
    assert [alert for event in events for alert in watcher.observe(event)] == []


def test_a_failed_contact_makes_nobody_a_client() -> None:
    watcher = detector()
    watcher.observe(contact(1.0, PC, PRINTER, outcome="refused"))
    assert watcher.observe(contact(2.0, PRINTER, PC)) == []


def test_a_mutual_pair_is_no_reversal() -> None:
    watcher = detector()
    watcher.observe(contact(1.0, FILESERVER, PC))  # the server called first
    watcher.observe(contact(2.0, PC, FILESERVER))
    assert watcher.observe(contact(3.0, FILESERVER, PC, dport=3389, first=False)) == []


def test_window_and_threshold() -> None:
    late = detector(window_s=10.0)
    late.observe(contact(1.0, PC, PRINTER, dport=631))
    assert late.observe(contact(20.0, PRINTER, PC)) == []  # served too long ago
    two = detector(threshold=2)
    two.observe(contact(1.0, PC, PRINTER, dport=631))
    two.observe(contact(1.5, OTHER, PRINTER, dport=631))
    assert two.observe(contact(2.0, PRINTER, PC)) == []
    assert len(two.observe(contact(2.5, PRINTER, OTHER))) == 1
