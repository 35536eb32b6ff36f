"""The simulation backend behind the usual commands: ``backend: sim`` in a scenario, ``--backend
sim`` on ``testbed run`` and ``testbed bench``, the backend registry, and the run directory every
downstream reader expects (``check_run_directory``, the same as every other backend's tier)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.backends import BACKENDS, get_backend
from testbed.backends.sim import SimBackend
from testbed.cli.main import main
from testbed.errors import BackendError
from testbed.model import load_scenario
from testbed.model.load_topology import topology_from_document
from testbed.results import Manifest
from testbed.yamlsource import parse_yaml_text

REPO = Path(__file__).resolve().parents[2]
SMB_FLAT = REPO / "scenarios" / "smb-flat.yaml"


def sim_scenario(tmp_path: Path, *, duration_s: int) -> Path:
    """smb-flat with ``backend: sim`` and another duration, its topology named absolutely."""
    text = SMB_FLAT.read_text(encoding="utf-8")
    text = text.replace("topology: ../topologies/smb-flat.yaml",
                        f"topology: {REPO / 'topologies' / 'smb-flat.yaml'}\nbackend: sim")
    text = text.replace("duration_s: 60", f"duration_s: {duration_s}")
    assert "backend: sim" in text and f"duration_s: {duration_s}" in text
    path = tmp_path / "smb-flat-sim.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_knows_sim_and_declares_it_simulated() -> None:
    assert {"netns", "docker", "sim"} <= set(BACKENDS.names())
    assert get_backend("sim").simulated is True
    assert get_backend("netns").simulated is False
    assert get_backend("docker").simulated is False


def test_sim_backend_deploys_nothing_and_says_what_to_use() -> None:
    backend = SimBackend()
    topology = topology_from_document(parse_yaml_text(
        "name: t\nsegments: {lan: {cidr: 10.0.0.0/24}}\nhosts: {a: {segment: lan}}\n", "t"))
    with pytest.raises(BackendError, match="--backend sim"):
        backend.deploy(topology, "t-run")
    with pytest.raises(BackendError, match="deploys no network"):
        backend.attach("t-run")
    assert backend.runs() == []


def test_run_backend_sim_writes_a_checked_run_directory_and_the_headline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        check_run_directory: Callable[[Path], dict[str, object]]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SMB_FLAT), "--backend", "sim", "--out", str(out), "--no-live"]) == 0
    stdout = capsys.readouterr().out
    assert "grade " in stdout and "time to first detection" in stdout
    assert f"results                  {out / 'results.json'}" in stdout
    for name in ("manifest.json", "events.jsonl", "alerts.jsonl", "actions.jsonl",
                 "results.json", "report.html"):
        assert (out / name).is_file(), name
    results = check_run_directory(out)
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text("utf-8"))
    assert (manifest.backend, manifest.clock) == ("sim", "virtual")
    assert manifest.wall_duration_s is not None and manifest.wall_duration_s > 0
    run = results["run"]
    assert isinstance(run, dict) and run["backend"] == "sim"


def test_run_backend_sim_json_prints_results(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SMB_FLAT), "--backend", "sim", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"]["backend"] == "sim"
    assert printed == json.loads((out / "results.json").read_text("utf-8"))


def test_scenario_with_backend_sim_validates_and_runs_simulated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sim_scenario(tmp_path, duration_s=20)
    assert load_scenario(path).spec.backend == "sim"
    assert main(["validate", str(path)]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["backend"] == "sim"


def test_repetitions_on_sim_each_get_a_seed_directory(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    assert main(["run", str(SMB_FLAT), "--backend", "sim", "--out", str(out),
                 "--repetitions", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["run"]["seed"] for r in payload["runs"]] == [7, 8]
    assert (out / "seed-7" / "results.json").is_file()
    assert (out / "seed-8" / "results.json").is_file()


def test_unknown_backend_gets_did_you_mean(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SMB_FLAT), "--backend", "simm", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'simm'" in err and "did you mean 'sim'" in err
    assert not out.exists()


def test_bench_backend_sim_runs_every_cell_simulated(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"name: tiny\nscenarios: [{SMB_FLAT}]\nprofiles: [classic, adaptive]\n"
                     "seeds: 1\nduration_s: 15\n", encoding="utf-8")
    out = tmp_path / "bench"
    assert main(["bench", str(bench), "--backend", "sim", "--out", str(out), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)["leaderboard"]
    assert sorted(entry["profile"] for entry in board) == ["adaptive", "classic"]
    manifests = sorted(out.glob("runs/**/manifest.json"))
    assert len(manifests) == 2
    assert all(json.loads(m.read_text("utf-8"))["backend"] == "sim" for m in manifests)


def test_bench_unknown_backend_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"name: tiny\nscenarios: [{SMB_FLAT}]\nseeds: 1\n", encoding="utf-8")
    assert main(["bench", str(bench), "--backend", "nets", "--out", str(tmp_path / "b")]) == 2
    assert "did you mean 'netns'" in capsys.readouterr().err
