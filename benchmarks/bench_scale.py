"""Scale figure of issue 12: the 10,000-run sim matrix of scenarios/sweep-scale.yaml (5 detector
sets x 8 worms x 5 generated flat topologies x 50 seeds) on the local engine and on Ray, with
the wall time of each, the speed-up of Ray over local, and whether both give the same
leaderboard (they must: sim cells are pure functions of their inputs and seed).

    python benchmarks/bench_scale.py                   # both engines, 10,000 runs each
    python benchmarks/bench_scale.py --seeds 5         # 1,000 runs each (a quick look)
    python benchmarks/bench_scale.py --engine ray      # one engine only

Prints figures; asserts nothing about time. Run directories go to a temporary directory (or
--out DIR, kept) since 10,000 runs write about 60,000 small files per engine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.experiments import (  # noqa: E402 -- after the path set-up above
    load_sweep,
    make_engine,
    run_experiment,
    sweep_matrix,
)
from testbed.experiments.progress import ProgressBar  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=REPO / "scenarios" / "sweep-scale.yaml")
    parser.add_argument("--seeds", type=int, help="seeds per grid point (default the file's 50)")
    parser.add_argument("--engine", choices=("local", "ray", "both"), default="both")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary "
                                                 "directory, removed)")
    args = parser.parse_args()
    spec, scenario = load_sweep(args.sweep)
    if args.seeds is not None:
        spec = spec.model_copy(update={"seeds": args.seeds})
    matrix = sweep_matrix(spec, scenario, "sim")
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    engines = ["local", "ray"] if args.engine == "both" else [args.engine]
    print(f"matrix: {len(matrix.jobs)} sim runs ({spec.name}: 5 detector sets x 8 worms x "
          f"5 topologies x {len(matrix.jobs) // 200 if len(matrix.jobs) % 200 == 0 else '?'} "
          f"seeds), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    seconds: dict[str, float] = {}
    boards: dict[str, object] = {}
    try:
        for name in engines:
            out = root / name
            if out.exists():
                shutil.rmtree(out)
            engine = make_engine(name)
            started = time.perf_counter()
            with engine:
                ready = time.perf_counter()
                outcome = run_experiment(matrix, out, engine,
                                         progress=ProgressBar(len(matrix.jobs), label=name + " "))
            seconds[name] = time.perf_counter() - started
            boards[name] = json.loads(outcome.paths["json"].read_text())["leaderboard"]
            print(f"{name:5s}: {len(matrix.jobs)} runs in {seconds[name]:.1f} s "
                  f"({len(matrix.jobs) / seconds[name]:.1f} runs/s; engine start-up "
                  f"{ready - started:.1f} s), {len(outcome.failed)} failed")
            for key, error in list(outcome.failed.items())[:3]:
                print(f"  failed {key}: {error}")
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    if len(seconds) == 2:
        print(f"speed-up of ray over local: {seconds['local'] / seconds['ray']:.2f}x; "
              f"same leaderboard: {boards['local'] == boards['ray']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
