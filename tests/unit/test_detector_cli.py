"""`testbed detect` and `testbed detectors` through the CLI's own entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.cli.main import main
from testbed.sensor.synth import TrafficBuilder


@pytest.fixture()
def scan_pcap(tmp_path: Path) -> Path:
    traffic = TrafficBuilder()
    for i in range(6):
        traffic.tcp("10.9.0.2", f"10.9.0.{50 + i}", 445, "refused").wait(0.1)
    return traffic.write(tmp_path / "scan.pcap")


def test_detectors_json_lists_every_detector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detectors", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = [d["name"] for d in listed]
    assert "trw" in names and "suricata" in names
    trw = listed[names.index("trw")]
    assert trw["parameters"]["theta0"] == 0.8 and trw["references"]


def test_detectors_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detectors", "trw"]) == 0
    assert "theta0" in capsys.readouterr().out


def test_detect_json_lines_are_eve_alerts(scan_pcap: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(scan_pcap), "--detector", "trw", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event_type"] == "alert" and record["alert"]["metadata"]["detector"] == "trw"
    assert record["src_ip"] == "10.9.0.2" and record["dest_ip"] == "10.9.0.53"


def test_detect_params_and_table(scan_pcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # With theta1 = 0.01 a failure weighs 4.95: flagged at the 3rd failure already.
    assert main(["detect", str(scan_pcap), "-d", "trw", "-p", "trw.theta1=0.01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dest_ip"] == "10.9.0.52"
    assert main(["detect", str(scan_pcap)]) == 0
    out = capsys.readouterr().out
    assert "trw" in out and "1 alert" in out


def test_detect_with_topology_names_hosts(scan_pcap: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "t.yaml"
    topology.write_text("name: t\nsegments:\n  lan: {cidr: 10.9.0.0/24}\n"
                        "hosts:\n  pc: {segment: lan, tier: workstation, ip: 10.9.0.2}\n")
    assert main(["detect", str(scan_pcap), "-t", str(topology), "-d", "trw", "-d", "darknet",
                 "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["alert"]["metadata"]["detector"] for r in records} == {"trw", "darknet"}
    assert {r["alert"]["metadata"]["src_host"] for r in records} == {"pc"}


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["detect", "/nonexistent/x.pcap"], 1, "no such capture file"),
    (["detect", "{pcap}", "-d", "trww"], 2, "did you mean 'trw'"),
    (["detect", "{pcap}", "-p", "trw.nope=1"], 1, "has no parameter 'nope'"),
    (["detect", "{pcap}", "-p", "fanout.window_s=1", "-d", "trw"], 1, "add --detector fanout"),
    (["detect", "{pcap}", "-p", "trw"], 1, "is not NAME.KEY=VALUE"),
])
def test_detect_errors_are_clear(scan_pcap: Path, capsys: pytest.CaptureFixture[str],
                                 argv: list[str], code: int, message: str) -> None:
    argv = [a.replace("{pcap}", str(scan_pcap)) for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
