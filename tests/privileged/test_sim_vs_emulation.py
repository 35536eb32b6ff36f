"""The sim-vs-emulation validation (benchmarks/sim_vs_emulation.py), reduced to fit `make test`:
smb-flat with the classic worm, 3 seeds, 20 s per run, on netns and on sim (about a minute: the
classic worm is caught within a couple of seconds and the run stops once contained).

Checks that the benchmark produces a verdict and a TOST p-value for every metric, that the sim
agrees with the emulator on the outcome (hosts lost, contained or not: margins of the benchmark),
that a rerun reuses every finished run instead of running it again, and that the netns runs
leave no namespace, link or nftables table behind. Also pins the two tests on hand-computed
cases. Nothing here asserts on timing.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SEEDS = 3
DURATION_S = 20.0


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sim_vs_emulation",
                                                  REPO / "benchmarks" / "sim_vs_emulation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validation() -> ModuleType:
    return load_benchmark()


def test_paired_tost_matches_a_hand_computed_case(validation: ModuleType) -> None:
    # d = sim - netns = [1, -1, 1, -1]: mean 0, sd 2/sqrt(3), se 1/sqrt(3), df 3.
    # Upper one-sided p = P(T3 <= (0 - 1) * sqrt(3)) = P(T3 <= -1.732) = 0.0908 (tables).
    result = validation.paired_tost("x", "hosts", [0.0, 2.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0], 1.0)
    assert result.pairs == 4 and result.difference == 0.0
    assert math.isclose(result.p_value, 0.0908, abs_tol=5e-4)
    assert result.verdict == validation.INCONCLUSIVE
    shifted = validation.paired_tost("x", "hosts", [0.0] * 4, [3.0] * 4, 1.0)
    assert (shifted.p_value, shifted.verdict) == (1.0, validation.DIFFERENT)


def test_matched_proportions_tost_matches_a_hand_computed_case(validation: ModuleType) -> None:
    # 10 agreeing pairs: Agresti-Min gives n = 12, b = c = 0.5, difference 0, se = 1/12;
    # p = P(Z <= -0.15 * 12) = P(Z <= -1.8) = 0.0359.
    agree = validation.matched_proportion_tost("x", [True] * 10, [True] * 10)
    assert math.isclose(agree.p_value, 0.0359, abs_tol=5e-4)
    assert agree.verdict == validation.EQUIVALENT
    opposite = validation.matched_proportion_tost("x", [True] * 10, [False] * 10)
    assert opposite.difference == -1.0 and opposite.verdict == validation.DIFFERENT


def test_reduced_sim_vs_emulation(validation: ModuleType, tmp_path: Path, state_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  leftovers: Callable[[str], dict[str, list[str]]]) -> None:
    from testbed.backends.fabric import lifecycle

    prefixes: list[str] = []  # every deployment's prefix: its namespaces and links carry it
    original_prefix = lifecycle.unique_prefix

    def recorded_prefix() -> str:
        prefixes.append(original_prefix())
        return prefixes[-1]

    monkeypatch.setattr(lifecycle, "unique_prefix", recorded_prefix)
    scenario = REPO / "scenarios" / "smb-flat.yaml"
    out = tmp_path / "sim-vs-emulation"
    printed = io.StringIO()
    outcome: dict[str, Any] = validation.run([scenario], ["classic"], SEEDS, DURATION_S, out,
                                            stream=printed)
    assert not outcome["interrupted"]
    assert len(outcome["rows"]) == 2 * SEEDS
    assert printed.getvalue().startswith("margins (fixed in advance)")  # before any run

    cell = outcome["table"]["smb-flat"]["classic"]
    assert cell["seeds"] == SEEDS
    comparisons = {c["metric"]: c for c in cell["comparisons"]}
    assert set(comparisons) == {"infected total", "detected", "time to first detection (s)",
                                "contained", "time to containment (s)", "crown jewel lost"}
    for comparison in comparisons.values():
        assert comparison["verdict"] in {validation.EQUIVALENT, validation.DIFFERENT,
                                         validation.INCONCLUSIVE, validation.NO_DATA}
        if comparison["verdict"] != validation.NO_DATA:
            assert 0.0 <= comparison["p_value"] <= 1.0
    # The outcome, not its timing: same hosts lost and same containment, seed by seed.
    assert comparisons["infected total"]["verdict"] == validation.EQUIVALENT
    for metric in ("contained", "crown jewel lost"):
        assert comparisons[metric]["verdict"] != validation.DIFFERENT, comparisons[metric]

    assert (out / "sim-vs-emulation.md").read_text().count("| classic |") == 6
    saved = json.loads((out / "sim-vs-emulation.json").read_text())
    assert len(saved["runs"]) == 2 * SEEDS

    def must_not_run(*_args: Any) -> Any:
        raise AssertionError("a finished run was run again")

    rerun = validation.run([scenario], ["classic"], SEEDS, DURATION_S, out,
                          runners={"netns": must_not_run, "sim": must_not_run},
                          stream=io.StringIO())
    assert rerun["table"] == outcome["table"]

    assert len(prefixes) == SEEDS  # one deployment per netns run, none on the rerun
    for prefix in prefixes:
        assert leftovers(prefix) == {"namespaces": [], "root_links": [], "root_tables": []}
    assert list(state_dir.iterdir()) == []  # the runner removed its state
