"""Robustness leaderboard of issue 13: detector sets x the worm-profile ladder.

Every classic detector alone (with automatic quarantine), the ensembles below and no detector,
against every registered worm profile at its defaults (discovered from the brain's
PROFILE_PARAMETERS, so new profiles join by themselves), on the sim backend with --seeds seeds
(default 30), then confirmed on netns with --confirm-seeds seeds (default 3) for the cells that
matter: each classic detector against the profile that evades it, and each defence that holds
against every profile. Cells run through testbed.experiments (local engine with a per-cell
watchdog, or --engine ray), so a rerun with the same --out resumes.

Per cell: recall = the share of outbreaks that were detected (a true alert), where an outbreak
is a run in which the worm spread beyond patient zero (a worm that never spreads has nothing to
detect: its recall reads "no spread"); the share of runs contained; median hosts infected; and
benign hosts quarantined as a share of the hosts that were never infected (mean over the runs).
A profile evades a detector when it spread in at least 20 % of the runs and recall <= 0.2; a
defence holds when, against every profile, recall >= 0.9 (or the worm never spread) and at most
1 % of benign hosts were quarantined.

    python benchmarks/leaderboard.py                          # 30 sim seeds, 3 netns seeds
    python benchmarks/leaderboard.py --confirm-seeds 0        # sim only
    python benchmarks/leaderboard.py --out runs/leaderboard   # (the default) rerun to resume

Writes OUT/leaderboard.md and OUT/leaderboard.json. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.bench import BenchRow, BenchSpec, LoadedBench  # noqa: E402 -- after sys.path
from testbed.detection import load_scenario  # noqa: E402
from testbed.experiments import bench_matrix, make_engine, run_experiment  # noqa: E402
from testbed.experiments.progress import ProgressBar  # noqa: E402
from testbed.model.load_scenario import Scenario  # noqa: E402
from testbed.redteam.evaluate import WatchdogEngine  # noqa: E402

EVADES = 0.2  # recall at or below: the profile evades the detector
HOLDS_RECALL, HOLDS_BENIGN = 0.9, 0.01
PACKET_READERS = {"suricata"}  # the sim models connection events only

# Defences beyond one classic detector each. "ensemble": the classic scan detectors that never
# quarantined a benign host here (throttle does: its queue fills with benign bursts), with the
# topology's decoys; plug-in detectors beyond the built-ins each get a set alone and one with
# the ensemble.
ENSEMBLE = ["trw", "fanout", "cbcrl", "darknet"]
MIN_SPREAD = 0.2  # a profile evades only if it spread in at least this share of the runs


def detector_sets(classic: list[str], extra: list[str]) -> dict[str, list[str]]:
    sets = {name: [name] for name in classic}
    sets["ensemble"] = [name for name in ENSEMBLE if name in classic]
    for name in extra:
        sets[name] = [name]
        sets[f"ensemble+{name}"] = sets["ensemble"] + [name]
    sets["none"] = []
    return sets


def base_scenario(path: Path, duration: float) -> Scenario:
    """The scenario with its worm at profile defaults (a profile's cap must not be exceeded by
    another profile's rate) and the bench's duration."""
    scenario = load_scenario(path)
    worm = scenario.spec.worm.model_copy(update={"params": {}, "rate": None})
    return dataclasses.replace(scenario, spec=scenario.spec.model_copy(
        update={"worm": worm, "duration_s": duration}))


def run_matrix(scenario: Scenario, sets: dict[str, list[str]], profiles: list[str],
               seeds: list[int], backend: str, out: Path, args: argparse.Namespace
               ) -> list[BenchRow]:
    spec = BenchSpec(name=f"leaderboard-{backend}", scenarios=[str(scenario.path)],
                     detector_sets={k: [{"name": d} for d in v] for k, v in sets.items()},
                     profiles=profiles, seeds=seeds, backend=backend,
                     duration_s=scenario.spec.duration_s, baseline="none")
    matrix = bench_matrix(LoadedBench(spec, scenario.path, {scenario.name: scenario}))
    engine = (WatchdogEngine(args.cell_timeout) if args.engine == "local"
              else make_engine(args.engine))
    progress = ProgressBar(len(matrix.jobs), stream=sys.stderr, label=f"{backend} ")
    with engine:
        outcome = run_experiment(matrix, out, engine, progress=progress)
    if outcome.failed:
        print(f"{len(outcome.failed)} {backend} cell(s) failed (rerun to retry them): "
              f"{next(iter(outcome.failed.items()))}", file=sys.stderr)
    return outcome.rows


def summarise(rows: list[BenchRow], hosts: int) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[BenchRow]] = {}
    for row in rows:
        groups.setdefault((row.detector_set, row.profile), []).append(row)
    cells = {}
    for key, members in groups.items():
        benign = [m.benign_hosts_quarantined / max(1, hosts - m.infected_total) for m in members]
        spread = [m for m in members if m.infected_total > 1]
        cells[key] = {
            "runs": len(members), "spread": len(spread),
            "recall": (sum(m.time_to_first_detection_s is not None for m in spread)
                       / len(spread)) if spread else None,
            "contained": sum(m.contained for m in members) / len(members),
            "infected_median": statistics.median(m.infected_total for m in members),
            "host_recall_median": (statistics.median(r for r in (m.recall for m in members)
                                                     if r is not None)
                                   if any(m.recall is not None for m in members) else None),
            "benign_quarantined_share": statistics.fmean(benign),
            "benign_quarantined_mean": statistics.fmean(m.benign_hosts_quarantined
                                                        for m in members)}
    return cells


def verdicts(cells: dict[tuple[str, str], dict[str, Any]], sets: dict[str, list[str]],
             classic: list[str], profiles: list[str]) -> dict[str, Any]:
    evaders = {}
    for detector in classic:
        found = [p for p in profiles if (detector, p) in cells
                 and cells[(detector, p)]["spread"] >= MIN_SPREAD * cells[(detector, p)]["runs"]
                 and cells[(detector, p)]["recall"] is not None
                 and cells[(detector, p)]["recall"] <= EVADES]
        # the evader that does the most damage first
        evaders[detector] = sorted(found, key=lambda p: -cells[(detector, p)]["infected_median"])
    holding = [name for name in sets if name != "none" and all(
        (name, p) in cells
        and (cells[(name, p)]["recall"] is None or cells[(name, p)]["recall"] >= HOLDS_RECALL)
        and cells[(name, p)]["benign_quarantined_share"] <= HOLDS_BENIGN for p in profiles)]
    return {"evaders": evaders, "holding": holding}


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    recall = "no spread" if cell["recall"] is None else f"{cell['recall']:.2f}"
    return (f"{recall} / {cell['contained']:.2f} / {cell['infected_median']:g} / "
            f"{100 * cell['benign_quarantined_share']:.1f} %")


def markdown(title: str, cells: dict[tuple[str, str], dict[str, Any]], sets: list[str],
             profiles: list[str]) -> list[str]:
    lines = [f"### {title}", "", "Each cell: recall (share of the runs where the worm spread "
             "that were detected) / contained / median infected / benign hosts quarantined "
             "(share of uninfected hosts).", "",
             "| detectors | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
    for name in sets:
        if not any((name, p) in cells for p in profiles):
            continue
        lines.append(f"| `{name}` | " + " | ".join(cell_text(cells.get((name, p)))
                                                  for p in profiles) + " |")
    return [*lines, ""]


def main() -> int:
    from detectors.registry import DETECTORS
    from testbed.agent.brain import PROFILE_PARAMETERS
    from testbed.experiments import can_emulate
    from testbed.model.profiles import profile_catalog

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "smb-flat.yaml")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--confirm-seeds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds per run (default 30)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--cell-timeout", type=float, default=60.0,
                        help="local engine: a sim cell running longer fails (default 60 s)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "leaderboard")
    args = parser.parse_args()

    catalog = profile_catalog()
    profiles = [p for p in PROFILE_PARAMETERS if p in catalog]
    builtin = {"trw", "throttle", "cbcrl", "fanout", "darknet", "signature", "graph"}
    names = [n for n in DETECTORS.names() if n not in PACKET_READERS]
    classic = [n for n in names if n in builtin]
    extra = [n for n in names if n not in builtin]
    sets = detector_sets(classic, extra)
    scenario = base_scenario(args.scenario, args.duration)
    hosts = len(scenario.topology.hosts)
    base_seed = scenario.spec.seed
    sim_rows = run_matrix(scenario, sets, profiles,
                          [base_seed + i for i in range(args.seeds)], "sim",
                          args.out / "sim", args)
    sim_cells = summarise(sim_rows, hosts)
    found = verdicts(sim_cells, sets, classic, profiles)
    confirm: dict[tuple[str, str], dict[str, Any]] = {}
    confirm_note = None
    if args.confirm_seeds and can_emulate():
        chosen = {det: [found["evaders"][det][0]] for det in classic if found["evaders"][det]}
        for name in found["holding"][:1]:
            chosen[name] = profiles
        rows = []
        for name, chosen_profiles in chosen.items():  # only the cells that matter, not a product
            rows += run_matrix(scenario, {name: sets[name]}, chosen_profiles,
                               [base_seed + i for i in range(args.confirm_seeds)], "netns",
                               args.out / "netns" / name, args)
        confirm = summarise(rows, hosts)
    elif args.confirm_seeds:
        confirm_note = "skipped: netns needs root and network namespaces"

    lines = [f"## Robustness leaderboard: {scenario.name}, {args.duration:g} s runs", ""]
    lines += markdown(f"sim, {args.seeds} seeds", sim_cells, list(sets), profiles)
    lines += ["**Evaders** (recall <= 0.2): " + "; ".join(
        f"`{det}`: {', '.join(ps) if ps else 'none'}" for det, ps in found["evaders"].items()),
        "", "**Defences that hold against every profile** (recall >= 0.9, benign quarantined "
        "<= 1 %): " + (", ".join(f"`{h}`" for h in found["holding"]) or "none"), ""]
    if confirm:
        lines += [f"### netns confirmation, {args.confirm_seeds} seeds", "",
                  "| detectors | worm | sim | netns |", "|---|---|---|---|"]
        for (name, profile), cell in confirm.items():
            lines.append(f"| `{name}` | {profile} | {cell_text(sim_cells.get((name, profile)))}"
                         f" | {cell_text(cell)} |")
        lines.append("")
    elif confirm_note:
        lines += [f"netns confirmation {confirm_note}.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "leaderboard.md").write_text("\n".join(lines), encoding="utf-8")
    (args.out / "leaderboard.json").write_text(json.dumps({
        "scenario": scenario.name, "duration_s": args.duration, "seeds": args.seeds,
        "confirm_seeds": args.confirm_seeds, "profiles": profiles, "detector_sets": sets,
        "sim": [{"detector_set": k[0], "profile": k[1], **v} for k, v in sim_cells.items()],
        "netns": [{"detector_set": k[0], "profile": k[1], **v} for k, v in confirm.items()],
        **found}, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"written: {args.out / 'leaderboard.md'} and leaderboard.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
