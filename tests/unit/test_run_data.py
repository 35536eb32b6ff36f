"""A run as data: flows, labels (one row per flow), EVE alerts that join them by Community ID,
and ``testbed.load_run``'s DataFrames, on a run rebuilt from the recorded flagship: its ground
truth replayed as packets (every probe and benign request becomes the exchange its outcome
says), run through the sensor, the detectors and the label writer as a real run's pcaps are."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from detectors.base import SensorContext
from testbed.detection import DEFAULT_DETECTORS, AlertLog, run_offline
from testbed.model import load_scenario
from testbed.records import read_json_lines
from testbed.runner.labels import LABEL_COLUMNS, LABELS, write_labels
from testbed.scoring import load_run_records, score
from testbed.sensor import flows_from_pcaps
from testbed.sensor.synth import TrafficBuilder
from testbed.wire import PAYLOAD_MARKER_BYTES

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "tests" / "data" / "recorded" / "basement-launchpad-seed42"
OUTCOME_ON_WIRE = {"infected": "success", "not-vulnerable": "success", "rejected": "success",
                   "ok": "success", "refused": "refused", "timeout": "unanswered",
                   "unreachable": "unreachable", "prohibited": "prohibited",
                   "failed": "unanswered"}


def _replay(events: list[dict[str, Any]], topology: Any) -> TrafficBuilder:
    """The attempts of the ground truth as packets, at the wall times the agents logged."""
    attempts = []
    for event in events:
        if event.get("type") not in ("probe", "benign-request") or "target" not in event:
            continue
        start = float(event["wall"]) - (float(event["mono"]) - float(
            event.get("start_mono", float(event["mono"]) - 0.002)))
        attempts.append((start, event))
    attempts.sort(key=lambda item: item[0])
    traffic = TrafficBuilder(start=attempts[0][0] - 1.0)
    for start, event in attempts:
        traffic.now = max(traffic.now, start)
        outcome = OUTCOME_ON_WIRE[str(event["outcome"])]
        exploit = event.get("type") == "probe" and event.get("technique") != "T1046"
        payload = PAYLOAD_MARKER_BYTES + b" MOCK" if exploit and outcome == "success" else b""
        traffic.tcp(str(topology.hosts[event["host"]].ip), str(event["target"]),
                    int(event["port"]), outcome, payload=payload)  # type: ignore[arg-type]
    return traffic


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml")
    directory = tmp_path_factory.mktemp("flagship")
    for name in ("manifest.json", "actions.jsonl"):
        shutil.copyfile(RECORDED / name, directory / name)
    (directory / "events.jsonl").write_bytes(gzip.decompress(
        (RECORDED / "events.jsonl.gz").read_bytes()))
    events = read_json_lines(directory / "events.jsonl")
    (directory / "pcap").mkdir()
    pcap = _replay(events, scenario.topology).write(directory / "pcap" / "all.pcap")
    manifest = json.loads((directory / "manifest.json").read_text())
    wall_minus_mono = manifest["t0_wall"] - manifest["t0_mono"]
    context = SensorContext.from_topology(scenario.topology)
    with AlertLog(directory / "alerts.jsonl", clock_offset=wall_minus_mono,
                  sensor="flagship-sensor") as log:  # alerts on the run's clock, as live
        log.write(replace(a, time=a.time - wall_minus_mono)
                  for a in run_offline(pcap, DEFAULT_DETECTORS, context=context))
    with (directory / "flows.jsonl").open("w") as stream:
        for flow in flows_from_pcaps([pcap]):
            stream.write(json.dumps(flow.to_record(sensor="flagship-sensor")) + "\n")
    assert write_labels(directory, events, scenario.topology) > 0
    results = score(load_run_records(directory, scenario.topology))
    (directory / "results.json").write_text(results.to_json())
    return directory


def test_one_label_row_per_flow_with_the_agents_labels_and_techniques(run_dir: Path) -> None:
    import pandas

    labels = pandas.read_parquet(run_dir / "labels.parquet")
    csv = pandas.read_csv(run_dir / "labels.csv", keep_default_na=False)
    assert list(labels.columns) == list(LABEL_COLUMNS) == list(csv.columns)
    assert len(labels) == len(csv) == len(read_json_lines(run_dir / "flows.jsonl"))
    assert labels["community_id"].is_unique  # one row per flow, not per capture or packet
    counts = labels["label"].value_counts().to_dict()
    assert set(counts) <= set(LABELS)
    assert counts["worm-probe"] > 100 and counts["worm-exploit"] > 10
    assert counts["benign"] + counts.get("backup", 0) > 5
    assert set(labels.loc[labels["label"] == "worm-probe", "technique"]) == {"T1046"}
    assert (labels.loc[labels["label"] == "benign", "generation"] == -1).all()
    assert (labels.loc[labels["label"].str.startswith("worm"), "generation"] >= 0).all()
    refused = labels[labels["outcome"] == "refused"]
    assert not refused.empty and (refused["pkts_toclient"] == 1).all()
    assert (labels["bytes_toserver"] > 0).all() and (labels["duration"] >= 0).all()


def test_flows_are_suricata_eve_flow_records(run_dir: Path, eve_validator: Any) -> None:
    flows = read_json_lines(run_dir / "flows.jsonl")
    assert flows
    for record in flows:
        assert list(eve_validator.iter_errors(record)) == []
        assert record["event_type"] == "flow" and record["community_id"].startswith("1:")
    states = {r["flow"]["state"] for r in flows}
    assert {"new", "established", "closed"} <= states


def test_alerts_join_labels_by_community_id(run_dir: Path, eve_validator: Any) -> None:
    import pandas

    alerts = read_json_lines(run_dir / "alerts.jsonl")
    assert {a["alert"]["metadata"]["detector"] for a in alerts} >= {"trw", "signature"}
    for record in alerts:
        assert list(eve_validator.iter_errors(record)) == []
    labels = pandas.read_parquet(run_dir / "labels.parquet")
    frame = pandas.DataFrame([{"community_id": a["community_id"],
                               "detector": a["alert"]["metadata"]["detector"],
                               "src_port": a["src_port"]} for a in alerts])
    tied = frame[frame["src_port"] != 0]  # alerts about one connection (not a window's tally)
    joined = tied.merge(labels, on="community_id", how="left", validate="many_to_one")
    assert len(tied) >= 5 and joined["label"].notna().all()
    signature = joined[joined["detector"] == "signature"]
    assert not signature.empty and set(signature["label"]) == {"worm-exploit"}
    assert set(joined["label"]) <= {"worm-probe", "worm-exploit", "worm-interleave"}


def test_load_run_gives_typed_results_and_dataframes(run_dir: Path) -> None:
    import pandas

    import testbed
    from testbed.results import Results

    run = testbed.load_run(run_dir)
    assert isinstance(run.results, Results) and run.results.infected_total == 8
    assert run.manifest.scenario == "basement-launchpad"
    frames = {name: getattr(run, name) for name in ("events", "alerts", "actions", "labels",
                                                    "flows")}
    assert all(isinstance(f, pandas.DataFrame) for f in frames.values())
    assert len(frames["events"]) == len(read_json_lines(run_dir / "events.jsonl"))
    assert len(frames["alerts"]) == len(read_json_lines(run_dir / "alerts.jsonl"))
    assert len(frames["actions"]) == 4 and set(frames["actions"]["action"]) >= {"quarantine"}
    assert len(frames["flows"]) == len(frames["labels"])
    alerts = frames["alerts"]
    assert {"time", "detector", "src_host", "signature", "community_id"} <= set(alerts.columns)
    assert alerts["time"].dtype == float and (alerts["sensor"] == "flagship-sensor").all()
    assert set(frames["flows"]["community_id"]) == set(frames["labels"]["community_id"])
    assert pandas.api.types.is_integer_dtype(frames["flows"]["pkts_toserver"])


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    import testbed
    from testbed.errors import RunError

    with pytest.raises(RunError, match="not a run directory"):
        testbed.load_run(tmp_path)


def test_the_example_script_in_docs_api_runs(run_dir: Path) -> None:
    text = (REPO / "docs" / "api.md").read_text()
    script = re.search(r"```python\n(.*?)```", text, re.S)
    assert script is not None
    done = subprocess.run([sys.executable, "-c", script.group(1), str(run_dir)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert "grade" in done.stdout and "worm-exploit" in done.stdout


def test_import_testbed_stays_light() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, testbed; "
                           "print(sorted(m for m in ('pandas', 'pydantic', 'scapy') "
                           "if m in sys.modules)); print(callable(testbed.load_run))"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["[]", "True"]


def test_dataset_packages_a_bench_matrix_with_pcaps_labels_and_datasheet(
        run_dir: Path, tmp_path: Path) -> None:
    import pandas

    from testbed.bench import load_bench
    from testbed.dataset import DATASET_COLUMNS, build_dataset
    from testbed.results import Results

    bench_file = tmp_path / "bench.yaml"
    bench_file.write_text(f"name: tiny\nscenarios: [{REPO}/scenarios/basement-launchpad.yaml]\n"
                          "seeds: [42, 43]\nduration_s: 20\n")
    asked: list[bool] = []

    def recorded_cell(scenario: Any, directory: Path) -> Results:
        """Stands in for a run: the rebuilt flagship, as a run with pcaps leaves it."""
        asked.append(scenario.spec.outputs.pcap)
        shutil.copytree(run_dir, directory)
        return Results.model_validate_json((directory / "results.json").read_text())

    sheet = build_dataset(load_bench(bench_file), tmp_path / "ds", run_cell=recorded_cell)
    assert asked == [True, True]  # pcaps forced on in every cell
    out = tmp_path / "ds"
    runs = sorted(p.name for p in (out / "pcap").iterdir())
    assert runs == ["basement-launchpad__own__adaptive__seed-42",
                    "basement-launchpad__own__adaptive__seed-43"]
    assert all((out / "pcap" / r / "all.pcap").is_file() for r in runs)
    table = pandas.read_parquet(out / "labels.parquet")
    assert list(table.columns) == list(DATASET_COLUMNS)
    single = len(pandas.read_parquet(run_dir / "labels.parquet"))
    assert len(table) == 2 * single == sheet["flows"]
    assert set(table["seed"]) == {42, 43} and set(table["topology"]) == {"home-basement"}
    assert sheet["labels"]["worm-exploit"] == int((table["label"] == "worm-exploit").sum()) > 0
    assert json.loads((out / "datasheet.json").read_text())["seeds"] == [42, 43]
    text = (out / "datasheet.md").read_text()
    assert "| worm-probe |" in text and "## Caveats" in text


@pytest.mark.parametrize("fmt", ["dot", "graphml", "mermaid", "json"])
def test_graph_export_covers_topology_and_attack_graph(
        fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    from testbed.cli.main import main
    from testbed.planner import plan

    topology = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml").topology
    attack_edges = plan(topology).attack_graph.number_of_edges()
    assert main(["graph", str(REPO / "scenarios" / "basement-launchpad.yaml"), "-f", fmt]) == 0
    text = capsys.readouterr().out
    if fmt == "json":
        document = json.loads(text)
        kinds = Counter(edge["kind"] for edge in document["edges"])
        assert kinds == {"attack": attack_edges, "attached": len(topology.hosts),
                         "interface": sum(len(r.interfaces) for r in topology.routers.values())}
        assert {n["kind"] for n in document["nodes"]} == {"host", "segment", "router"}
    elif fmt == "graphml":
        import networkx as nx

        graph = nx.read_graphml(io.StringIO(text))
        assert graph.number_of_nodes() == (len(topology.hosts) + len(topology.segments)
                                           + len(topology.routers))
    elif fmt == "dot":
        assert text.startswith(f'digraph "{topology.name}" {{')
        assert text.count("kind=attack") == attack_edges
    else:
        assert text.startswith("flowchart LR") and text.count(" .-> ") == attack_edges
    assert main(["graph", str(REPO / "topologies" / "smb-flat.yaml"), "-f", fmt,
                 "--no-attack"]) == 0
    assert "attack" not in capsys.readouterr().out.replace("attached", "")


def test_every_record_validates_against_its_printed_schema_and_carries_its_version(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    import jsonschema

    from testbed.cli.main import main

    def printed(kind: str) -> jsonschema.Draft202012Validator:
        assert main(["schema", kind]) == 0
        return jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))

    for kind, name in (("alerts", "alerts.jsonl"), ("flows", "flows.jsonl"),
                       ("events", "events.jsonl"), ("actions", "actions.jsonl")):
        validator = printed(kind)
        records = read_json_lines(run_dir / name)
        assert records, name
        for record in records:
            assert list(validator.iter_errors(record)) == [], (kind, record)
    labels = printed("labels")
    for row in csv.DictReader((run_dir / "labels.csv").open()):
        typed = {k: (int(v) if k in ("label_version", "flow_id", "src_port", "dest_port",
                                     "pkts_toserver", "pkts_toclient", "bytes_toserver",
                                     "bytes_toclient", "generation")
                     else float(v) if k in ("start", "end", "duration") else v)
                 for k, v in row.items()}
        assert list(labels.iter_errors(typed)) == [] and typed["label_version"] == 2
    assert {a["alert"]["metadata"]["alert_version"]
            for a in read_json_lines(run_dir / "alerts.jsonl")} == {2}
    assert json.loads((run_dir / "results.json").read_text())["results_version"] == 2
    assert list(printed("alerts").iter_errors({"event_type": "alert", "extra": 1})) != []


def test_a_run_without_pcaps_is_labelled_from_the_sensors_flows(
        run_dir: Path, tmp_path: Path) -> None:
    """Every run gets labels: without pcaps they come from the live sensor's ``flows.jsonl``,
    and agree with the labels rebuilt from the captures."""
    import pandas

    scenario = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml")
    shutil.copyfile(run_dir / "flows.jsonl", tmp_path / "flows.jsonl")
    events = read_json_lines(run_dir / "events.jsonl")
    rows = write_labels(tmp_path, events, scenario.topology)
    from_flows = pandas.read_parquet(tmp_path / "labels.parquet")
    from_pcaps = pandas.read_parquet(run_dir / "labels.parquet")
    assert rows == len(from_flows) == len(from_pcaps)
    key = ["community_id", "label", "technique", "generation", "pkts_toserver", "state"]
    assert from_flows[key].sort_values(key).reset_index(drop=True).equals(
        from_pcaps[key].sort_values(key).reset_index(drop=True))
    unanswered = from_flows["state"] == "new"
    assert (from_flows.loc[unanswered, "outcome"] == "unanswered").all()


def test_a_routers_arp_for_a_routed_probe_is_labelled_with_that_probe(tmp_path: Path) -> None:
    from testbed.model.load_topology import load_topology

    topology_path = tmp_path / "t.yaml"
    topology_path.write_text("name: t\nsegments: {a: {cidr: 10.8.0.0/24}, b: {cidr: 10.8.1.0/24}}\n"
                             "hosts: {pc: {segment: a}, srv: {segment: b}}\n"
                             "routers: {r: {segments: [a, b], default: allow}}\n")
    topology = load_topology(topology_path)
    pc, router = str(topology.hosts["pc"].ip), str(topology.routers["r"].interfaces["b"])
    traffic = TrafficBuilder(start=1000.0)
    traffic.tcp(pc, "10.8.1.77", 445, "unanswered").arp(router, "10.8.1.77", answered=False)
    traffic.wait(5.0).arp(router, "10.8.1.99", answered=False)  # nobody's attempt
    (tmp_path / "pcap").mkdir()
    traffic.write(tmp_path / "pcap" / "all.pcap")
    probe = {"type": "probe", "host": "pc", "target": "10.8.1.77", "port": 445,
             "technique": "T1046", "generation": 0, "outcome": "timeout",
             "wall": 1002.0, "mono": 12.0, "start_mono": 10.0}
    assert write_labels(tmp_path, [probe], topology, parquet=False) == 3
    rows = {(r["src_ip"], r["dest_ip"], r["proto"]): r["label"]
            for r in csv.DictReader((tmp_path / "labels.csv").open())}
    assert rows == {(pc, "10.8.1.77", "TCP"): "worm-probe",
                    (router, "10.8.1.77", "ARP"): "worm-probe",
                    (router, "10.8.1.99", "ARP"): "unlabelled"}
