"""`testbed redteam SCENARIO`: search for the worst-case worm against the scenario's defence,
compare it with the built-in profiles on held-out seeds, confirm it on netns, and write
worst-case.scenario.yaml, redteam.json and redteam.html. Resumable: rerun the same command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "redteam"
HELP = "Search for the worst-case worm against a scenario's defence (Optuna)"


def configure(parser: argparse.ArgumentParser) -> None:
    from testbed.cli.experiment_runner import add_engine_options

    parser.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    parser.add_argument("--backend", default="sim",
                        help="backend of the search (default sim: thousands of runs are cheap)")
    parser.add_argument("--budget", type=int, default=40, metavar="N",
                        help="trials (worms tried) in total; a resumed search continues to N "
                             "(default 40)")
    parser.add_argument("--objective", default="infected",
                        help="what the worm maximises: infected (hosts), value (value lost) "
                             "or jewel-time (how early a crown jewel falls); default infected")
    parser.add_argument("--seeds", type=int, default=5, metavar="K",
                        help="seeds each trial is averaged over (default 5)")
    parser.add_argument("--eval-seeds", type=int, default=10, metavar="K",
                        help="held-out seeds the best worm and the built-in profiles are "
                             "compared on (default 10)")
    parser.add_argument("--confirm-seeds", type=int, default=3, metavar="M",
                        help="seeds of the confirmation on --confirm-backend (default 3; 0 "
                             "skips it)")
    parser.add_argument("--confirm-backend", default="netns",
                        help="emulation backend of the confirmation (default netns)")
    parser.add_argument("--profiles", metavar="P,Q",
                        help="search only these profiles (default: every registered one)")
    parser.add_argument("--sampler-seed", type=int, default=0, metavar="S",
                        help="seed of the optimiser (default 0)")
    parser.add_argument("--cell-timeout", type=float, default=120.0, metavar="S",
                        help="local engine: a simulated run still going after S wall seconds "
                             "fails its trial instead of stalling the search (default 120; 0: "
                             "no limit)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default runs/redteam-<scenario>-<objective>/; "
                             "rerun with the same one to resume)")
    add_engine_options(parser)


def run(args: argparse.Namespace) -> int:
    from testbed.redteam import RedTeamConfig, RedTeamInterrupted, run_redteam
    from testbed.redteam.search import BEST

    scenario_path = Path(args.scenario)
    out = args.out or Path("runs") / f"redteam-{scenario_path.stem}-{args.objective}"
    config = RedTeamConfig(
        scenario_path=scenario_path, out=out, backend=args.backend, budget=args.budget,
        objective=args.objective, seeds=args.seeds, eval_seeds=args.eval_seeds,
        confirm_seeds=args.confirm_seeds, confirm_backend=args.confirm_backend,
        engine=args.engine, ray_address=args.ray_address,
        profiles=tuple(p for p in args.profiles.split(",") if p) if args.profiles else None,
        sampler_seed=args.sampler_seed, cell_timeout_s=args.cell_timeout or None)
    try:
        outcome = run_redteam(config)
    except RedTeamInterrupted as interrupted:
        sys.stderr.write(f"\n{interrupted}\n")
        return 130
    data = outcome.data
    evaluation = data["evaluation"]
    worms = evaluation["worms"]
    builtin = evaluation["best_builtin"]
    print(f"worst-case worm   {data['best']['worm']['text']}")
    print(f"infected (median over {len(evaluation['seeds'])} held-out {data['backend']} seeds): "
          f"{worms[BEST]['infected_median']:g} vs {worms[builtin]['infected_median']:g} for "
          f"the best built-in profile ({builtin.removeprefix('builtin-')})"
          + (f": {evaluation['infected_median_ratio']:.2f}x"
             if evaluation["infected_median_ratio"] else ""))
    if worms[BEST]["score"] < worms[builtin]["score"]:
        print(f"note: on the held-out seeds the built-in {builtin.removeprefix('builtin-')} "
              "did more damage than the search's best: raise --budget or --seeds")
    if not evaluation["twice_reachable"]:
        print(f"note: twice the best built-in's median ({worms[builtin]['infected_median']:g}) "
              f"exceeds the {evaluation['susceptible_total']} susceptible hosts: no worm can "
              "double it here")
    for evidence in data["evidence"]:
        print(f"  {evidence['detector']}: {evidence['verdict']}")
    confirmation = data["confirmation"]
    if confirmation.get("skipped"):
        print(f"confirmation      skipped ({confirmation['skipped']})")
    else:
        for label, row in confirmation["rows"].items():
            print(f"  {label:20s} sim {row['sim_infected']} (median {row['sim_median']:g})  "
                  f"{confirmation['backend']} {row['emulated_infected']} "
                  f"(median {row['emulated_median']:g})")
        print(f"direction agrees  {confirmation['direction_agrees']}")
    for kind, path in outcome.paths.items():
        print(f"{kind:9s} {path}")
    return 0
