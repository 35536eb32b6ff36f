"""``testbed redteam``: objectives, the search space, a tiny search end to end (its three files,
the worst-case scenario validating and running), resume, Ctrl-C, and bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from extras_support import require_extra

from testbed.cli.main import main
from testbed.errors import RegistryError

require_extra("optuna")

ROOT = Path(__file__).resolve().parents[2]
SMB_FLAT = ROOT / "scenarios" / "smb-flat.yaml"
# --cell-timeout: a simulated run that would hang fails its trial fast instead of the test
TINY = ["--budget", "2", "--seeds", "1", "--eval-seeds", "2", "--confirm-seeds", "0",
        "--profiles", "classic,hitlist", "--cell-timeout", "5"]


def _summary(**changes: Any) -> Any:
    from testbed.redteam.objectives import RunSummary

    values: dict[str, Any] = dict(seed=1, backend="sim", duration_s=60.0, infected_total=5,
                                  value_weighted_loss=42.0, first_jewel_s=15.0, contained=False,
                                  time_to_first_detection_s=None, benign_hosts_quarantined=0,
                                  infected_hosts=("a", "b"))
    values.update(changes)
    return RunSummary(**values)


# ---- objectives ---------------------------------------------------------------------------

def test_objectives_read_the_right_result() -> None:
    from testbed.redteam import objective_value, trial_score

    run = _summary()
    assert objective_value(run, "infected") == 5.0
    assert objective_value(run, "value") == 42.0
    assert objective_value(run, "jewel-time") == pytest.approx(0.75)  # fell at 15 s of 60
    assert objective_value(_summary(first_jewel_s=None), "jewel-time") == 0.0
    assert trial_score([run, _summary(infected_total=1)], "infected") == 3.0


def test_an_unknown_objective_lists_the_known_ones() -> None:
    from testbed.redteam import objective_value

    with pytest.raises(RegistryError, match="jewel-time"):
        objective_value(_summary(), "speed")


def test_run_summaries_survive_their_json_round_trip() -> None:
    from testbed.redteam.objectives import DetectorSummary, RunSummary

    run = _summary(detectors={"trw": DetectorSummary(2, 3.5, ("a",), ("b",))})
    assert RunSummary.from_dict(json.loads(json.dumps(run.as_dict()))) == run


# ---- the search space ---------------------------------------------------------------------

def test_the_space_is_every_registered_profile_within_its_safe_ranges() -> None:
    from testbed.agent.brain import PROFILE_PARAMETERS
    from testbed.model.profiles import profile_catalog
    from testbed.redteam import discover_space

    space = discover_space()
    assert set(space.profiles) == set(PROFILE_PARAMETERS) & set(profile_catalog())
    for profile in space.profiles:
        for parameter in space.ranges[profile]:
            rule = PROFILE_PARAMETERS[profile][parameter.name]
            if parameter.choices is None:
                assert parameter.low >= rule.min and parameter.high <= rule.max
            else:
                assert set(parameter.choices) == set(rule.choices)
        rates = [p for p in space.ranges[profile] if p.name == "rate"]
        assert rates and rates[0].log  # probes per second span orders of magnitude


def test_suggested_worms_stay_inside_the_agents_ranges() -> None:
    import optuna

    from testbed.agent.brain import resolve_params
    from testbed.redteam import discover_space

    space = discover_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        worm = space.suggest(study.ask())
        resolve_params(worm.profile, worm.params_dict)  # raises if outside
    assert space.worm_from_trial_params(space.trial_params(worm)) == worm


def test_a_worm_beyond_the_rate_cap_is_refused() -> None:
    from testbed.redteam import WormChoice, discover_space
    from testbed.redteam.space import SearchSpaceError

    with pytest.raises(SearchSpaceError, match="outside"):
        discover_space().check(WormChoice.of("stealth", {"rate": 5.0}))
    with pytest.raises(SearchSpaceError, match="unknown worm profile"):
        discover_space(["no-such-worm"])


def test_trw_threshold_is_the_fourth_failure_with_the_papers_defaults() -> None:
    from testbed.detection import load_scenario
    from testbed.redteam.evidence import detector_thresholds

    thresholds = detector_thresholds(load_scenario(SMB_FLAT))
    assert thresholds["trw"]["threshold"]["failed_first_contacts"] == 4
    assert thresholds["fanout"]["threshold"]["failed_hosts_one_port"] == 25


# ---- end to end ---------------------------------------------------------------------------

def test_a_tiny_search_writes_its_three_files(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rt"
    assert main(["redteam", str(SMB_FLAT), *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "worst-case worm" in printed
    for name in ("worst-case.scenario.yaml", "redteam.json", "redteam.html"):
        assert (out / name).is_file(), name
    data = json.loads((out / "redteam.json").read_text())
    assert data["complete"] and data["search"]["completed"] == 2
    assert [t["worm"]["profile"] for t in data["search"]["trials"]] == ["classic", "hitlist"]
    evaluation = data["evaluation"]
    assert set(evaluation["worms"]) == {"best", "builtin-classic", "builtin-hitlist",
                                        "scenario-worm"}
    assert len(evaluation["worms"]["best"]["infected"]) == 2
    assert {e["detector"] for e in data["evidence"]} == {"trw", "fanout"}
    assert data["confirmation"]["skipped"] == "--confirm-seeds 0"
    html = (out / "redteam.html").read_text()
    assert "<svg" in html and "Why each detector missed it" in html and "<script" not in html
    # the search's run directories are dropped once a trial is scored; the evaluation's stay
    assert not any((out / "search").rglob("results.json"))
    assert any((out / "evaluation").rglob("results.json"))


def test_the_worst_case_scenario_validates_and_runs_as_is(tmp_path: Path) -> None:
    from testbed.detection import load_scenario

    out = tmp_path / "rt"
    assert main(["redteam", str(SMB_FLAT), *TINY, "--out", str(out)]) == 0
    path = out / "worst-case.scenario.yaml"
    worst = load_scenario(path)
    data = json.loads((out / "redteam.json").read_text())
    assert worst.spec.worm.profile == data["best"]["worm"]["profile"]
    assert worst.spec.detectors == load_scenario(SMB_FLAT).spec.detectors
    assert main(["validate", "-q", str(path)]) == 0
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--backend", "sim", "--no-live", "--out",
                 str(run_dir)]) == 0
    assert (run_dir / "results.json").is_file()


def test_a_rerun_resumes_the_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rt"
    assert main(["redteam", str(SMB_FLAT), *TINY, "--out", str(out)]) == 0
    first = json.loads((out / "redteam.json").read_text())["search"]["trials"]
    capsys.readouterr()
    more = [arg if arg != "2" or i != 1 else "3" for i, arg in enumerate(TINY)]
    assert main(["redteam", str(SMB_FLAT), *more, "--out", str(out)]) == 0
    assert "resuming: 2 of 3 trials" in capsys.readouterr().err
    trials = json.loads((out / "redteam.json").read_text())["search"]["trials"]
    completed = [trial for trial in trials if trial["state"] == "COMPLETE"]
    assert len(completed) == 3 and completed[:2] == first  # the first two were not run again


def test_a_directory_of_another_search_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rt"
    assert main(["redteam", str(SMB_FLAT), *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["redteam", str(SMB_FLAT), *TINY, "--objective", "value",
                 "--out", str(out)]) == 1
    assert "choose another --out" in capsys.readouterr().err


def test_ctrl_c_keeps_what_finished_and_the_rerun_completes(tmp_path: Path) -> None:
    from testbed.experiments import LocalEngine, execute_cell
    from testbed.redteam import RedTeamConfig, RedTeamInterrupted, run_redteam

    class InterruptedAfter(LocalEngine):
        def __init__(self, cells: int) -> None:
            self.cells = cells

        def run(self, source: Any, jobs: Any, out_root: Path, on_outcome: Any) -> None:
            for job in jobs:
                if self.cells == 0:
                    raise KeyboardInterrupt
                self.cells -= 1
                on_outcome(execute_cell(source, job, str(out_root)))

    # budget 2: the two built-in profiles, no sampled trial; cut in the second one's seeds
    config = RedTeamConfig(SMB_FLAT, tmp_path / "rt", budget=2, seeds=2, eval_seeds=1,
                           confirm_seeds=0, profiles=("classic", "hitlist"))
    with pytest.raises(RedTeamInterrupted) as caught:
        run_redteam(config, engine_factory=lambda: InterruptedAfter(3))
    partial = json.loads((config.out / "redteam.json").read_text())
    assert partial["interrupted"] and partial["search"]["completed"] == 1
    assert caught.value.outcome is not None
    outcome = run_redteam(config, engine_factory=lambda: InterruptedAfter(1000))
    trials = outcome.data["search"]["trials"]
    assert outcome.data["complete"] and outcome.data["search"]["completed"] == 2
    cut = [t for t in trials if t["state"] == "FAIL"]
    assert len(cut) == 1 and cut[0]["worm"]["profile"] == "hitlist"
    assert sum(1 for t in trials if t["state"] == "COMPLETE"
               and t["worm"] == cut[0]["worm"]) == 1  # re-run with the same parameters


def test_a_hung_cell_fails_instead_of_stalling(tmp_path: Path) -> None:
    from testbed.bench import BenchCell
    from testbed.experiments import CellJob
    from testbed.redteam.evaluate import WatchdogEngine

    class Hangs:
        def scenario(self, cell: BenchCell) -> Any:
            time.sleep(30)
            raise AssertionError("the watchdog did not fire")

    outcomes: list[Any] = []
    job = CellJob(0, BenchCell("s", SMB_FLAT, "own", "w", 1), "sim")
    with WatchdogEngine(0.2) as engine:
        engine.run(Hangs(), [job], tmp_path, outcomes.append)
    assert outcomes[0].error is not None and "still ran after 0.2 s" in outcomes[0].error


@pytest.mark.parametrize(("extra", "status", "message"), [
    (["--objective", "speed"], 2, "unknown objective 'speed'; known: infected, jewel-time, "
                                  "value"),
    (["--budget", "0"], 1, "--budget must be at least 1"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    extra: list[str], status: int, message: str) -> None:
    assert main(["redteam", str(SMB_FLAT), "--out", str(tmp_path / "rt"), *extra]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "rt").exists()


def test_a_packet_reading_detector_on_sim_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SMB_FLAT.read_text().replace("  - name: fanout\n", "  - name: suricata\n").replace(
        "on: [trw, fanout]", "on: [trw, suricata]").replace(
        "../topologies/smb-flat.yaml", str(ROOT / "topologies" / "smb-flat.yaml"))
    scenario = tmp_path / "with-suricata.yaml"
    scenario.write_text(text)
    assert main(["redteam", str(scenario), "--out", str(tmp_path / "rt")]) == 1
    err = capsys.readouterr().err
    assert "'suricata' reads real packets" in err and "Traceback" not in err
