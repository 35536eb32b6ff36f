"""Sim to real: a trained policy file as the responder of full runs on the sim and netns backends,
seed by seed, with the grade score of each run side by side (issue 14).

For every seed it writes a copy of the scenario whose ``response`` is ``{policy: FILE}`` (no
rules; with ``--patient-zero HOST`` the worm starts there instead), runs ``testbed run`` on each
backend with that seed, and reads ``results.json``: grade score, hosts infected, contained, and
the actions the policy took. ``--rules`` adds the scenario's own rule-based responder as the
reference, on the same seeds and backends. netns needs root.

    sudo python benchmarks/policy_transfer.py runs/policies/smb-flat-ppo-alerts.npz \
        [--scenario scenarios/smb-flat.yaml] [--seeds 1-5] [--backends sim,netns]
        [--patient-zero HOST] [--rules] [--out runs/policy-transfer]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``on`` (a response rule's key) stays a string."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def scenario_copy(source: Path, directory: Path, *, policy: Path | None,
                  patient_zero: str | None) -> Path:
    """The scenario with its topology path made absolute and its response replaced."""
    document = yaml.load(source.read_text(encoding="utf-8"), Loader=_Yaml12Loader)
    document["topology"] = str((source.parent / document["topology"]).resolve())
    if policy is not None:
        document["response"] = {"policy": str(policy.resolve())}
    if patient_zero is not None:
        document["worm"]["patient_zero"] = patient_zero
    label = "policy" if policy is not None else "rules"
    path = directory / f"{source.stem}-{label}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run(scenario: Path, backend: str, seed: int, out: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(scenario), "--backend", backend,
         "--seed", str(seed), "--repetitions", "1", "--no-live", "--json", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if completed.returncode != 0:
        raise SystemExit(f"{backend} seed {seed} failed:\n{completed.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    actions = [json.loads(line) for line in
               (out / "actions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"score": float(results["grade"]["score"]), "infected": results["infected_total"],
            "contained": bool(results["contained"]), "actions": len(actions),
            "acted": sorted({f"{a['action']} {a['target']}" for a in actions})}


def seeds_of(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path)
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "smb-flat.yaml")
    parser.add_argument("--seeds", default="1-5")
    parser.add_argument("--backends", default="sim,netns")
    parser.add_argument("--patient-zero")
    parser.add_argument("--rules", action="store_true",
                        help="also run the scenario's rule-based responder")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "policy-transfer")
    args = parser.parse_args()
    backends = args.backends.split(",")
    responders: dict[str, Path | None] = {"policy": args.policy}
    if args.rules:
        responders["rules"] = None
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="policy-transfer-") as scratch:
        for label, policy in responders.items():
            scenario = scenario_copy(args.scenario, Path(scratch), policy=policy,
                                     patient_zero=args.patient_zero)
            for backend in backends:
                for seed in seeds_of(args.seeds):
                    out = args.out / f"{label}-{backend}-{seed}"
                    found = run(scenario, backend, seed, out)
                    table.setdefault((label, backend), []).append(found)
                    print(f"{label:<6} {backend:<6} seed {seed}: score {found['score']:5.1f}, "
                          f"infected {found['infected']}, contained {found['contained']}, "
                          f"actions {found['actions']} ({'; '.join(found['acted'][:4])})",
                          flush=True)
    print(f"\n{args.scenario.name}, patient zero "
          f"{args.patient_zero or 'as in the scenario'}, seeds {args.seeds}, policy "
          f"{args.policy.name}")
    print(f"{'responder':<8} {'backend':<8} {'scores':<34} {'mean':>6} {'infected':>9} "
          f"{'contained':>10}")
    for (label, backend), rows in table.items():
        scores = [r["score"] for r in rows]
        print(f"{label:<8} {backend:<8} {', '.join(f'{s:.1f}' for s in scores):<34} "
              f"{statistics.mean(scores):>6.1f} "
              f"{statistics.mean(r['infected'] for r in rows):>9.1f} "
              f"{sum(r['contained'] for r in rows):>5}/{len(rows)}")


if __name__ == "__main__":
    main()
