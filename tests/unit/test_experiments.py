"""Experiments without Ray: the statistics, the leaderboard's verdicts and whiskers, the local
engine on a small sim matrix, interrupt and resume, failed cells listed, sweeps and the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from experiments_support import REPO, FailingSource, small_bench

from testbed.bench import BenchCell, cell_row, leaderboard, leaderboard_html, load_bench
from testbed.cli.main import main
from testbed.experiments import (
    CellJob,
    CellOutcome,
    LocalEngine,
    bench_matrix,
    load_sweep,
    run_experiment,
    sweep_matrix,
)
from testbed.experiments.cells import ScenarioSource
from testbed.experiments.store import StoreMismatchError
from testbed.report.sample import sample_records
from testbed.results import Results
from testbed.scoring import score
from testbed.stats import bootstrap_mean_ci, holm, mann_whitney, spread


# ---- statistics ---------------------------------------------------------------------------
def test_mann_whitney_exact_and_approximate_p_values() -> None:
    separated = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert separated is not None and separated.exact
    assert separated.p_value == pytest.approx(2 / 252)  # 2 of the C(10,5) splits as extreme
    assert separated.effect == -1.0  # every value below the baseline's
    same = mann_whitney([3, 3, 3], [3, 3, 3])
    assert same is not None and (same.p_value, same.effect) == (1.0, 0.0)
    large = mann_whitney(list(range(50)), [x + 10 for x in range(50)])
    assert large is not None and not large.exact
    assert large.p_value == pytest.approx(0.0019408, abs=1e-6)  # scipy's asymptotic value
    assert mann_whitney([], [1.0]) is None


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.9, 0.9]) == [1.0, 1.0]


def test_bootstrap_interval_is_seeded_and_order_free() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    first = bootstrap_mean_ci(values)
    assert first is not None
    mean, low, high = first
    assert mean == pytest.approx(4.5) and low < mean < high
    assert bootstrap_mean_ci(sorted(values)) == first == bootstrap_mean_ci(values[::-1])
    assert bootstrap_mean_ci([2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_mean_ci([]) is None


def test_spread_has_quartiles() -> None:
    summary = spread([70, 80, 90, 100])
    assert (summary.q1, summary.median, summary.q3, summary.iqr) == (77.5, 85.0, 92.5, 15.0)


# ---- the leaderboard's comparisons and whiskers --------------------------------------------
BASE_RESULTS = score(sample_records())


def results_with(grade: float, infected: int) -> Results:
    data = BASE_RESULTS.model_dump()
    data["grade"] = {"letter": "B", "score": grade, "penalties": {}, "caps": []}
    data["infected_total"] = infected
    return Results.model_validate(data)


def rows_for(detector_set: str, grades: Sequence[float]) -> list:
    return [cell_row(BenchCell("s", Path("s.yaml"), detector_set, "classic", seed),
                     results_with(grade, 1)) for seed, grade in enumerate(grades)]


def test_leaderboard_compares_each_row_with_the_baseline() -> None:
    rows = (rows_for("none", [20, 22, 21, 23, 19, 20, 22, 21])
            + rows_for("good", [90, 92, 91, 93, 89, 90, 92, 91])
            + rows_for("same", [21, 20, 22, 19, 23, 21, 20, 22]))
    board = {entry["detector_set"]: entry for entry in leaderboard(rows)}
    assert board["none"]["grade_score_verdict"] == "baseline"
    good = board["good"]
    assert good["baseline"] == "none" and good["grade_score_effect"] == 1.0
    assert good["grade_score_p_adjusted"] < 0.05 and good["grade_score_verdict"] == "better"
    assert good["grade_score_ci_low"] > board["none"]["grade_score_ci_high"]
    assert board["same"]["grade_score_verdict"] == "not enough runs to tell"
    # Holm: two comparisons, so the smaller p-value is doubled
    assert good["grade_score_p_adjusted"] == pytest.approx(2 * good["grade_score_p"])
    # lower is better for infections: nothing differs, so nothing is called better
    assert board["good"]["infected_total_verdict"] == "not enough runs to tell"


def test_leaderboard_does_not_depend_on_row_order() -> None:
    rows = rows_for("none", [20, 25, 30]) + rows_for("trw", [60, 95, 70])
    assert leaderboard(rows) == leaderboard(list(reversed(rows)))


def test_html_whiskers_span_q1_to_q3_on_skewed_data() -> None:
    board = leaderboard(rows_for("trw", [10, 12, 14, 90]))  # Q1 11.5, median 13, Q3 33
    html = leaderboard_html(board, "t")
    line = re.search(r"<line class='quartiles' x1='([\d.]+)' x2='([\d.]+)'", html)
    assert line is not None
    left, scale = 330, (900 - 330 - 40) / 100.0
    assert float(line.group(1)) == pytest.approx(left + 11.5 * scale, abs=0.1)
    assert float(line.group(2)) == pytest.approx(left + 33.0 * scale, abs=0.1)


# ---- the local engine, resume, failures ----------------------------------------------------
class StopAfter:
    """A local engine that is interrupted (as by Ctrl-C) after ``count`` cells."""

    name = "local"

    def __init__(self, count: int) -> None:
        self.count = count

    def run(self, source: ScenarioSource, jobs: Sequence[CellJob], out_root: Path,
            on_outcome: Callable[[CellOutcome], None]) -> None:
        seen = 0

        def counted(outcome: CellOutcome) -> None:
            nonlocal seen
            on_outcome(outcome)
            seen += 1
            if seen == self.count:
                raise KeyboardInterrupt

        LocalEngine().run(source, jobs, out_root, counted)


def test_local_engine_interrupt_and_resume(tmp_path: Path) -> None:
    matrix = bench_matrix(load_bench(small_bench(tmp_path)))
    assert len(matrix.jobs) == 8 and {job.backend for job in matrix.jobs} == {"sim"}
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(matrix, out, StopAfter(3))
    assert len((out / "cells.jsonl").read_text().splitlines()) == 3
    ran: list[str] = []
    outcome = run_experiment(matrix, out, LocalEngine(), on_outcome=lambda o: ran.append(o.key))
    assert outcome.ran == 5 and len(ran) == 5 and not outcome.failed
    assert len(outcome.rows) == 8
    # the resumed leaderboard is the one a run in one go gives
    fresh = run_experiment(matrix, tmp_path / "fresh", LocalEngine())
    assert leaderboard(outcome.rows) == leaderboard(fresh.rows)
    again = run_experiment(matrix, out, LocalEngine())
    assert again.ran == 0 and len(again.rows) == 8


def test_a_failing_cell_is_listed_not_dropped(tmp_path: Path) -> None:
    matrix = bench_matrix(load_bench(small_bench(tmp_path)))
    bad_seed = matrix.jobs[0].cell.seed
    failing = dataclasses.replace(matrix, source=FailingSource(matrix.source, bad_seed))
    outcome = run_experiment(failing, tmp_path / "out", LocalEngine())
    assert set(outcome.failed) == {f"smb-flat/trw/{profile}/seed-{bad_seed}"
                                   for profile in ("classic", "adaptive")}
    assert all("synthetic failure of one cell" in error for error in outcome.failed.values())
    assert len(outcome.rows) == 6
    markdown = outcome.paths["markdown"].read_text()
    assert "## Failed cells (2)" in markdown and "synthetic failure" in markdown
    assert json.loads(outcome.paths["failed"].read_text()) == outcome.failed
    # a rerun retries the failed cells (and only them)
    healed = run_experiment(matrix, tmp_path / "out", LocalEngine())
    assert healed.ran == 2 and not healed.failed and len(healed.rows) == 8


def test_an_output_directory_of_another_experiment_is_refused(tmp_path: Path) -> None:
    matrix = bench_matrix(load_bench(small_bench(tmp_path)))
    other = dataclasses.replace(matrix, fingerprint="0" * 16, jobs=matrix.jobs[:1])
    run_experiment(other, tmp_path / "out", LocalEngine())
    with pytest.raises(StoreMismatchError, match="another experiment"):
        run_experiment(matrix, tmp_path / "out", LocalEngine())


# ---- sweeps ------------------------------------------------------------------------------
def test_shipped_sweeps_expand_to_their_grids() -> None:
    spec, scenario = load_sweep(REPO / "scenarios" / "sweep-scale.yaml")
    matrix = sweep_matrix(spec, scenario)
    assert len(matrix.jobs) == 5 * 8 * 5 * 50 == 10_000
    assert len({job.key for job in matrix.jobs}) == 10_000
    spec, scenario = load_sweep(REPO / "scenarios" / "sweep-reaction-delay.yaml")
    matrix = sweep_matrix(spec, scenario)
    labels = {job.cell.detector_set for job in matrix.jobs}
    assert "trw trw.p_false=0.1 delay=5s" in labels and "none delay=0s" in labels
    assert matrix.baseline == "none delay=0s"


def test_sweep_cells_carry_their_grid_values(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(f"""
name: grid-values
scenario: {REPO / "scenarios" / "smb-flat.yaml"}
backend: sim
seeds: [3]
grid:
  detector_sets: {{trw: [trw]}}
  detector_params: {{trw: {{p_false: [0.05]}}}}
  reaction_delay_s: [7]
  worms: [{{profile: classic, rate: 30}}]
  topology_hosts: [12]
""")
    spec, scenario = load_sweep(tmp_path / "sweep.yaml")
    matrix = sweep_matrix(spec, scenario)
    (job,) = matrix.jobs
    derived = matrix.source.scenario(job.cell)
    assert len(derived.topology.hosts) == 12 and derived.spec.seed == 3
    assert derived.spec.backend == "sim" and derived.spec.worm.rate == 30
    assert derived.spec.worm.patient_zero == ["h0"]
    assert [d.params for d in derived.spec.detectors] == [{"p_false": 0.05}]
    assert {rule.delay_s for rule in derived.spec.response.rules} == {7.0}
    assert job.key == "smb-flat-flat12/trw trw.p_false=0.05 delay=7s/classic@30/seed-3"


def test_a_bad_sweep_file_points_at_the_problem(tmp_path: Path) -> None:
    from testbed.errors import ValidationError

    (tmp_path / "sweep.yaml").write_text(
        f"name: bad\nscenario: {REPO / 'scenarios' / 'smb-flat.yaml'}\n"
        "grid: {worms: [clasic, classic, classic], detector_sets: {x: [trww]}}\n")
    with pytest.raises(ValidationError) as caught:
        load_sweep(tmp_path / "sweep.yaml")
    text = str(caught.value)
    assert "unknown worm profile 'clasic'" in text and "unknown detector 'trww'" in text
    assert "listed twice" in text


# ---- the CLI -------------------------------------------------------------------------------
def test_cli_bench_on_the_local_engine_resumes(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bench = small_bench(tmp_path)
    out = tmp_path / "out"
    assert main(["bench", str(bench), "--engine", "local", "--out", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["leaderboard"]) == 4 and first["failed"] == {}
    assert main(["bench", str(bench), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first
    assert "8 of 8 cells finished (0 run now" in captured.err


def test_cli_sweep_dry_run_lists_the_cells(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(REPO / "scenarios" / "sweep-reaction-delay.yaml"),
                 "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "90 runs"
    assert len(captured.out.splitlines()) == 90


def test_cli_schema_prints_the_sweep_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "sweep"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Adaptive-worm testbed sweep"
    assert schema["additionalProperties"] is False



def test_emulation_cells_are_refused_where_no_node_can_emulate(tmp_path: Path) -> None:
    from testbed.experiments import ExperimentError
    from testbed.experiments.engines import EMULATION_RESOURCE, require_placeable

    emulated = bench_matrix(load_bench(small_bench(tmp_path)), backend="netns")
    assert all(job.emulated for job in emulated.jobs)
    with pytest.raises(ExperimentError, match=EMULATION_RESOURCE):
        require_placeable(emulated.jobs, {"CPU": 2.0})
    require_placeable(emulated.jobs, {"CPU": 2.0, EMULATION_RESOURCE: 1.0})
    simulated = bench_matrix(load_bench(small_bench(tmp_path)))
    require_placeable(simulated.jobs, {"CPU": 2.0})  # sim cells need no emulation slot
