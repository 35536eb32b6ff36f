"""The bench: file format, cell derivation, resume, and the leaderboard from fake results."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from testbed.bench import (
    BenchCell,
    cell_row,
    derive_scenario,
    leaderboard,
    load_bench,
    run_bench,
    write_leaderboard,
)
from testbed.errors import ValidationError
from testbed.model import Scenario
from testbed.report.sample import sample_records
from testbed.results import Results
from testbed.scoring import score

TOPOLOGY = """
name: bench-net
segments:
  lan: {cidr: 10.7.0.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  printer: {segment: lan, tier: launch-pad}
  pc: {segment: lan, tier: workstation}
"""

SCENARIO = """
name: bench-scn
topology: topo.yaml
seed: 10
worm: {profile: local-preference, patient_zero: printer, params: {local_bias: 0.5}}
detectors: [{name: trw}]
response: {rules: [{on: [trw], action: quarantine}]}
"""


def write_bench(tmp_path: Path, body: str) -> Path:
    (tmp_path / "topo.yaml").write_text(TOPOLOGY)
    (tmp_path / "scn.yaml").write_text(SCENARIO)
    path = tmp_path / "bench.yaml"
    path.write_text(body)
    return path


BENCH = """
name: small
scenarios: [scn.yaml]
detector_sets:
  none: []
  fan: [fanout, {name: darknet}]
profiles: [classic, local-preference]
seeds: 2
duration_s: 12
"""


BASE_RESULTS = score(sample_records())  # a complete, valid Results that fake_results varies


def fake_results(grade: float, infected: int, detect: float | None, contain: float | None,
                 precision: float | None = 1.0) -> Results:
    base = BASE_RESULTS
    return Results.model_validate({
        **base.model_dump(),
        "grade": {"letter": "A" if grade >= 90 else "C", "score": grade, "penalties": {},
                  "caps": []},
        "time_to_first_detection_s": detect, "time_to_containment_s": contain,
        "contained": contain is not None, "infected_total": infected, "peak_infected": 1,
        "value_weighted_loss": 5.0 * (infected - 1),
        "launch_pad_escape": {"escaped": infected > 1, "time_s": None, "host": None,
                              "tier": None},
        "crown_jewels_infected": [],
        "detectors": {"any": {**base.detectors["any"].model_dump(), "precision": precision,
                              "recall": 1.0}},
        "collateral": {**base.collateral.model_dump(), "benign_hosts_quarantined": 0},
        "safety": {**base.safety.model_dump(), "egress_packets": 0}})


def interrupted_results(results: Results) -> Results:
    return results.model_copy(update={"run": results.run.model_copy(update={"interrupted": True})})


def test_cells_span_the_matrix(tmp_path: Path) -> None:
    bench = load_bench(write_bench(tmp_path, BENCH))
    cells = bench.cells()
    assert len(cells) == 2 * 2 * 2
    assert {c.seed for c in cells} == {10, 11}  # counted up from the scenario's seed
    assert {(c.detector_set, c.profile) for c in cells} == {
        ("none", "classic"), ("none", "local-preference"), ("fan", "classic"),
        ("fan", "local-preference")}


def test_derived_scenario_overrides(tmp_path: Path) -> None:
    bench = load_bench(write_bench(tmp_path, BENCH))
    cell = BenchCell("bench-scn", tmp_path / "scn.yaml", "fan", "classic", 11)
    scenario = derive_scenario(bench, cell)
    assert [d.name for d in scenario.spec.detectors] == ["fanout", "darknet"]
    assert scenario.spec.response.rules[0].on == ["any"]  # listens to the set's detectors
    assert scenario.spec.worm.profile == "classic"
    assert "local_bias" not in scenario.spec.worm.params  # the classic profile lacks it
    assert (scenario.spec.seed, scenario.spec.duration_s) == (11, 12.0)
    assert scenario.spec.outputs.report is False
    own = derive_scenario(bench, BenchCell("bench-scn", tmp_path / "scn.yaml", "none",
                                           "local-preference", 10))
    assert own.spec.worm.params == {"local_bias": 0.5}
    assert own.spec.detectors == []


def test_bad_bench_files_point_at_the_problem(tmp_path: Path) -> None:
    path = write_bench(tmp_path, BENCH.replace("fanout", "fanot").replace("classic", "clasic"))
    with pytest.raises(ValidationError) as caught:
        load_bench(path)
    text = str(caught.value)
    assert re.search(r"bench.yaml:\d+:\d+: error: .*unknown detector 'fanot'", text)
    assert "did you mean" in text and "unknown worm profile 'clasic'" in text
    path.write_text(BENCH + "colour: blue\n")
    with pytest.raises(ValidationError):
        load_bench(path)


def test_leaderboard_medians_and_iqr() -> None:
    cell = BenchCell("s", Path("s.yaml"), "trw", "classic", 1)
    other = BenchCell("s", Path("s.yaml"), "none", "classic", 1)
    rows = [cell_row(cell, fake_results(90, 1, 1.0, 2.0)),
            cell_row(cell, fake_results(80, 3, 2.0, 4.0)),
            cell_row(cell, fake_results(70, 5, 3.0, None)),
            cell_row(cell, fake_results(100, 1, 5.0, 1.0)),
            cell_row(other, fake_results(20, 9, None, None, None))]
    board = leaderboard(rows)
    assert [(e["detector_set"], e["rank"]) for e in board] == [("trw", 1), ("none", 2)]
    trw = board[0]
    # scores 70, 80, 90, 100: median 85; inclusive quartiles 77.5 and 92.5 -> IQR 15
    assert trw["grade_score_median"] == 85.0 and trw["grade_score_iqr"] == 15.0
    # containment from three runs (2, 4, 1): median 2, quartiles 1.5 and 3 -> IQR 1.5
    assert trw["time_to_containment_s_median"] == 2.0
    assert trw["time_to_containment_s_iqr"] == 1.5
    assert trw["time_to_containment_s_n"] == 3
    assert (trw["runs"], trw["contained"], trw["detected"]) == (4, 3, 4)
    none = board[1]
    assert none["time_to_first_detection_s_median"] is None
    assert none["grade_score_iqr"] == 0.0


def test_leaderboard_files(tmp_path: Path) -> None:
    cell = BenchCell("s", Path("s.yaml"), "trw", "classic", 1)
    rows = [cell_row(cell, fake_results(90, 1, 1.0, 2.0)),
            cell_row(cell, fake_results(80, 3, 2.0, 4.0))]
    paths = write_leaderboard(tmp_path, rows, "bench t")
    table = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert table[0]["grade_score_median"] == "85.0" and table[0]["grade_score_iqr"] == "5.0"
    markdown = paths["markdown"].read_text()
    assert "| 1 | s | trw | classic | 2/2 | – | 85 [82.5, 87.5]; 85 (80–90); n=2 |" in markdown
    html = paths["html"].read_text()
    assert "<table>" in html and "<svg" in html and "https://" not in html
    assert len(list(csv.DictReader(io.StringIO(paths["runs"].read_text())))) == 2
    assert json.loads(paths["json"].read_text())["leaderboard"][0]["runs"] == 2


def test_run_bench_runs_each_cell_once_and_resumes(tmp_path: Path) -> None:
    bench = load_bench(write_bench(tmp_path, BENCH))
    calls: list[tuple[str, str, int]] = []

    def run_cell(scenario: Scenario, run_dir: Path) -> Results:
        calls.append((scenario.spec.worm.profile, ",".join(d.name for d in
                                                           scenario.spec.detectors),
                      scenario.spec.seed))
        results = fake_results(95 if scenario.spec.detectors else 30, 1, 1.0, 1.0)
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(results.to_json())
        return results

    out = tmp_path / "out"
    rows, paths = run_bench(bench, out, run_cell=run_cell)
    assert len(rows) == len(calls) == 8
    assert ("classic", "fanout,darknet", 11) in calls
    assert paths["markdown"].is_file()
    # an interrupted cell is run again; finished ones are reused
    interrupted = BenchCell("bench-scn", tmp_path / "scn.yaml", "fan", "classic", 10)
    (interrupted.directory(out) / "results.json").write_text(
        interrupted_results(fake_results(0, 1, None, None)).to_json())
    # results of an older version (another shape) are run again too
    stale = BenchCell("bench-scn", tmp_path / "scn.yaml", "fan", "local-preference", 11)
    (stale.directory(out) / "results.json").write_text(
        json.dumps({"results_version": 1, "grade": {"letter": "A", "score": 95}}))
    calls.clear()
    rows, _ = run_bench(bench, out, run_cell=run_cell)
    assert sorted(calls) == [("classic", "fanout,darknet", 10),
                             ("local-preference", "fanout,darknet", 11)]
    assert len(rows) == 8
    best = leaderboard(rows)[0]
    assert best["detector_set"] == "fan"


def test_shipped_bench_file_loads(repo_root: Path) -> None:
    bench = load_bench(repo_root / "scenarios" / "bench-detectors.yaml")
    from testbed.detection import DEFAULT_DETECTORS

    sets = bench.spec.detector_sets or {}
    assert set(DEFAULT_DETECTORS) <= {d.name for specs in sets.values() for d in specs}
    assert len(bench.cells()) == len(sets) * 2 * 2
