"""``testbed bench BENCH.yaml``: a matrix of scenarios x detector sets x worm profiles x seeds,
and its leaderboard (CSV, Markdown, HTML): per metric n, median [Q1, Q3], mean with a bootstrap
interval, and each row against the baseline row (docs/scale-out.md, "Statistics").

Owns: the bench file format (``BenchSpec``, source of ``testbed schema bench``), expanding it into
cells (``BenchCell``: one run each, independent of each other so that a later version can run them
in parallel), deriving each cell's scenario, collecting one row per run, and the leaderboard.
It reads each run's typed ``testbed.results.Results``. Must not: score runs (``testbed.scoring``)
or run them itself (a ``run_cell`` callable does, by default ``testbed.runner.run_scenario``;
tests pass a fake).

Deriving a cell's scenario from the base one: ``detectors`` is replaced by the set; response rules
then listen to ``any`` detector (the set's own), unless the bench gives ``response``; the worm
``profile`` is replaced and scenario ``params`` the new profile lacks are dropped; ``duration_s``
and ``backend`` override the scenario's when given.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from testbed.detection import load_scenario
from testbed.errors import Diagnostic, ValidationError
from testbed.model.diagnose import diagnostics_from_pydantic, did_you_mean
from testbed.model.load_scenario import Scenario
from testbed.model.scenario_spec import DetectorSpec, ResponseSpec
from testbed.results import Results
from testbed.stats import bootstrap_mean_ci, holm, intervals_overlap, mann_whitney, spread
from testbed.yamlsource import SourceDocument, load_yaml

__all__ = [
    "LEADERBOARD_METRICS",
    "BenchCell",
    "BenchRow",
    "BenchSpec",
    "LoadedBench",
    "cell_row",
    "derive_scenario",
    "leaderboard",
    "load_bench",
    "run_bench",
    "with_backend",
    "write_leaderboard",
]


def _detector_entry(value: Any) -> Any:
    """Let users write ``trw`` for ``{name: trw}``."""
    return {"name": value} if isinstance(value, str) else value


DetectorEntry = Annotated[DetectorSpec, BeforeValidator(
    _detector_entry, json_schema_input_type=str | DetectorSpec)]


class BenchSpec(BaseModel):
    """A benchmark matrix: every scenario x detector set x worm profile x seed is one run."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Adaptive-worm testbed bench")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="Bench name.")
    description: str = ""
    scenarios: list[str] = Field(min_length=1, description="Scenario files, relative to this "
                                                           "file.")
    detector_sets: dict[str, list[DetectorEntry]] | None = Field(
        None, description="Named detector sets (a name, or {name, params}) replacing each "
                          "scenario's detectors; omit to keep the scenarios' own.")
    profiles: list[str] | None = Field(None, description="Worm profiles to try; omit to keep "
                                                         "each scenario's.")
    seeds: list[int] | int = Field(3, description="Seeds, or how many seeds counting up from "
                                                  "each scenario's seed.")
    duration_s: float | None = Field(None, gt=0, le=86400,
                                     description="Overrides each scenario's duration_s.")
    backend: str | None = Field(None, description="Overrides each scenario's backend.")
    response: ResponseSpec | None = Field(None, description="Response policy for every cell; "
                                                            "default: each scenario's, with rules "
                                                            "listening to any detector.")
    report: bool = Field(False, description="Write each run's report.html (slower).")
    baseline: str | None = Field(None, description="The detector set every other set is "
                                                   "compared with in the leaderboard; default "
                                                   "'none' when there is one, else the first.")


@dataclass(frozen=True)
class BenchCell:
    """One run of the matrix."""

    scenario: str  # scenario name
    scenario_path: Path
    detector_set: str  # set name, or "own" for the scenario's own detectors
    profile: str
    seed: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.detector_set, self.profile)

    def directory(self, root: Path) -> Path:
        return (root / "runs" / self.scenario / self.detector_set / self.profile
                / f"seed-{self.seed}")


@dataclass(frozen=True)
class LoadedBench:
    spec: BenchSpec
    path: Path
    scenarios: dict[str, Scenario]  # by name

    def cells(self) -> list[BenchCell]:
        cells = []
        for scenario in self.scenarios.values():
            sets = (list(self.spec.detector_sets) if self.spec.detector_sets is not None
                    else [OWN_DETECTORS])
            profiles = self.spec.profiles or [scenario.spec.worm.profile]
            seeds = (list(self.spec.seeds) if isinstance(self.spec.seeds, list)
                     else [scenario.spec.seed + i for i in range(self.spec.seeds)])
            for detector_set in sets:
                for profile in profiles:
                    for seed in seeds:
                        cells.append(BenchCell(scenario.name, scenario.path, detector_set,
                                               profile, seed))
        return cells


OWN_DETECTORS = "own"


@lru_cache(maxsize=1)
def bench_schema() -> dict[str, Any]:
    return BenchSpec.model_json_schema(by_alias=True)


def load_bench(path: str | Path) -> LoadedBench:
    """Load and check a bench file and every scenario it names; ValidationError otherwise."""
    path = Path(path)
    document = load_yaml(path)
    try:
        spec = BenchSpec.model_validate(document.data)
    except pydantic.ValidationError as err:
        raise ValidationError(diagnostics_from_pydantic(err, document, bench_schema())) from None
    problems = _cross_check(spec, document)
    scenarios: dict[str, Scenario] = {}
    for index, name in enumerate(spec.scenarios):
        scenario_path = path.parent / name
        if not scenario_path.is_file():
            problems.append(document.diagnostic(("scenarios", index),
                                                f"scenario file {name!r} not found",
                                                hint="paths are relative to the bench file"))
            continue
        scenario = load_scenario(scenario_path)
        if scenario.name in scenarios:
            problems.append(document.diagnostic(("scenarios", index),
                                                f"scenario {scenario.name!r} is listed twice"))
        scenarios[scenario.name] = scenario
    if problems:
        raise ValidationError(problems)
    return LoadedBench(spec, path, scenarios)


def _cross_check(spec: BenchSpec, document: SourceDocument) -> list[Diagnostic]:
    from detectors.registry import DETECTORS
    from testbed.model.profiles import profile_catalog

    problems = []
    for set_name, detectors in (spec.detector_sets or {}).items():
        seen = set()
        for index, detector in enumerate(detectors):
            where = ("detector_sets", set_name, index)
            if detector.name not in DETECTORS:
                problems.append(document.diagnostic(
                    where, f"unknown detector {detector.name!r}",
                    hint=did_you_mean(detector.name, set(DETECTORS.names()), "detectors")))
            elif detector.name in seen:
                problems.append(document.diagnostic(where, f"{detector.name!r} listed twice"))
            seen.add(detector.name)
    catalog = profile_catalog()
    for index, profile in enumerate(spec.profiles or []):
        if profile not in catalog:
            problems.append(document.diagnostic(
                ("profiles", index), f"unknown worm profile {profile!r}",
                hint=did_you_mean(profile, set(catalog), "profiles")))
    if spec.baseline is not None and spec.baseline not in (spec.detector_sets or {}):
        problems.append(document.diagnostic(
            ("baseline",), f"baseline {spec.baseline!r} is not one of the detector sets",
            hint=did_you_mean(spec.baseline, set(spec.detector_sets or {}), "detector sets")))
    if spec.backend is not None:
        from testbed.backends import BACKENDS

        if spec.backend not in BACKENDS:
            problems.append(document.diagnostic(
                ("backend",), f"unknown backend {spec.backend!r}",
                hint=did_you_mean(spec.backend, set(BACKENDS.names()), "backends")))
    return problems


def with_backend(bench: LoadedBench, backend: str) -> LoadedBench:
    """The bench with every cell on ``backend`` (``testbed bench --backend``); an unknown name is
    a ``RegistryError`` with the known ones."""
    from testbed.backends import BACKENDS

    BACKENDS.get(backend)
    return dataclasses.replace(bench, spec=bench.spec.model_copy(update={"backend": backend}))


def derive_scenario(bench: LoadedBench, cell: BenchCell) -> Scenario:
    """The cell's scenario: the base one with the bench's overrides (see the module docstring)."""
    from testbed.model.profiles import profile_catalog

    base = bench.scenarios[cell.scenario]
    spec = base.spec
    update: dict[str, Any] = {}
    if cell.detector_set != OWN_DETECTORS and bench.spec.detector_sets is not None:
        update["detectors"] = list(bench.spec.detector_sets[cell.detector_set])
        if bench.spec.response is None:
            rules = [rule.model_copy(update={"on": ["any"]}) for rule in spec.response.rules]
            update["response"] = spec.response.model_copy(update={"rules": rules})
    if bench.spec.response is not None:
        update["response"] = bench.spec.response
    if cell.profile != spec.worm.profile:
        known = profile_catalog()[cell.profile].params
        params = {k: v for k, v in spec.worm.params.items() if k in known}
        update["worm"] = spec.worm.model_copy(update={"profile": cell.profile,
                                                      "params": params})
    if bench.spec.duration_s is not None:
        update["duration_s"] = bench.spec.duration_s
    if bench.spec.backend is not None:
        update["backend"] = bench.spec.backend
    update["seed"] = cell.seed
    update["repetitions"] = 1
    if not bench.spec.report:
        update["outputs"] = spec.outputs.model_copy(update={"report": False})
    return dataclasses.replace(base, spec=spec.model_copy(update=update))


# ---- rows and the leaderboard -----------------------------------------------------------------

LEADERBOARD_METRICS: tuple[tuple[str, str, bool], ...] = (
    # (row key, column title, lower is better)
    ("grade_score", "grade score", False),
    ("time_to_first_detection_s", "detect (s)", True),
    ("time_to_containment_s", "contain (s)", True),
    ("infected_total", "infected", True),
    ("value_weighted_loss", "value lost", True),
    ("precision", "precision", False),
    ("recall", "recall", False),
    ("benign_hosts_quarantined", "benign quarantined", True),
)


class BenchRow(BaseModel):
    """One run of the bench, flat (a line of runs.csv and the input of the leaderboard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    detector_set: str
    profile: str
    seed: int
    grade: str
    grade_score: float
    time_to_first_detection_s: float | None
    time_to_containment_s: float | None
    contained: bool
    infected_total: int
    peak_infected: int
    value_weighted_loss: float
    launch_pad_escape: bool
    crown_jewels_infected: int
    precision: float | None  # all detectors together
    recall: float | None
    benign_hosts_quarantined: int
    egress_packets: int | None

    def metric(self, key: str) -> float | None:
        """A LEADERBOARD_METRICS value as a number (None when the run did not measure it)."""
        value = getattr(self, key)
        return None if value is None else float(value)


def cell_row(cell: BenchCell, results: Results) -> BenchRow:
    """One flat row per run (the per-run CSV and the input of the leaderboard)."""
    combined = results.detectors.get("any")
    return BenchRow(
        scenario=cell.scenario, detector_set=cell.detector_set, profile=cell.profile,
        seed=cell.seed,
        grade=results.grade.letter, grade_score=results.grade.score,
        time_to_first_detection_s=results.time_to_first_detection_s,
        time_to_containment_s=results.time_to_containment_s,
        contained=results.contained,
        infected_total=results.infected_total,
        peak_infected=results.peak_infected,
        value_weighted_loss=results.value_weighted_loss,
        launch_pad_escape=results.launch_pad_escape.escaped,
        crown_jewels_infected=len(results.crown_jewels_infected),
        precision=combined.precision if combined else None,
        recall=combined.recall if combined else None,
        benign_hosts_quarantined=results.collateral.benign_hosts_quarantined,
        egress_packets=results.safety.egress_packets,
    )


def leaderboard(rows: Iterable[BenchRow], baseline: str | None = None) -> list[dict[str, Any]]:
    """Rows grouped by (scenario, detector set, profile), ranked within each scenario by median
    grade score (higher first), then median infected (lower), then name.

    Per metric: n, median with Q1 and Q3 (and IQR), mean with its 95 % bootstrap confidence
    interval. Each group is compared with its baseline group (same scenario and worm profile,
    detector set ``baseline``; default: the set called ``none``, else the first one met) by
    Cliff's delta and a two-sided Mann-Whitney p-value, Holm-corrected over all comparisons of
    that metric; the verdict is "better" or "worse" only when the corrected p-value is below
    0.05 AND the two confidence intervals do not overlap, otherwise "not enough runs to tell".
    Entries are JSON-ready (they become leaderboard.csv and bench.json as they are) and depend
    only on the multiset of rows, not on their order."""
    groups: dict[tuple[str, str, str], list[BenchRow]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.detector_set, row.profile), []).append(row)
    board = []
    for (scenario, detector_set, profile), members in groups.items():
        entry: dict[str, Any] = {"scenario": scenario, "detector_set": detector_set,
                                 "profile": profile, "runs": len(members),
                                 "contained": sum(1 for m in members if m.contained),
                                 "detected": sum(1 for m in members
                                                 if m.time_to_first_detection_s is not None)}
        for key, _title, _lower in LEADERBOARD_METRICS:
            values = [v for v in (m.metric(key) for m in members) if v is not None]
            summary = spread(values)
            entry[f"{key}_median"], entry[f"{key}_iqr"] = summary.median, summary.iqr
            entry[f"{key}_q1"], entry[f"{key}_q3"] = summary.q1, summary.q3
            entry[f"{key}_n"] = summary.n
            interval = bootstrap_mean_ci(values)
            entry[f"{key}_mean"], entry[f"{key}_ci_low"], entry[f"{key}_ci_high"] = (
                interval if interval is not None else (None, None, None))
        board.append(entry)
    _compare_with_baseline(board, groups, baseline)

    def rank_key(entry: dict[str, Any]) -> tuple[str, float, float, str, str]:
        score = entry["grade_score_median"]
        infected = entry["infected_total_median"]
        return (entry["scenario"], -(score if score is not None else -1.0),
                infected if infected is not None else float("inf"), entry["detector_set"],
                entry["profile"])

    board.sort(key=rank_key)
    rank, previous = 0, None
    for entry in board:
        rank = 1 if entry["scenario"] != previous else rank + 1
        previous = entry["scenario"]
        entry["rank"] = rank
    return board


BASELINE_SET = "none"
SIGNIFICANCE = 0.05
NOT_ENOUGH_RUNS = "not enough runs to tell"


def _compare_with_baseline(board: list[dict[str, Any]],
                           groups: dict[tuple[str, str, str], list[BenchRow]],
                           baseline: str | None) -> None:
    """Add ``{metric}_effect``, ``_p``, ``_p_adjusted`` and ``_verdict`` to every non-baseline
    entry, and ``baseline`` (the set compared with, None when there is none) to every entry."""
    sets = list(dict.fromkeys(entry["detector_set"] for entry in board))
    if baseline is None and len(sets) > 1:  # one set alone has nothing to be compared with
        baseline = BASELINE_SET if BASELINE_SET in sets else sets[0]
    pending: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for entry in board:
        reference = groups.get((entry["scenario"], baseline or "", entry["profile"]))
        own = entry["detector_set"] == baseline
        entry["baseline"] = baseline if reference is not None and not own else None
        for key, _title, _lower in LEADERBOARD_METRICS:
            entry[f"{key}_effect"] = entry[f"{key}_p"] = entry[f"{key}_p_adjusted"] = None
            entry[f"{key}_verdict"] = "baseline" if own else None
            if own or reference is None:
                continue
            members = groups[(entry["scenario"], entry["detector_set"], entry["profile"])]
            comparison = mann_whitney(
                [v for v in (m.metric(key) for m in members) if v is not None],
                [v for v in (m.metric(key) for m in reference) if v is not None])
            if comparison is None:
                continue
            entry[f"{key}_effect"], entry[f"{key}_p"] = comparison.effect, comparison.p_value
            pending.setdefault(key, []).append((entry, comparison.p_value))
    by_key = {(e["scenario"], e["detector_set"], e["profile"]): e for e in board}
    for key, lower_is_better in ((k, lower) for k, _t, lower in LEADERBOARD_METRICS):
        family = pending.get(key, [])
        for (entry, _p), adjusted in zip(family, holm([p for _e, p in family]), strict=True):
            entry[f"{key}_p_adjusted"] = adjusted
            base = by_key[(entry["scenario"], entry["baseline"], entry["profile"])]
            overlap = intervals_overlap((entry[f"{key}_ci_low"], entry[f"{key}_ci_high"]),
                                        (base[f"{key}_ci_low"], base[f"{key}_ci_high"]))
            if adjusted >= SIGNIFICANCE or overlap or entry[f"{key}_effect"] == 0:
                entry[f"{key}_verdict"] = NOT_ENOUGH_RUNS
            else:
                higher = entry[f"{key}_effect"] > 0
                entry[f"{key}_verdict"] = "worse" if higher == lower_is_better else "better"


def _cell_text(entry: dict[str, Any], key: str) -> str:
    """``median [Q1, Q3]; mean (95 % CI low-high); n``."""
    median = entry[f"{key}_median"]
    if median is None:
        return "n/a"
    text = f"{median:.3g} [{entry[f'{key}_q1']:.3g}, {entry[f'{key}_q3']:.3g}]"
    low, high = entry[f"{key}_ci_low"], entry[f"{key}_ci_high"]
    return text + f"; {entry[f'{key}_mean']:.3g} ({low:.3g}–{high:.3g}); n={entry[f'{key}_n']}"


def _versus_text(entry: dict[str, Any], key: str = "grade_score") -> str:
    """The row's comparison with its baseline on ``key``."""
    verdict = entry.get(f"{key}_verdict")
    if verdict is None or verdict == "baseline":
        return verdict or "–"
    return (f"{verdict} (δ={entry[f'{key}_effect']:+.2f}, "
            f"p={entry[f'{key}_p_adjusted']:.2g})")


LEADERBOARD_EXPLAINED = (
    "Each cell: median [Q1, Q3]; mean (95 % bootstrap confidence interval); n runs. "
    "'vs baseline' compares the grade score with the baseline detector set's on the same "
    "scenario and worm: Cliff's delta δ and the Mann-Whitney p-value, Holm-corrected; "
    "\"not enough runs to tell\" unless p < 0.05 and the intervals do not overlap. Ranked per "
    "scenario by median grade score.")


def leaderboard_csv(board: list[dict[str, Any]]) -> str:
    columns = ["rank", "scenario", "detector_set", "profile", "runs", "contained", "detected",
               "baseline"]
    for key, _title, _lower in LEADERBOARD_METRICS:
        columns += [f"{key}_{part}" for part in (
            "median", "iqr", "n", "q1", "q3", "mean", "ci_low", "ci_high", "effect", "p",
            "p_adjusted", "verdict")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for entry in board:
        writer.writerow({k: ("" if entry.get(k) is None else entry.get(k)) for k in columns})
    return out.getvalue()


def leaderboard_markdown(board: list[dict[str, Any]], title: str) -> str:
    header = ["#", "scenario", "detectors", "worm", "contained", "vs baseline", *(
        t for _k, t, _l in LEADERBOARD_METRICS)]
    lines = [f"# {title}", "", LEADERBOARD_EXPLAINED, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in board:
        cells = [str(entry["rank"]), entry["scenario"], entry["detector_set"], entry["profile"],
                 f"{entry['contained']}/{entry['runs']}", _versus_text(entry),
                 *(_cell_text(entry, key) for key, _t, _l in LEADERBOARD_METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def leaderboard_html(board: list[dict[str, Any]], title: str) -> str:
    """One offline HTML file: the table, and bars of median grade score with a whisker from Q1
    to Q3 (not median ± IQR/2, which misdraws skewed data)."""
    header = "".join(f"<th>{escape(h)}</th>" for h in (
        "#", "scenario", "detectors", "worm", "contained", "vs baseline",
        *(t for _k, t, _l in LEADERBOARD_METRICS)))
    rows = []
    for entry in board:
        cells = [str(entry["rank"]), entry["scenario"], entry["detector_set"], entry["profile"],
                 f"{entry['contained']}/{entry['runs']}", _versus_text(entry),
                 *(_cell_text(entry, key) for key, _t, _l in LEADERBOARD_METRICS)]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    bar_height, width, left = 22, 900, 330
    scale = (width - left - 40) / 100.0
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
           f"height='{bar_height * len(board) + 40}' role='img' aria-label='grade scores'>"]
    for index, entry in enumerate(board):
        y = 10 + index * bar_height
        median = entry["grade_score_median"] or 0.0
        q1 = entry["grade_score_q1"] if entry["grade_score_q1"] is not None else median
        q3 = entry["grade_score_q3"] if entry["grade_score_q3"] is not None else median
        label = f"{entry['scenario']} / {entry['detector_set']} / {entry['profile']}"
        svg.append(f"<text x='{left - 8}' y='{y + 15}' font-size='12' text-anchor='end'>"
                   f"{escape(label)}</text>")
        svg.append(f"<rect x='{left}' y='{y + 3}' width='{median * scale:.1f}' height='15' "
                   f"fill='#42a5f5'><title>median {median:.1f}, Q1 {q1:.1f}, Q3 {q3:.1f}"
                   f"</title></rect>")
        x1, x3 = left + q1 * scale, left + q3 * scale
        svg.append(f"<line class='quartiles' x1='{x1:.1f}' x2='{x3:.1f}' y1='{y + 10}' "
                   f"y2='{y + 10}' stroke='#263238' stroke-width='2'/>")
        for x in (x1, x3):
            svg.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y + 6}' y2='{y + 14}' "
                       f"stroke='#263238' stroke-width='2'/>")
        svg.append(f"<text x='{left + max(median, q3) * scale + 6:.1f}' y='{y + 15}' "
                   f"font-size='11'>{median:.1f}</text>")
    svg.append("</svg>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{escape(title)}</title><style>body{{font-family:'DejaVu Sans',Arial,sans-serif;"
            "margin:24px;color:#263238}table{border-collapse:collapse;font-size:13px}"
            "th,td{border:1px solid #cfd8dc;padding:4px 8px;text-align:right}td{white-space:nowrap}"
            "th{background:#eceff1}td:nth-child(2),td:nth-child(3),td:nth-child(4)"
            "{text-align:left}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>{escape(LEADERBOARD_EXPLAINED)}</p>"
            f"<table><tr>{header}</tr>{''.join(rows)}</table><h2>Median grade score "
            "(whiskers: Q1 to Q3)</h2>" + "".join(svg) + "</body></html>\n")


def write_leaderboard(out_dir: Path, rows: list[BenchRow], title: str,
                      baseline: str | None = None) -> dict[str, Path]:
    """Write runs.csv (one row per run), leaderboard.{csv,md,html} and bench.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    board = leaderboard(rows, baseline)
    paths = {"runs": out_dir / "runs.csv", "csv": out_dir / "leaderboard.csv",
             "markdown": out_dir / "leaderboard.md", "html": out_dir / "leaderboard.html",
             "json": out_dir / "bench.json"}
    records = [row.model_dump(mode="json") for row in rows]
    if rows:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(BenchRow.model_fields),
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        paths["runs"].write_text(buffer.getvalue(), encoding="utf-8")
    else:
        paths["runs"].write_text("", encoding="utf-8")
    paths["csv"].write_text(leaderboard_csv(board), encoding="utf-8")
    paths["markdown"].write_text(leaderboard_markdown(board, title), encoding="utf-8")
    paths["html"].write_text(leaderboard_html(board, title), encoding="utf-8")
    paths["json"].write_text(json.dumps({"title": title, "runs": records, "leaderboard": board},
                                        indent=2) + "\n", encoding="utf-8")
    return paths


RunCell = Callable[[Scenario, Path], Results]


def _run_with_runner(scenario: Scenario, run_dir: Path) -> Results:
    from testbed.runner import run_scenario

    return run_scenario(scenario, out_dir=run_dir, live=False,
                        stream=io.StringIO()).results


def _finished_results(path: Path) -> Results | None:
    """A cell's results when it finished (not interrupted) and their shape is current."""
    try:
        results = Results.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, pydantic.ValidationError):
        return None  # not run yet, or by an older version: run it again
    return None if results.run.interrupted else results


def run_bench(bench: LoadedBench, out_dir: Path, *, run_cell: RunCell | None = None,
              progress: Callable[[int, int, BenchCell, BenchRow | None], None] | None
              = None) -> tuple[list[BenchRow], dict[str, Path]]:
    """Run every cell one after another (each independent of the others); a cell whose run
    directory already has a complete results.json of this version is reused, so an interrupted
    bench resumes."""
    run_cell = run_cell or _run_with_runner
    cells = bench.cells()
    rows = []
    for index, cell in enumerate(cells):
        if progress is not None:
            progress(index, len(cells), cell, None)
        directory = cell.directory(out_dir)
        results = _finished_results(directory / "results.json")
        if results is None:
            if directory.exists():
                shutil.rmtree(directory)  # an interrupted run's partial outputs
            results = run_cell(derive_scenario(bench, cell), directory)
        row = cell_row(cell, results)
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(cells), cell, row)
    paths = write_leaderboard(out_dir, rows, f"bench {bench.spec.name}", bench.spec.baseline)
    return rows, paths
