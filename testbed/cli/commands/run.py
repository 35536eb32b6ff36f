"""`testbed run SCENARIO`: run a scenario end to end, score the containment, write the report.

Prints the headline metrics and the report's path at the end (``--json``: results.json on
stdout). Exit status 0 when the run completed (whatever its grade), 130 after Ctrl-C (cleaned up,
partial results written).

``--ui`` also serves the dashboard (``testbed ui``) of the run while it goes, in this process,
and keeps serving it after the run for the debrief until Ctrl-C. With the sim backend, ``--ui``
plays the simulation against the wall clock (x1; x10 or paused from the page,
``testbed.sim.paced``) so that a person can defend it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.backends import BACKENDS
from testbed.cli.commands.ui import add_server_options, start_dashboard
from testbed.detection import load_scenario

if TYPE_CHECKING:
    from testbed.model.load_scenario import Scenario
    from testbed.runner.run import RunResult

NAME = "run"
HELP = "Run a scenario end to end and score the containment"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    parser.add_argument("--backend", help=f"{', '.join(BACKENDS.names())} (default: the "
                                          "scenario's; sim: simulated in virtual time)")
    parser.add_argument("--seed", type=int, help="seed of the first run (default: the scenario's)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run directory (default runs/<scenario>-<timestamp>/)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="time limit in seconds (default: the scenario's duration_s)")
    parser.add_argument("--repetitions", type=int, metavar="N",
                        help="runs with seeds seed, seed+1, ... (default: the scenario's)")
    parser.add_argument("--no-live", action="store_true",
                        help="plain progress lines instead of the live view (CI, logs)")
    parser.add_argument("--json", action="store_true", help="print results.json on stdout")
    parser.add_argument("--ui", action="store_true",
                        help="serve the live dashboard of this run (see `testbed ui`)")
    add_server_options(parser, prefix="ui-")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    if args.duration is not None and args.duration <= 0:
        sys.stderr.write("testbed run: error: --duration must be positive\n")
        return 2
    if args.repetitions is not None and args.repetitions < 1:
        sys.stderr.write("testbed run: error: --repetitions must be at least 1\n")
        return 2
    if not args.ui:
        return _run_and_print(args, scenario)
    from testbed.runner import default_out_dir

    out_dir = args.out if args.out is not None else default_out_dir(scenario)
    repeated = (args.repetitions or scenario.spec.repetitions) > 1
    paced = BACKENDS.get(args.backend or scenario.spec.backend).simulated
    if paced and repeated:
        sys.stderr.write("testbed run: error: --ui plays one simulated run at human pace: "
                         "drop --repetitions (or set repetitions: 1)\n")
        return 2
    # One run: served among its siblings, addressed by its directory's name. Repetitions: the
    # folder holding their seed-N directories.
    runs_dir, path = (out_dir, "/") if repeated else (out_dir.parent, f"/runs/{out_dir.name}")
    runs_dir.mkdir(parents=True, exist_ok=True)
    server = start_dashboard(runs_dir, host=args.ui_host, port=args.ui_port,
                             open_browser=not args.no_browser, path=path,
                             stream=sys.stderr if args.json else sys.stdout)
    try:
        args.out = out_dir
        status = _play_and_print(args, scenario) if paced else _run_and_print(args, scenario)
        print(f"The dashboard stays up for the debrief: {server.url(path)} (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        return status
    finally:
        server.__exit__(None, None, None)


def _play_and_print(args: argparse.Namespace, scenario: Scenario) -> int:
    """A simulated run played at human pace for the dashboard (``testbed.sim.paced``)."""
    from testbed.runner.run import RunResult
    from testbed.sim.paced import simulate_paced

    print(f"playing {scenario.name} in virtual time at x1: play x10 or pause from the page",
          file=sys.stderr, flush=True)
    run = simulate_paced(scenario, args.seed, args.out, args.duration)
    interrupted = run.stop_reason == "interrupted"  # Ctrl-C: scored up to then, as a real run
    status = _print_runs(args, [RunResult(
        run_name=run.run_name, run_dir=run.run_dir, results=run.results, report=run.report,
        interrupted=interrupted, stop_reason=run.stop_reason,
        wall_s=run.wall_s, timings=dict(run.timings))])
    return 130 if interrupted else status


def _run_and_print(args: argparse.Namespace, scenario: Scenario) -> int:
    from testbed.runner import run_repetitions

    runs = run_repetitions(scenario, repetitions=args.repetitions, out_dir=args.out,
                           seed=args.seed, backend=args.backend, duration=args.duration,
                           live=not args.no_live and not args.json)
    return _print_runs(args, runs)


def _print_runs(args: argparse.Namespace, runs: list[RunResult]) -> int:
    from testbed.results import headline, summarize

    if args.json:
        if len(runs) == 1:
            sys.stdout.write(runs[0].results.to_json())
            return 0
        payload = {"runs": [r.results.model_dump(mode="json") for r in runs],
                   "summary": summarize([r.results for r in runs]).model_dump(mode="json")}
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for result in runs:
        if len(runs) > 1:
            print(f"\n== seed {result.results.run.seed}: {result.run_dir}")
        print(headline(result.results, result.report))
        print(f"results                  {result.run_dir / 'results.json'}")
    if len(runs) > 1:
        print("\n== over", len(runs), "runs (median, IQR)")
        for key, value in summarize([r.results for r in runs]):
            if value.median is not None:
                print(f"{key:28s} {value.median:.3g}"
                      + (f"  (IQR {value.iqr:.3g})" if value.iqr is not None else ""))
    return 0
