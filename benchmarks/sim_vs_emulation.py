"""Benchmark: is the simulation backend equivalent to the netns emulator? (issue 11, item 6)

Follows the validation protocol of the JAX port of CybORG (jaxborg): the same scenario, seed and
duration run on both backends, then run-level equivalence per (cell, metric) by two one-sided
tests (TOST) against margins fixed in advance (the constants below, printed before anything runs).

Run: ``python benchmarks/sim_vs_emulation.py [--seeds 10] [--duration 30] [--scenarios ...]
[--profiles ...] [--out runs/sim-vs-emulation]`` (root: the netns side deploys namespaces).

- Cells: scenarios (default smb-flat, smb-segmented and the flagship basement-launchpad) x worm
  profiles (classic, local-preference, hitlist, adaptive) x seeds (the scenario's seed counting
  up). Each cell's scenario is derived exactly as ``testbed bench`` derives it
  (``testbed.bench.derive_scenario``: the scenario's detectors and response as shipped, the worm
  profile replaced and the params it lacks dropped, ``--duration`` overriding the scenario's).
- Each run: netns through ``testbed.runner.run_scenario``, sim through
  ``testbed.sim.run.run_simulation``, into ``<out>/<scenario>/<profile>/<backend>/seed-N/``. A run
  whose ``results.json`` is complete is reused, so rerunning continues where it stopped; Ctrl-C
  (or SIGTERM) stops cleanly (the runner tears its deployment down) and writes the tables so far.
  Runs go seed by seed across all cells, so a stopped benchmark has every cell at a similar depth.
- Metrics, each compared on the pairs (same seed) where both backends finished:
  infected total; detected (proportion) and time to first detection over the pairs where both
  detected; contained (proportion) and time to containment over the pairs where both contained;
  crown jewel lost (proportion).
- Tests (all paired by seed: the sim draws the worm's random stream exactly as the agents do, so
  the same seed is the same outbreak as far as timing lets it be):
  numbers: paired TOST on the per-seed differences d = sim - netns (Student t, n-1 degrees of
  freedom); proportions: TOST on the difference of matched proportions, a Wald z statistic with
  Agresti & Min's (2005) adjustment (0.5 added to each cell of the 2x2 table) so that perfect
  agreement over few seeds does not give a zero variance. The TOST p-value is the larger of the
  two one-sided p-values; "equivalent" when it is below ALPHA (the 90 % confidence interval of the
  difference lies inside the margin), "different" when that interval lies wholly outside the
  margin, "inconclusive" otherwise (too few seeds or too much noise to tell). A numeric metric
  whose differences are all equal (zero variance) is "equivalent" with p = 0 when that difference
  is inside the margin, "different" with p = 1 otherwise.
- Output: a table per scenario (profile x metric: netns mean, sim mean, difference, margin, p,
  verdict) in ``<out>/sim-vs-emulation.md`` and ``.json``, also printed.

Caveat printed with the figures: the netns side runs in real time on a shared machine (other
engineers' tests, 2 cores): load shifts its timing, which the sim does not model.
No figure is asserted: benchmarks print.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pydantic
from scipy import stats as scipy_stats

from testbed.bench import BenchCell, BenchRow, BenchSpec, LoadedBench, cell_row, derive_scenario
from testbed.errors import TestbedError
from testbed.model.load_scenario import Scenario, load_scenario, scenario_path
from testbed.results import Results
from testbed.runner.signals import sigterm_as_interrupt
from testbed.stats import (  # the verdicts are this script's vocabulary (its test reads them)
    DIFFERENT,
    EQUIVALENT,
    INCONCLUSIVE,  # noqa: F401
    equivalence_verdict,
    format_number,
    format_p,
)

REPO = Path(__file__).resolve().parent.parent

# ---- margins, fixed before any run (issue 11, item 6) ------------------------------------------
HOSTS_MARGIN_MIN = 1.0          # infected hosts: max(1 host, 10 % of the netns mean)
HOSTS_MARGIN_FRACTION = 0.10
TIME_MARGIN_MIN_S = 0.5         # times: max(0.5 s, 15 % of the netns mean over the pairs)
TIME_MARGIN_FRACTION = 0.15
PROPORTION_MARGIN = 0.15        # proportions: 0.15 absolute
ALPHA = 0.05                    # each one-sided test; the TOST is then a 90 % interval
AGRESTI_MIN_ADD = 0.5           # added to each cell of a matched 2x2 table

DEFAULT_SCENARIOS = ("scenarios/smb-flat.yaml", "scenarios/smb-segmented.yaml",
                     "scenarios/basement-launchpad.yaml")
DEFAULT_PROFILES = ("classic", "local-preference", "hitlist", "adaptive")
BACKENDS = ("netns", "sim")
OWN_DETECTORS = "own"

NO_DATA = "no data"


def margins_text() -> str:
    return (f"margins (fixed in advance): hosts max({HOSTS_MARGIN_MIN:g}, "
            f"{HOSTS_MARGIN_FRACTION:.0%} of the netns mean); times max({TIME_MARGIN_MIN_S:g} s, "
            f"{TIME_MARGIN_FRACTION:.0%} of the netns mean over the pairs); proportions "
            f"{PROPORTION_MARGIN:g}; alpha {ALPHA:g} per one-sided test (90 % interval)")


# ---- statistics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One (cell, metric) verdict."""

    metric: str
    kind: str                   # "hosts", "time" or "proportion"
    test: str                   # which test produced p
    pairs: int                  # seeds compared
    netns_mean: float | None
    sim_mean: float | None
    difference: float | None    # sim - netns
    margin: float | None
    ci90: tuple[float, float] | None
    p_value: float | None       # TOST p: the larger one-sided p
    verdict: str
    note: str = ""
    seeds_apart: tuple[int, ...] = ()  # seeds differing by the margin or more

    def as_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def paired_tost(metric: str, kind: str, netns: Sequence[float], sim: Sequence[float],
                margin: float, note: str = "") -> Comparison:
    """Paired TOST on d = sim - netns: H0 |mean d| >= margin, rejected when both one-sided
    t tests reject at ALPHA."""
    pairs = len(netns)
    if pairs < 2:
        return Comparison(metric, kind, "paired t TOST", pairs,
                          statistics.fmean(netns) if netns else None,
                          statistics.fmean(sim) if sim else None,
                          (statistics.fmean(sim) - statistics.fmean(netns)) if pairs else None,
                          margin, None, None, NO_DATA, note or "fewer than 2 pairs")
    differences = [s - n for n, s in zip(netns, sim, strict=True)]
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences)
    common = (metric, kind, "paired t TOST", pairs, statistics.fmean(netns),
              statistics.fmean(sim), mean, margin)
    if sd == 0.0:
        inside = abs(mean) < margin
        return Comparison(*common, (mean, mean), 0.0 if inside else 1.0,
                          EQUIVALENT if inside else DIFFERENT,
                          (note + "; " if note else "") + "every pair differs by the same amount")
    se = sd / math.sqrt(pairs)
    df = pairs - 1
    p_lower = float(scipy_stats.t.sf((mean + margin) / se, df))    # H0: mean <= -margin
    p_upper = float(scipy_stats.t.cdf((mean - margin) / se, df))   # H0: mean >= +margin
    half = float(scipy_stats.t.ppf(1 - ALPHA, df)) * se
    ci = (mean - half, mean + half)
    return Comparison(*common, ci, max(p_lower, p_upper), equivalence_verdict(*ci, margin), note)


def matched_proportion_tost(metric: str, netns: Sequence[bool], sim: Sequence[bool],
                            margin: float = PROPORTION_MARGIN) -> Comparison:
    """TOST on the difference of matched proportions p_sim - p_netns: Wald z with Agresti & Min's
    adjustment (AGRESTI_MIN_ADD in each cell of the 2x2 table of (netns, sim) outcomes)."""
    pairs = len(netns)
    test = "matched-proportions z TOST (Agresti-Min)"
    if pairs == 0:
        return Comparison(metric, "proportion", test, 0, None, None, None, margin, None, None,
                          NO_DATA)
    only_sim = sum(1 for n, s in zip(netns, sim, strict=True) if s and not n)
    only_netns = sum(1 for n, s in zip(netns, sim, strict=True) if n and not s)
    add = AGRESTI_MIN_ADD
    total = pairs + 4 * add
    b, c = only_sim + add, only_netns + add
    difference = (b - c) / total
    variance = ((b + c) - (b - c) ** 2 / total) / total ** 2
    se = math.sqrt(variance)
    p_lower = float(scipy_stats.norm.sf((difference + margin) / se))
    p_upper = float(scipy_stats.norm.cdf((difference - margin) / se))
    half = float(scipy_stats.norm.ppf(1 - ALPHA)) * se
    ci = (difference - half, difference + half)
    netns_rate, sim_rate = sum(netns) / pairs, sum(sim) / pairs
    return Comparison(metric, "proportion", test, pairs, netns_rate, sim_rate,
                      sim_rate - netns_rate, margin, ci, max(p_lower, p_upper),
                      equivalence_verdict(*ci, margin),
                      f"discordant pairs: {only_netns} netns only, {only_sim} sim only")


def hosts_margin(netns_mean: float) -> float:
    return max(HOSTS_MARGIN_MIN, HOSTS_MARGIN_FRACTION * abs(netns_mean))


def time_margin(netns_mean: float) -> float:
    return max(TIME_MARGIN_MIN_S, TIME_MARGIN_FRACTION * abs(netns_mean))


def _seeds_apart(pairs: Sequence[tuple[BenchRow, BenchRow]], value: Callable[[BenchRow], Any],
                 margin: float) -> tuple[int, ...]:
    """Seeds whose two runs differ by the margin or more (for proportions: disagree): where to
    look in the runs' events when a cell is not equivalent."""
    apart = []
    for netns, sim in pairs:
        a, b = value(netns), value(sim)
        if isinstance(a, bool) or isinstance(b, bool):
            if a != b:
                apart.append(netns.seed)
        elif a is not None and b is not None and abs(float(b) - float(a)) >= margin:
            apart.append(netns.seed)
    return tuple(apart)


def _numbers(metric: str, kind: str, pairs: list[tuple[BenchRow, BenchRow]],
             value: Callable[[BenchRow], float | None], happened: str | None = None
             ) -> Comparison:
    """Paired TOST of a number; with ``happened``, only over the pairs where both have it."""
    both = [(n, s) for n, s in pairs if value(n) is not None and value(s) is not None]
    netns = [float(value(n) or 0.0) for n, _ in both]
    sim = [float(value(s) or 0.0) for _, s in both]
    margin_of = hosts_margin if kind == "hosts" else time_margin
    margin = margin_of(statistics.fmean(netns)) if netns else margin_of(0.0)
    note = (f"over the {len(both)} of {len(pairs)} seeds where both {happened}"
            if happened else "")
    comparison = paired_tost(metric, kind, netns, sim, margin, note)
    return dataclasses.replace(comparison, seeds_apart=_seeds_apart(both, value, margin))


def _proportion(metric: str, pairs: list[tuple[BenchRow, BenchRow]],
                value: Callable[[BenchRow], bool]) -> Comparison:
    comparison = matched_proportion_tost(metric, [value(n) for n, _ in pairs],
                                         [value(s) for _, s in pairs])
    return dataclasses.replace(comparison, seeds_apart=_seeds_apart(pairs, value, 0.0))


def compare_cell(pairs: list[tuple[BenchRow, BenchRow]]) -> list[Comparison]:
    """Every metric of one (scenario, profile) cell over its (netns, sim) pairs of rows."""

    def detection(row: BenchRow) -> float | None:
        return row.time_to_first_detection_s

    def containment(row: BenchRow) -> float | None:
        return row.time_to_containment_s if row.contained else None

    return [
        _numbers("infected total", "hosts", pairs, lambda row: float(row.infected_total)),
        _proportion("detected", pairs, lambda row: detection(row) is not None),
        _numbers("time to first detection (s)", "time", pairs, detection, "detected"),
        _proportion("contained", pairs, lambda row: row.contained),
        _numbers("time to containment (s)", "time", pairs, containment, "contained"),
        _proportion("crown jewel lost", pairs, lambda row: row.crown_jewels_infected > 0),
    ]


# ---- runs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    cell: BenchCell
    backend: str

    def directory(self, root: Path) -> Path:
        return (root / self.cell.scenario / self.cell.profile / self.backend
                / f"seed-{self.cell.seed}")


class MixedSettingsError(TestbedError):
    """The output directory holds runs made with other settings (another duration)."""


def finished_results(run_dir: Path, duration_s: float | None = None) -> Results | None:
    """A run's results when it finished (not interrupted) in the current shape, else None.
    ``MixedSettingsError`` when it finished with another duration than ``duration_s``: reusing it
    would compare unlike runs, and deleting it would lose someone's figures."""
    try:
        results = Results.model_validate_json((run_dir / "results.json").read_text("utf-8"))
    except (OSError, ValueError, pydantic.ValidationError):
        return None
    if results.run.interrupted:
        return None
    if duration_s is not None:
        manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
        if not math.isclose(float(manifest["duration_s"]), duration_s):
            raise MixedSettingsError(
                f"{run_dir} holds a run of {manifest['duration_s']} s, not {duration_s:g} s: "
                "choose another --out for another duration")
    return results


def run_netns(scenario: Scenario, run_dir: Path) -> Results:
    from testbed.runner import run_scenario

    return run_scenario(scenario, backend="netns", out_dir=run_dir, live=False,
                        stream=io.StringIO()).results


def run_sim(scenario: Scenario, run_dir: Path) -> Results:
    from testbed.sim.run import run_simulation

    results, _ = run_simulation(scenario, out_dir=run_dir)
    return Results.model_validate(results)


RUNNERS: dict[str, Callable[[Scenario, Path], Results]] = {"netns": run_netns, "sim": run_sim}


def run_job(bench: LoadedBench, job: Job, root: Path,
            runners: dict[str, Callable[[Scenario, Path], Results]]) -> tuple[BenchRow, bool]:
    """The job's row, running it unless a finished run is on disk; (row, ran)."""
    directory = job.directory(root)
    scenario = derive_scenario(bench, job.cell)
    results = finished_results(directory, scenario.spec.duration_s)
    if results is not None:
        return cell_row(job.cell, results), False
    if directory.exists():
        shutil.rmtree(directory)  # an interrupted run's partial outputs
    directory.parent.mkdir(parents=True, exist_ok=True)
    results = runners[job.backend](scenario, directory)
    return cell_row(job.cell, results), True


def make_bench(scenario_paths: Iterable[Path], profiles: Sequence[str], seeds: int,
               duration: float | None) -> LoadedBench:
    """The matrix as a bench (own detectors, profiles overridden), so that every cell's scenario
    is derived by ``testbed.bench.derive_scenario``."""
    scenarios = {}
    for path in scenario_paths:
        scenario = load_scenario(path)
        scenarios[scenario.name] = scenario
    spec = BenchSpec(name="sim-vs-emulation", scenarios=[str(p) for p in scenario_paths],
                     profiles=list(profiles), seeds=seeds, duration_s=duration)
    return LoadedBench(spec, REPO / "benchmarks" / "sim_vs_emulation.py", scenarios)


def seed_major_jobs(bench: LoadedBench) -> list[Job]:
    """Seed by seed across every cell, netns then sim, so a stopped run leaves even cells."""
    cells = bench.cells()
    depth: dict[tuple[str, str, str], int] = {}
    ranked = []
    for cell in cells:
        index = depth.get(cell.key, 0)
        depth[cell.key] = index + 1
        ranked.append((index, cell))
    ranked.sort(key=lambda item: item[0])
    return [Job(cell, backend) for _, cell in ranked for backend in BACKENDS]


class Progress:
    """One line per job with an ETA from the wall time of the runs this session made."""

    def __init__(self, jobs: list[Job], pending: list[Job], stream: Any = sys.stdout) -> None:
        self.total = len(jobs)
        self.stream = stream
        self.spent: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        self.pending = {backend: sum(1 for j in pending if j.backend == backend)
                        for backend in BACKENDS}
        self.started = time.monotonic()

    def eta_s(self) -> float | None:
        total = 0.0
        for backend, left in self.pending.items():
            if left == 0:
                continue
            if not self.spent[backend]:
                return None
            total += left * statistics.fmean(self.spent[backend])
        return total

    def done(self, index: int, job: Job, row: BenchRow, ran: bool, seconds: float) -> None:
        if ran:
            self.spent[job.backend].append(seconds)
            self.pending[job.backend] -= 1
        eta = self.eta_s()
        eta_text = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        cell = job.cell
        how = f"ran in {seconds:.1f} s" if ran else "reused"
        print(f"[{index + 1}/{self.total}] {cell.scenario}/{cell.profile}/{job.backend}/"
              f"seed-{cell.seed}: {how}; infected "
              f"{row.infected_total}, detect {_maybe(row.time_to_first_detection_s)}, contain "
              f"{_maybe(row.time_to_containment_s if row.contained else None)}, jewel "
              f"{'lost' if row.crown_jewels_infected else 'safe'} | ETA {eta_text}",
              file=self.stream, flush=True)


def _maybe(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


# ---- tables -------------------------------------------------------------------------------------

def compare_all(bench: LoadedBench, rows: dict[Job, BenchRow]) -> dict[str, dict[str, Any]]:
    """{scenario: {profile: {"seeds": n, "comparisons": [...]}}} over the complete pairs."""
    table: dict[str, dict[str, Any]] = {}
    for cell in bench.cells():
        table.setdefault(cell.scenario, {}).setdefault(cell.profile, [])
        netns, sim = rows.get(Job(cell, "netns")), rows.get(Job(cell, "sim"))
        if netns is not None and sim is not None:
            table[cell.scenario][cell.profile].append((netns, sim))
    return {scenario: {profile: {"seeds": len(pairs),
                                 "comparisons": [c.as_dict() for c in compare_cell(pairs)]}
                       for profile, pairs in profiles.items()}
            for scenario, profiles in table.items()}


_number = format_number
_p = format_p


def markdown(table: dict[str, dict[str, Any]], header: str) -> str:
    lines = [header, ""]
    for scenario, profiles in table.items():
        lines += [f"### {scenario}", "",
                  "| profile | metric | pairs | netns mean | sim mean | difference | margin | "
                  "TOST p | verdict | seeds apart |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for profile, cell in profiles.items():
            for comparison in cell["comparisons"]:
                lines.append(
                    f"| {profile} | {comparison['metric']} | {comparison['pairs']} | "
                    f"{_number(comparison['netns_mean'])} | {_number(comparison['sim_mean'])} | "
                    f"{_number(comparison['difference'])} | {_number(comparison['margin'])} | "
                    f"{_p(comparison['p_value'])} | {comparison['verdict']} | "
                    f"{', '.join(map(str, comparison['seeds_apart'])) or '–'} |")
        lines.append("")
    counts: dict[str, int] = {}
    for profiles in table.values():
        for cell in profiles.values():
            for comparison in cell["comparisons"]:
                counts[comparison["verdict"]] = counts.get(comparison["verdict"], 0) + 1
    lines.append("Verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def write_tables(bench: LoadedBench, rows: dict[Job, BenchRow], root: Path,
                 settings: dict[str, Any]) -> str:
    table = compare_all(bench, rows)
    header = (f"## sim vs netns: {settings['seeds']} seeds requested, duration "
              f"{settings['duration']}\n\n{margins_text()}.\nNumbers: paired t TOST on per-seed "
              f"differences (sim - netns); proportions: matched-proportions z TOST "
              "(Agresti-Min). Times only over the seeds where both backends detected / "
              "contained (see 'pairs'). 'seeds apart': seeds whose two runs differ by the "
              "margin or more (proportions: disagree).")
    text = markdown(table, header)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sim-vs-emulation.md").write_text(text, encoding="utf-8")
    (root / "sim-vs-emulation.json").write_text(json.dumps(
        {"settings": settings,
         "margins": {"hosts_min": HOSTS_MARGIN_MIN, "hosts_fraction": HOSTS_MARGIN_FRACTION,
                     "time_min_s": TIME_MARGIN_MIN_S, "time_fraction": TIME_MARGIN_FRACTION,
                     "proportion": PROPORTION_MARGIN, "alpha": ALPHA},
         "runs": [{"backend": job.backend, **row.model_dump(mode="json")}
                  for job, row in rows.items()],
         "cells": table}, indent=2) + "\n", encoding="utf-8")
    return text


# ---- main ---------------------------------------------------------------------------------------

def resolve_scenarios(names: Sequence[str]) -> list[Path]:
    return [scenario_path(name, REPO / "scenarios") for name in names]


def run(scenario_paths: Sequence[Path], profiles: Sequence[str], seeds: int,
        duration: float | None, root: Path,
        runners: dict[str, Callable[[Scenario, Path], Results]] | None = None,
        stream: Any = sys.stdout) -> dict[str, Any]:
    """Run (or reuse) every job, then write and return the tables. Ctrl-C writes what is done."""
    runners = runners or RUNNERS
    bench = make_bench(scenario_paths, profiles, seeds, duration)
    durations = {name: (duration if duration is not None else s.spec.duration_s)
                 for name, s in bench.scenarios.items()}
    settings = {"seeds": seeds, "duration": (f"{duration:g} s on both backends" if duration
                                             else "each scenario's own"),
                "durations_s": durations, "profiles": list(profiles),
                "scenarios": [str(p) for p in scenario_paths]}
    print(margins_text(), file=stream)
    print(f"durations (virtual on sim, real on netns): {durations}", file=stream)
    print("caveat: netns runs in real time on a shared machine; load shifts its timing",
          file=stream, flush=True)
    jobs = seed_major_jobs(bench)
    pending = [job for job in jobs  # also refuses, before running anything, mixed durations
               if finished_results(job.directory(root),
                                   derive_scenario(bench, job.cell).spec.duration_s) is None]
    print(f"{len(jobs)} runs planned, {len(jobs) - len(pending)} already on disk in {root}",
          file=stream, flush=True)
    progress = Progress(jobs, pending, stream)
    rows: dict[Job, BenchRow] = {}
    interrupted = False
    try:
        with sigterm_as_interrupt():
            for index, job in enumerate(jobs):
                started = time.monotonic()
                row, ran = run_job(bench, job, root, runners)
                rows[job] = row
                progress.done(index, job, row, ran, time.monotonic() - started)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: {len(rows)} of {len(jobs)} runs kept; rerun the same command to "
              "continue", file=stream, flush=True)
    text = write_tables(bench, rows, root, {**settings, "runs_finished": len(rows),
                                            "runs_planned": len(jobs),
                                            "interrupted": interrupted})
    print(text, file=stream)
    print(f"wrote {root / 'sim-vs-emulation.md'} and {root / 'sim-vs-emulation.json'}",
          file=stream, flush=True)
    return {"interrupted": interrupted, "rows": rows, "table": compare_all(bench, rows)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per cell (default 10)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per run on both backends (default: each scenario's own)")
    parser.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS),
                        help="scenario files or names under scenarios/")
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES))
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "sim-vs-emulation")
    args = parser.parse_args(argv)
    try:
        outcome = run(resolve_scenarios(args.scenarios), args.profiles, args.seeds,
                      args.duration, args.out)
    except TestbedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 130 if outcome["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
