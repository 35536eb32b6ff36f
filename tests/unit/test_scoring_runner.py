"""The runner's pieces that need no privileges: tailing growing files, the headline, the live
view's plain mode, the outbreak status used for stop conditions, and labels.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from testbed.live import LiveStatus, LiveView
from testbed.model import load_topology
from testbed.report.sample import sample_records
from testbed.runner import headline, summarize
from testbed.runner.labels import write_labels
from testbed.runner.tail import JsonlTail, MultiTail
from testbed.scoring import ReachabilityOracle, replay_containment, score


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
    results = score(records)
    results["run"]["stop_reason"] = "contained"
    text = headline(results, Path("runs/x/report.html"))
    assert text.splitlines()[0] == f"grade {results['grade']['letter']} " \
                                   f"(score {results['grade']['score']}/100)"
    assert "launch-pad escape        yes, pc-1" in text
    assert "report                   runs/x/report.html" in text
    assert "egress packets           0" in text


def test_summary_of_repetitions() -> None:
    results = score(sample_records())
    other = json.loads(json.dumps(results))
    other["infected_total"] = 3
    other["contained"] = False
    summary = summarize([results, other])
    assert summary["infected_total"]["median"] == (results["infected_total"] + 3) / 2
    assert summary["contained_fraction"]["median"] == 0.5


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


def test_outbreak_status_used_by_the_stop_conditions() -> None:
    records = sample_records()
    oracle = ReachabilityOracle(records.topology)
    infected = ["old-laptop", "printer"]
    assert not oracle.contained(infected, replay_containment([]))
    everything = replay_containment([{"mono": 0, "action": "quarantine", "target": h, "ok": True}
                                     for h in infected])
    assert oracle.contained(infected, everything)
    susceptible = [h.name for h in records.topology.hosts.values() if h.susceptible]
    assert oracle.burned_out(susceptible, ["old-laptop"])
    assert not oracle.burned_out(infected, ["old-laptop"])


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
        {"type": "probe", "host": "a", "target": b, "port": 445, "wall": 100.2, "mono": 5.0},
        {"type": "benign-request", "host": "c", "target": b, "port": 80, "wall": 101.1,
         "role": "backup", "mono": 6.0},
        {"type": "probe", "host": "a", "target": c, "port": 22, "wall": 190.0, "mono": 7.0},
    ]
    rows = write_labels(tmp_path / "pcap", events, topology, tmp_path / "labels.csv")
    table = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert rows == len(table) == 3
    labels = {(r["src_host"], r["dst_host"], r["dport"]): r["label"] for r in table}
    assert labels == {("a", "b", "445"): "worm", ("c", "b", "80"): "backup",
                      ("a", "c", "22"): "unlabelled"}  # too far in time from its probe
    assert {r["outcome"] for r in table} == {"refused"}
