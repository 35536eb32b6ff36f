"""Labelled data sets: a bench matrix run with pcaps on, packaged as a data-set folder.

Owns: ``build_dataset(bench, out_dir)``, which runs every cell of a bench (``testbed.bench``,
with ``outputs.pcap`` forced on; finished cells are reused, so an interrupted build resumes) and
writes, in the manner of CIC-IDS2017 and UNSW-NB15:

- ``pcap/<run>/<segment>.pcap``: the raw captures of every run;
- ``labels.csv`` and ``labels.parquet``: every run's flow labels (one row per flow, see
  ``testbed.runner.labels``) with the run's ``run``, ``scenario``, ``topology``,
  ``detector_set``, ``profile`` and ``seed``;
- ``datasheet.md`` and ``datasheet.json``: what is in it (topologies, profiles, seeds, runs,
  flows and counts per label, per run and in total), how it was made, and its caveats, after
  "Datasheets for Datasets" (Gebru et al., 2021).

Must not touch: the runs themselves (the runner's) or their scoring.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testbed import __version__
from testbed.bench import BenchCell, BenchRow, LoadedBench, RunCell, run_bench
from testbed.model.load_scenario import Scenario
from testbed.results import Results
from testbed.runner.labels import LABEL_COLUMNS, LABELS

__all__ = ["DATASET_COLUMNS", "build_dataset", "datasheet_markdown"]

DATASET_COLUMNS = ("run", "scenario", "topology", "detector_set", "profile", "seed",
                   *LABEL_COLUMNS)


def _run_quietly(scenario: Scenario, run_dir: Path) -> Results:
    import io

    from testbed.runner import run_scenario

    return run_scenario(scenario, out_dir=run_dir, live=False, stream=io.StringIO()).results


def _with_pcaps(run_cell: RunCell | None) -> RunCell:
    inner = run_cell or _run_quietly

    def run_with_pcaps(scenario: Scenario, run_dir: Path) -> Results:
        spec = scenario.spec
        outputs = spec.outputs.model_copy(update={"pcap": True})
        return inner(dataclasses.replace(scenario, spec=spec.model_copy(
            update={"outputs": outputs})), run_dir)

    return run_with_pcaps


def _run_name(cell: BenchCell) -> str:
    return f"{cell.scenario}__{cell.detector_set}__{cell.profile}__seed-{cell.seed}"


def build_dataset(bench: LoadedBench, out_dir: Path, *, run_cell: RunCell | None = None,
                  progress: Callable[[int, int, BenchCell, BenchRow | None], None] | None
                  = None) -> dict[str, Any]:
    """Run ``bench`` with pcaps and write the data-set folder ``out_dir``; returns the
    datasheet (also written as ``datasheet.json``)."""
    import pandas

    out_dir = Path(out_dir)
    run_bench(bench, out_dir / "bench", run_cell=_with_pcaps(run_cell), progress=progress)
    frames = []
    runs = []
    for cell in bench.cells():
        run_dir = cell.directory(out_dir / "bench")
        name = _run_name(cell)
        pcaps = sorted((run_dir / "pcap").glob("*.pcap"))
        target = out_dir / "pcap" / name
        target.mkdir(parents=True, exist_ok=True)
        for pcap in pcaps:
            shutil.copyfile(pcap, target / pcap.name)
        if (run_dir / "labels.parquet").is_file():
            labels = pandas.read_parquet(run_dir / "labels.parquet")
        elif (run_dir / "labels.csv").is_file():
            labels = pandas.read_csv(run_dir / "labels.csv", keep_default_na=False)
        else:
            labels = pandas.DataFrame(columns=list(LABEL_COLUMNS))
        scenario = bench.scenarios[cell.scenario]
        labels.insert(0, "seed", cell.seed)
        labels.insert(0, "profile", cell.profile)
        labels.insert(0, "detector_set", cell.detector_set)
        labels.insert(0, "topology", scenario.topology.name)
        labels.insert(0, "scenario", cell.scenario)
        labels.insert(0, "run", name)
        frames.append(labels)
        runs.append({"run": name, "scenario": cell.scenario,
                     "topology": scenario.topology.name, "detector_set": cell.detector_set,
                     "profile": cell.profile, "seed": cell.seed, "pcaps": [p.name for p in pcaps],
                     "flows": len(labels),
                     "labels": {k: int(v) for k, v in Counter(labels["label"]).items()}})
    table = (pandas.concat(frames, ignore_index=True) if frames
             else pandas.DataFrame(columns=list(DATASET_COLUMNS)))
    table = table[list(DATASET_COLUMNS)]
    table.to_csv(out_dir / "labels.csv", index=False)
    table.to_parquet(out_dir / "labels.parquet", index=False)
    topologies = {bench.scenarios[c.scenario].topology.name: bench.scenarios[c.scenario].topology
                  for c in bench.cells()}
    sheet: dict[str, Any] = {
        "name": bench.spec.name,
        "description": bench.spec.description,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "testbed_version": __version__,
        "bench": str(bench.path),
        "topologies": [{"name": name, "hosts": len(t.hosts), "segments": len(t.segments),
                        "routers": len(t.routers)} for name, t in sorted(topologies.items())],
        "profiles": sorted({c.profile for c in bench.cells()}),
        "detector_sets": sorted({c.detector_set for c in bench.cells()}),
        "seeds": sorted({c.seed for c in bench.cells()}),
        "runs": runs,
        "flows": len(table),
        "labels": {label: int((table["label"] == label).sum()) for label in LABELS},
        "columns": list(DATASET_COLUMNS),
    }
    (out_dir / "datasheet.json").write_text(json.dumps(sheet, indent=2) + "\n", "utf-8")
    (out_dir / "datasheet.md").write_text(datasheet_markdown(sheet), "utf-8")
    return sheet


def datasheet_markdown(sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown (motivation, composition, collection, labels, caveats)."""
    lines = [f"# Data set {sheet['name']}", "", str(sheet.get("description") or ""), "",
             "## Composition", "",
             f"{len(sheet['runs'])} runs, {sheet['flows']} labelled flows. Testbed "
             f"{sheet['testbed_version']}, built {sheet['created']} from `{sheet['bench']}`.", "",
             "| label | flows |", "|---|---|"]
    lines += [f"| {label} | {count} |" for label, count in sheet["labels"].items()]
    lines += ["", "Topologies:", ""]
    lines += [f"- {t['name']}: {t['hosts']} hosts, {t['segments']} segments, {t['routers']} "
              "routers" for t in sheet["topologies"]]
    lines += ["", f"Worm profiles: {', '.join(sheet['profiles'])}. Detector sets: "
                  f"{', '.join(sheet['detector_sets'])}. Seeds: "
                  f"{', '.join(str(s) for s in sheet['seeds'])}.", "",
              "| run | flows | labels |", "|---|---|---|"]
    lines += [f"| {r['run']} | {r['flows']} | "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["labels"].items())) + " |"
              for r in sheet["runs"]]
    lines += ["", "## Collection", "",
              "Each run is an emulated network (Linux namespaces or Docker) in which a safe mock "
              "worm (no exploit code: infection is a state change after an HMAC token is "
              "accepted), benign users, a backup server and an IT scanner generate traffic. The "
              "sensor captured every monitored segment (`pcap/<run>/<segment>.pcap`). Flows are "
              "rebuilt from the captures of all segments merged (a routed connection is one "
              "flow); each is labelled from the agents' own ground-truth log by source, "
              "destination, port and time.", "",
              "## Labels", "",
              "`worm-probe` (scan, ATT&CK T1046), `worm-exploit` (exploitation attempt, T1210 / "
              "T1021 ...), `worm-interleave` (a worm's benign-looking cover connection), "
              "`benign` (a user), `backup`, `scanner` (the IT scanner), `unlabelled` (claimed by "
              "no agent: router and ARP noise, retransmissions). `technique` and `generation` "
              "come from the worm's log. Flows join other tools' records by `community_id` "
              "(Community ID v1).", "",
              "## Caveats", "",
              "- Synthetic traffic: the mock worm's payloads carry a fixed marker; services "
              "answer with short banners. Byte counts are not those of real SMB or HTTP.",
              "- Packet and byte counts include handshakes and payload-bearing segments; pure "
              "ACKs and FINs are not counted.",
              "- An attempt to an unused address on a shared segment is an ARP-only flow "
              "(`proto` ARP).", ""]
    return "\n".join(lines)
