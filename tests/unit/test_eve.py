"""EVE alerts and Community IDs: the ID matches the specification's published vectors, every
alert the testbed writes validates against Suricata's own EVE schema, the scorer reads the new
shape (and the old one) into identical metrics, and ``testbed detect -`` reads standard input."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Alert
from testbed.cli.main import main
from testbed.community_id import community_id, community_id_icmp, flow_community_id
from testbed.eve import (
    ALERT_VERSION,
    alert_detector,
    alert_source_host,
    alert_time,
    eve_timestamp,
    flow_id,
    upgrade_alert,
)
from testbed.sensor.synth import TrafficBuilder

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "data" / "community-id"
RECORDED = REPO / "tests" / "data" / "recorded" / "basement-launchpad-seed42"


def _vector_rows(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return rows


@pytest.mark.parametrize(("name", "seed"), [("baseline_deflt.json", 0),
                                            ("baseline_seed1.json", 1)])
def test_community_id_matches_every_published_baseline_vector(name: str, seed: int) -> None:
    rows = _vector_rows(name)
    assert len(rows) == 23
    for row in rows:
        # ICMP rows carry the type and its mapped counterpart/code as ports (see the README).
        got = community_id(row["proto"], row["saddr"], row["daddr"], row["sport"],
                           row["dport"], seed=seed)
        assert got == row["communityid"], row


def test_community_id_table_vectors_of_the_specification() -> None:
    """The spec's README tables: directions agree, ICMP pairs share an ID, no-base64 form."""
    assert community_id(6, "1.2.3.4", "5.6.7.8", 1122, 3344) == \
        community_id(6, "5.6.7.8", "1.2.3.4", 3344, 1122) == "1:wCb3OG7yAFWelaUydu0D+125CLM="
    assert community_id(17, "1.2.3.4", "5.6.7.8", 1122, 3344) == "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="
    assert community_id(132, "1.2.3.4", "5.6.7.8", 1122, 3344) == \
        "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8="
    assert community_id_icmp("1.2.3.4", "5.6.7.8", 8, 0) == \
        community_id_icmp("5.6.7.8", "1.2.3.4", 0, 0) == "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
    assert community_id_icmp("1.2.3.4", "5.6.7.8", 11, 0) == "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="
    assert community_id(46, "5.6.7.8", "1.2.3.4") == "1:ikv3kmf89luf73WPz1jOs49S768="
    assert community_id(6, "1.2.3.4", "5.6.7.8", 1122, 3344, base64_digest=False) == \
        "1:c026f7386ef200559e95a53276ed03fb5db908b3"
    assert community_id(6, "1.2.3.4", "5.6.7.8", 1122, 3344, seed=1) == \
        "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="
    # The sensor's names: an echo flow is ICMP type 8; ARP-only contacts get a port-less ID.
    assert flow_community_id("ICMP", "1.2.3.4", "5.6.7.8") == "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
    assert flow_community_id("ARP", "10.0.0.1", "10.0.0.2").startswith("1:")
    assert flow_community_id("ARP", "10.0.0.1", "10.0.0.2") != \
        flow_community_id("TCP", "10.0.0.1", "10.0.0.2")
    assert flow_community_id("GRE?", "10.0.0.1", "10.0.0.2") == ""


def _alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = dict(time=100.0, detector="trw", src_ip="10.0.0.5",
                                  reason="TRW: scanner", severity=1, host="pc-1",
                                  dest_ip="10.0.0.9", dest_port=445, src_port=40001,
                                  proto="TCP", signature_id=9100001,
                                  evidence={"failures": 4, "ratio": 2.5, "seen": ["a"]})
    fields.update(changes)
    return Alert(**fields)


@pytest.mark.parametrize("changes", [{}, {"proto": "ARP", "dest_port": 0, "src_port": 0},
                                     {"proto": "", "dest_ip": "", "host": None},
                                     {"proto": "ICMP", "dest_port": 0, "src_port": 0},
                                     {"proto": "UDP", "in_iface": "tap-lan"}])
def test_alert_records_validate_against_suricatas_eve_schema(
        changes: dict[str, Any], eve_validator: Any) -> None:
    record = _alert(**changes).to_record(clock_offset=1_700_000_000.0, sensor="run-1-sensor")
    errors = [e.message for e in eve_validator.iter_errors(record)]
    assert errors == []
    assert record["timestamp"].endswith("+0000") and record["host"] == "run-1-sensor"
    assert record["in_iface"] == changes.get("in_iface", "run-1-sensor")
    assert record["alert"]["metadata"]["alert_version"] == ALERT_VERSION
    if record["dest_ip"]:
        assert record["community_id"] == flow_community_id(
            record["proto"], record["src_ip"], record["dest_ip"], record["src_port"],
            record["dest_port"])
        assert record["flow_id"] == flow_id(record["community_id"])


def test_the_eve_validator_rejects_the_old_alert_shape(eve_validator: Any) -> None:
    """The check has teeth: version-1 records (testbed keys at the top level, +00:00) fail."""
    old = json.loads((RECORDED / "alerts.jsonl").read_text().splitlines()[0])
    messages = " ".join(e.message for e in eve_validator.iter_errors(old))
    assert "Additional properties" in messages and "does not match" in messages
    assert list(eve_validator.iter_errors(upgrade_alert(old))) == []


def test_accessors_read_both_versions() -> None:
    old = json.loads((RECORDED / "alerts.jsonl").read_text().splitlines()[0])
    new = upgrade_alert(old, sensor="s")
    for record in (old, new):
        assert alert_time(record) == 396.984827655
        assert alert_detector(record) == "darknet" and alert_source_host(record) == "intranet"
    assert new["host"] == "s"
    assert eve_timestamp(1796016334.294099) == "2026-11-30T05:25:34.294099+0000"


def _recorded_copy(target: Path, *, upgrade: bool) -> Path:
    for name in ("manifest.json", "actions.jsonl"):
        shutil.copyfile(RECORDED / name, target / name)
    (target / "events.jsonl").write_bytes(gzip.decompress(
        (RECORDED / "events.jsonl.gz").read_bytes()))
    lines = (RECORDED / "alerts.jsonl").read_text().splitlines()
    if upgrade:
        lines = [json.dumps(upgrade_alert(json.loads(line))) for line in lines]
    (target / "alerts.jsonl").write_text("\n".join(lines) + "\n")
    return target


def test_recorded_flagship_scores_the_same_with_its_alerts_converted_to_eve(
        tmp_path: Path, eve_validator: Any) -> None:
    from testbed.model import load_scenario
    from testbed.scoring import load_run_records, score

    topology = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml").topology
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    before = _recorded_copy(tmp_path / "v1", upgrade=False)
    after = _recorded_copy(tmp_path / "v2", upgrade=True)
    for line in (after / "alerts.jsonl").read_text().splitlines():
        assert list(eve_validator.iter_errors(json.loads(line))) == []
    old = score(load_run_records(before, topology)).to_json()
    new = score(load_run_records(after, topology)).to_json()
    assert old == new
    assert json.loads(new)["time_to_first_detection_s"] is not None


def test_detect_reads_a_capture_from_standard_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        eve_validator: Any) -> None:
    traffic = TrafficBuilder()
    for i in range(6):
        traffic.tcp("10.9.0.2", f"10.9.0.{50 + i}", 445, "refused").wait(0.1)
    pcap = traffic.write(tmp_path / "scan.pcap")
    stdin = io.TextIOWrapper(io.BytesIO(pcap.read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["detect", "-", "-d", "trw", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["alert"]["metadata"]["detector"] for r in records] == ["trw"]
    assert records[0]["host"] == "stdin" and records[0]["src_port"] != 0  # the flow's port
    assert list(eve_validator.iter_errors(records[0])) == []
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["detect", "-"]) == 1
    assert "standard input held no capture" in capsys.readouterr().err
