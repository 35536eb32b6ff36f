#!/usr/bin/env python3
"""Do the docker and netns backends score the same run the same? The flagship, seed by seed.

Usage (root, a running Docker engine and the testbed image)::

    python benchmarks/backend_parity.py [--scenario scenarios/basement-launchpad.yaml]
                                        [--seeds 1,2,3] [--duration 60] [--json]

Runs ``testbed run --json`` for every seed on both backends (private state and output
directories) and prints the headline metrics side by side with their differences: the outcome
metrics (infected, contained, escape) should be equal; times differ by the backends' latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTCOMES = ("contained", "infected_total", "peak_infected", "value_weighted_loss")
TIMES = ("time_to_first_detection_s", "time_to_containment_s")


def run_once(scenario: Path, backend: str, seed: int, duration: float,
             workdir: Path) -> dict[str, Any]:
    out = workdir / f"{backend}-{seed}"
    env = {**os.environ, "TESTBED_STATE_DIR": str(workdir / "state")}
    completed = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(scenario), "--backend", backend,
         "--seed", str(seed), "--duration", str(duration), "--no-live", "--json",
         "--out", str(out)], env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{backend} seed {seed} failed:\n{completed.stderr[-2000:]}")
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


def row(results: dict[str, Any]) -> dict[str, Any]:
    picked = {key: results.get(key) for key in (*OUTCOMES, *TIMES)}
    picked["escaped"] = results["launch_pad_escape"]["escaped"]
    picked["deploy_s"] = results["run"]["timings_s"]["deploy_s"]
    picked["agents_s"] = results["run"]["timings_s"]["agents_s"]
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios/basement-launchpad.yaml")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/backend_parity.py needs root", file=sys.stderr)
        return 3
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="testbed-parity-") as workdir:
        for seed in seeds:
            pair = {backend: row(run_once(args.scenario, backend, seed, args.duration,
                                          Path(workdir)))
                    for backend in ("netns", "docker")}
            same = all(pair["netns"][key] == pair["docker"][key] for key in (*OUTCOMES,
                                                                               "escaped"))
            gaps = {key: None if None in (pair["netns"][key], pair["docker"][key]) else
                    round(abs(pair["netns"][key] - pair["docker"][key]), 3) for key in TIMES}
            rows.append({"seed": seed, **pair, "outcomes_equal": same, "time_gaps_s": gaps})
            if not args.json:
                n, d = pair["netns"], pair["docker"]
                print(f"seed {seed}: outcomes {'equal' if same else 'DIFFER'}; infected "
                      f"{n['infected_total']}/{d['infected_total']}, contained "
                      f"{n['contained']}/{d['contained']}, escaped {n['escaped']}/{d['escaped']}"
                      f"; detect s {n[TIMES[0]]}/{d[TIMES[0]]}, contain s "
                      f"{n[TIMES[1]]}/{d[TIMES[1]]} (netns/docker); deploy s "
                      f"{n['deploy_s']}/{d['deploy_s']}, agents s {n['agents_s']}/{d['agents_s']}",
                      flush=True)
    if args.json:
        json.dump({"scenario": str(args.scenario), "rows": rows}, sys.stdout, indent=2)
        print()
    else:
        equal = sum(r["outcomes_equal"] for r in rows)
        worst = {key: max((r["time_gaps_s"][key] or 0.0) for r in rows) for key in TIMES}
        print(f"outcomes equal in {equal}/{len(rows)} seeds; largest time gaps: "
              + ", ".join(f"{key} {value} s" for key, value in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
