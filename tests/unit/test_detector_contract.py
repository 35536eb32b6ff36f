"""The detector contract: every registered detector passes the conformance checker."""

from __future__ import annotations

import json

import pytest

from detectors.base import Alert, ConnEvent, Detector, SensorContext, check_detector
from detectors.registry import (
    DETECTORS,
    describe_detector,
    detector_class,
    detector_names,
    detector_parameters,
)
from detectors.suricata import RULES_DIR
from testbed.errors import DetectorError, RegistryError


@pytest.mark.parametrize("name", detector_names())
def test_every_registered_detector_conforms(name: str) -> None:
    cls = detector_class(name)
    assert cls.NAME == name
    check_detector(cls)


def test_builtins_are_all_registered() -> None:
    assert set(detector_names()) >= {"trw", "throttle", "cbcrl", "fanout", "darknet",
                                     "signature", "graph", "suricata"}


def test_unknown_detector_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError) as caught:
        DETECTORS.get("trv")
    assert "trw" in str(caught.value) and "did you mean 'trw'" in str(caught.value)


def test_parameters_are_the_documented_literature_defaults() -> None:
    assert detector_parameters("trw") == {"theta0": 0.8, "theta1": 0.2, "p_detect": 0.99,
                                          "p_false": 0.01, "count_arp": True}
    assert detector_parameters("fanout")["address_threshold"] == 25
    assert detector_parameters("fanout")["port_threshold"] == 15
    assert detector_parameters("cbcrl")["initial_credits"] == 10
    assert detector_parameters("throttle")["working_set"] == 5
    described = describe_detector("trw")
    assert described["references"] and "Jung" in described["references"][0]
    json.dumps([describe_detector(n) for n in detector_names()])


def test_bad_parameters_are_refused_with_the_known_names() -> None:
    trw = detector_class("trw")
    with pytest.raises(DetectorError, match="theta0"):
        trw(None, thetta0=0.5)
    with pytest.raises(DetectorError, match="must be like its default"):
        trw(None, theta0="high")
    with pytest.raises(DetectorError, match="theta1 < theta0"):
        trw(None, theta0=1)
    fanout = detector_class("fanout")
    assert fanout(None, address_threshold=30.0).params["address_threshold"] == 30
    with pytest.raises(DetectorError, match="must be like its default"):
        fanout(None, address_threshold=2.5)


def test_checker_rejects_a_broken_detector() -> None:
    class Broken(Detector):
        """Returns a tuple from observe. Parameters: none."""

        NAME = "broken"
        REFERENCES = ("nobody",)

        def observe(self, event: ConnEvent) -> list[Alert]:
            return ()  # type: ignore[return-value]

    with pytest.raises(DetectorError, match="must return a list"):
        check_detector(Broken)

    class Nondeterministic(Detector):
        """Alerts at random. Parameters: none."""

        NAME = "random"
        REFERENCES = ("nobody",)
        calls = 0

        def observe(self, event: ConnEvent) -> list[Alert]:
            Nondeterministic.calls += 1
            if Nondeterministic.calls == 3:
                return [self.make_alert(event.time, event.src, "x")]
            return []

    with pytest.raises(DetectorError, match="determinism"):
        check_detector(Nondeterministic)

    class Undocumented(Detector):
        """No parameters documented here."""

        NAME = "undocumented"
        REFERENCES = ("nobody",)
        PARAMETERS = {"window": 3}

    with pytest.raises(DetectorError, match="document parameter 'window'"):
        check_detector(Undocumented)


def test_alert_record_is_eve_compatible() -> None:
    alert = Alert(time=100.0, detector="trw", src_ip="10.0.0.5", reason="TRW: scanner",
                  severity=1, host="pc-1", dest_ip="10.0.0.9", dest_port=445, proto="TCP",
                  signature_id=9100001, evidence={"failures": 4})
    record = alert.to_record(clock_offset=1_700_000_000.0)
    assert record["event_type"] == "alert"
    assert record["timestamp"].startswith("2023-11-14T22:15:")
    assert record["timestamp"].endswith("+0000")  # EVE's zone, not isoformat's +00:00
    assert record["alert"]["signature"] == "TRW: scanner"
    assert record["alert"]["severity"] == 1 and record["alert"]["signature_id"] == 9100001
    assert record["src_ip"] == "10.0.0.5" and record["dest_port"] == 445
    metadata = record["alert"]["metadata"]
    assert metadata["mono"] == 100.0 and metadata["src_host"] == "pc-1"
    assert metadata["detector"] == "trw" and metadata["evidence"] == {"failures": 4}
    assert record["host"] == "testbed-sensor"  # EVE: the sensor's name
    assert record["community_id"].startswith("1:") and isinstance(record["flow_id"], int)
    json.dumps(record)


def test_context_never_holds_ground_truth_and_knows_topology(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from testbed.model.load_topology import load_topology

    topo = tmp_path / "t.yaml"
    topo.write_text("name: t\nsegments:\n  lan: {cidr: 10.9.0.0/24}\n  dmz: {cidr: 10.9.1.0/24}\n"
                    "hosts:\n  web: {segment: dmz, tier: server}\n"
                    "  pc: {segment: lan, tier: workstation}\n"
                    "routers:\n  fw: {segments: [lan, dmz], default: allow}\n"
                    "decoys: [10.9.0.200]\n")
    context = SensorContext.from_topology(load_topology(topo))
    assert context.host_of("10.9.1.2") == "web"
    assert context.host_of("10.9.0.1") == "router:fw"
    assert "10.9.0.1" in context.infrastructure
    assert context.decoys == frozenset({"10.9.0.200"})
    assert context.inside("10.9.0.77") and not context.inside("10.10.0.1")
    assert set(vars(context)) | {"_inside_cache"} == {
        "inventory", "cidrs", "decoys", "infrastructure", "taps", "pcap", "workdir",
        "_inside_cache"}


def test_shipped_rules_match_the_worm_marker() -> None:
    from testbed.agent import protocol
    from testbed.wire import PAYLOAD_MARKER

    assert protocol.PAYLOAD_MARKER is PAYLOAD_MARKER  # one definition, the agent's and the rules'
    rules = (RULES_DIR / "testbed.rules").read_text()
    assert f'content:"{PAYLOAD_MARKER}"' in rules
    sids = [line.split("sid:")[1].split(";")[0] for line in rules.splitlines()
            if line.startswith("alert")]
    assert len(sids) == len(set(sids)) >= 4
