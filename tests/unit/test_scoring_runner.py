"""The runner's pieces that need no privileges: tailing growing files, the headline, the live
view's plain mode, the outbreak status used for stop conditions, labels.csv, and the outputs a
salvage shares with the runner."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from testbed.actions import ActionLog, ActionRecord
from testbed.detection import load_scenario
from testbed.live import LiveStatus, LiveView
from testbed.model import load_topology
from testbed.report.sample import sample_records
from testbed.results import Manifest, headline, summarize
from testbed.runner.labels import write_labels
from testbed.runner.outbreak import Outbreak
from testbed.runner.outputs import (
    RunnerState,
    collect,
    read_runner_state,
    remove_state,
    score_run_dir,
    write_outputs,
    write_runner_state,
)
from testbed.runner.tail import JsonlTail, MultiTail
from testbed.scoring import score

SCENARIO = """\
name: tiny
topology: topology.yaml
worm: {profile: classic, patient_zero: [laptop]}
detectors: [{name: trw}]
response: {rules: [{on: any, action: quarantine}]}
stop: {when: [contained, crown-jewel-infected]}
"""
TOPOLOGY = """\
name: tiny-net
segments:
  home: {cidr: 10.7.0.0/24}
  office: {cidr: 10.7.1.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  laptop: {segment: home, tier: launch-pad}
  pc: {segment: office, tier: workstation}
  db: {segment: office, tier: crown-jewel}
routers:
  r: {segments: [home, office], default: allow}
"""


def test_tail_yields_complete_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = JsonlTail(path)
    assert tail.poll() == []  # not there yet
    with path.open("w") as stream:
        stream.write('{"a": 1}\n{"b": ')
    assert tail.poll() == [{"a": 1}]
    with path.open("a") as stream:
        stream.write('2}\n\nnot json\n{"c": 3}\n')
    assert tail.poll() == [{"b": 2}, {"c": 3}]
    assert tail.poll() == []


def test_multitail_finds_hosts_that_appear_later(tmp_path: Path) -> None:
    tail = MultiTail(tmp_path / "hosts", "events.jsonl")
    assert tail.poll() == []
    for host, mono in (("b", 2.0), ("a", 1.0)):
        (tmp_path / "hosts" / host).mkdir(parents=True)
        (tmp_path / "hosts" / host / "events.jsonl").write_text(json.dumps({"mono": mono}) + "\n")
    assert [r["mono"] for r in tail.poll()] == [1.0, 2.0]


def test_headline_names_the_report() -> None:
    records = sample_records()
    results = score(records, stop_reason="contained")
    text = headline(results, Path("runs/x/report.html"))
    assert text.splitlines()[0] == f"grade {results.grade.letter} " \
                                   f"(score {results.grade.score}/100)"
    assert "stopped because          contained" in text
    assert "launch-pad escape        yes, pc-1" in text
    assert "report                   runs/x/report.html" in text
    assert "egress packets           0" in text


def test_summary_of_repetitions() -> None:
    results = score(sample_records())
    other = results.model_copy(update={"infected_total": 3, "contained": False})
    summary = summarize([results, other])
    assert summary.infected_total.median == (results.infected_total + 3) / 2
    assert summary.contained_fraction.median == 0.5


def test_plain_live_view_logs_lines() -> None:
    stream = io.StringIO()
    status = LiveStatus(scenario="s", run_name="r", duration_s=10,
                        hosts_by_tier={"launch-pad": 2, "workstation": 3})
    with LiveView(status, live=True, stream=stream) as view:  # not a terminal: plain lines
        status.infected_by_tier = {"launch-pad": 1, "workstation": 2}
        status.alerts_by_detector = {"trw": 4}
        view.refresh()
        view.say("first alert")
    text = stream.getvalue()
    assert "infected 3 (launch-pad 1, workstation 2), alerts 4" in text
    assert "first alert" in text


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    return tmp_path / "scenario.yaml"


def append_event(state_dir: Path, host: str, **event: object) -> None:
    path = state_dir / "hosts" / host / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        stream.write(json.dumps({"host": host, **event}) + "\n")


def test_outbreak_status_used_by_the_stop_conditions(tiny: Path, tmp_path: Path) -> None:
    """The live view follows ground truth and the action log as they grow, through the same
    containment timeline as the scorer, and says which stop conditions hold."""
    scenario = load_scenario(tiny)
    state_dir = tmp_path / "state"
    outbreak = Outbreak(scenario, state_dir)
    assert outbreak.poll(10.0) == [] and outbreak.status == "dormant"
    append_event(state_dir, "laptop", type="wake", mono=11.0)
    append_event(state_dir, "pc", type="infection", mono=12.0, parent="laptop")
    append_event(state_dir, "pc", type="probe", mono=12.5)
    assert outbreak.poll(13.0) == ["laptop", "pc"]
    assert outbreak.escaped("pc") and not outbreak.escaped("laptop")
    assert outbreak.status == "spreading" and outbreak.stop_reasons() == []
    assert outbreak.infected_by_tier()["workstation"] == 1
    log = ActionLog(state_dir / "actions.jsonl")
    for host in ("laptop", "pc"):
        log.append(ActionRecord(mono=14.0, action="quarantine", target=host, enforced_s=0.5))
    outbreak.poll(14.2)  # logged, not yet enforced
    assert outbreak.status == "spreading" and outbreak.actions_by_kind == {"quarantine": 2}
    outbreak.poll(14.5)
    assert outbreak.status == "contained" and outbreak.stop_reasons() == ["contained"]
    # a release re-opens the path: the stop condition no longer holds (the runner then cancels
    # a pending stop instead of ending the run as contained)
    log.append(ActionRecord(mono=14.6, action="release", target="pc", enforced_s=0.1))
    outbreak.poll(14.8)
    assert outbreak.status == "spreading" and outbreak.stop_reasons() == []
    log.append(ActionRecord(mono=14.8, action="quarantine", target="pc", enforced_s=0.1))
    outbreak.poll(14.95)
    assert outbreak.stop_reasons() == ["contained"]
    append_event(state_dir, "db", type="infection", mono=15.0, parent="pc")
    assert outbreak.poll(15.0) == ["db"]
    assert outbreak.status == "burned-out"  # nothing left to protect: not "contained"
    assert outbreak.stop_reasons() == ["crown-jewel-infected"]  # all-infected is not asked for


def test_collected_state_is_scored_like_a_run(tiny: Path, tmp_path: Path) -> None:
    """collect + score_run_dir + write_outputs: what the runner and down's salvage share."""
    scenario = load_scenario(tiny)
    state_dir, run_dir = tmp_path / "tiny-abc123", tmp_path / "out"
    append_event(state_dir, "laptop", type="wake", mono=101.0)
    append_event(state_dir, "pc", type="infection", mono=104.0, parent="laptop")
    append_event(state_dir, "db", type="infection", mono=150.0, parent="pc")  # after the end
    (state_dir / "hosts" / "pc" / "agent.log").write_text("agent pc ready\n")
    ActionLog(state_dir / "actions.jsonl").append(
        ActionRecord(mono=105.0, action="quarantine", target="pc", cause={"manual": "me"}))
    write_runner_state(state_dir, RunnerState(pid=1, out_dir=str(run_dir), alive_mono=120.0))
    assert read_runner_state(state_dir) == RunnerState(pid=1, out_dir=str(run_dir),
                                                       alive_mono=120.0)
    manifest = Manifest(scenario="tiny", scenario_path=str(tiny), topology_path="t.yaml",
                        run_name="tiny-abc123", backend="netns", seed=1, duration_s=60.0,
                        worm_profile="classic", patient_zero=("laptop",), detectors=("trw",),
                        t0_mono=100.0, end_mono=120.0, interrupted=True)
    collect(state_dir, run_dir, manifest)
    assert (run_dir / "logs" / "pc.log").read_text() == "agent pc ready\n"
    assert (run_dir / "alerts.jsonl").read_text() == ""
    merged = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["mono"] for e in merged] == [101.0, 104.0, 150.0]
    results, records = score_run_dir(run_dir, scenario, stop_reason="interrupted", timings={})
    assert results.run.interrupted is True and results.run.stop_reason == "interrupted"
    assert results.infected_total == 2  # db fell after the run's end
    assert write_outputs(run_dir, results, records, report=False) is None
    assert json.loads((run_dir / "results.json").read_text())["infected_total"] == 2
    remove_state(state_dir, "tiny-abc123")
    assert not state_dir.exists()


def test_labels_join_captured_flows_with_ground_truth(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    topology_path = tmp_path / "t.yaml"
    topology_path.write_text("name: t\nsegments: {lan: {cidr: 10.8.0.0/24}}\n"
                             "hosts: {a: {segment: lan}, b: {segment: lan}, c: {segment: lan}}\n")
    topology = load_topology(topology_path)
    a, b, c = (str(topology.hosts[h].ip) for h in "abc")
    packets = []
    for when, src, dst, port in ((100.0, a, b, 445), (101.0, c, b, 80), (102.0, a, c, 22)):
        syn = Ether() / IP(src=src, dst=dst) / TCP(sport=40000, dport=port, flags="S")
        rst = Ether() / IP(src=dst, dst=src) / TCP(sport=port, dport=40000, flags="RA")
        syn.time, rst.time = when, when + 0.001
        packets += [syn, rst]
    (tmp_path / "pcap").mkdir()
    wrpcap(str(tmp_path / "pcap" / "lan.pcap"), packets)
    events = [
        {"type": "probe", "host": "a", "target": b, "port": 445, "wall": 100.2, "mono": 5.0,
         "technique": "T1046", "generation": 0},
        {"type": "benign-request", "host": "c", "target": b, "port": 80, "wall": 101.1,
         "role": "backup", "mono": 6.0},
        {"type": "probe", "host": "a", "target": c, "port": 22, "wall": 190.0, "mono": 7.0},
    ]
    rows = write_labels(tmp_path, events, topology)
    table = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert rows == len(table) == 3  # one row per flow: SYN and its RST are one
    labels = {(r["src_host"], r["dest_host"], r["dest_port"]): r["label"] for r in table}
    assert labels == {("a", "b", "445"): "worm-probe", ("c", "b", "80"): "backup",
                      ("a", "c", "22"): "unlabelled"}  # too far in time from its probe
    assert {r["outcome"] for r in table} == {"refused"}
    assert {(r["pkts_toserver"], r["pkts_toclient"]) for r in table} == {("1", "1")}
    probe = next(r for r in table if r["label"] == "worm-probe")
    assert (probe["technique"], probe["generation"]) == ("T1046", "0")
