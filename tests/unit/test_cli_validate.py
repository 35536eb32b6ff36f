"""`testbed validate` and `testbed schema` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.cli.main import main
from testbed.schema import SCHEMA_KINDS, generate_schema

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "topologies" / "smb-flat.yaml"
GOOD_SCENARIO = REPO / "scenarios" / "smb-flat.yaml"
BAD = REPO / "tests" / "data" / "bad"


def test_valid_files_print_a_summary_and_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(GOOD), str(GOOD_SCENARIO)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"{GOOD}: ok: topology 'smb-flat': 4 segments, 28 hosts, 1 router\n" in out
    assert f"{GOOD_SCENARIO}: ok: scenario 'smb-flat' on 'smb-flat' (28 hosts)" in out


def test_quiet_prints_nothing_for_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-q", str(GOOD)]) == 0
    assert capsys.readouterr() == ("", "")


def test_one_bad_file_among_good_ones_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    bad = BAD / "t-three-errors.yaml"
    assert main(["validate", str(GOOD), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "smb-flat.yaml: ok" in out
    assert err.count(f"{bad}:") == 3
    assert err.rstrip().endswith("3 errors in 1 of 2 files")


def test_json_output_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    bad = BAD / "t-unknown-trust.yaml"
    assert main(["validate", "--json", str(GOOD), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    reports = json.loads(out)
    assert [r["ok"] for r in reports] == [True, False]
    assert reports[0]["kind"] == "topology" and reports[0]["errors"] == []
    first = reports[1]["errors"][0]
    assert first == {"file": str(bad), "line": 11, "column": 14,
                     "path": "hosts.admin.trusts[0]",
                     "message": "unknown host or group 'fileservr'",
                     "hint": "did you mean 'fileserver'?"}
    assert len(reports[1]["errors"]) == 2


def test_json_output_for_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(GOOD_SCENARIO)]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["kind"] == "scenario" and report["ok"] and "smb-flat" in report["summary"]


def test_file_kinds_are_recognised_by_content(capsys: pytest.CaptureFixture[str]) -> None:
    profile = REPO / "testbed" / "agent" / "profiles" / "classic.yaml"
    scenario_without_worm = BAD / "s-missing-worm.yaml"
    main(["validate", "--json", str(profile), str(GOOD), str(GOOD_SCENARIO),
          str(scenario_without_worm)])
    kinds = [r["kind"] for r in json.loads(capsys.readouterr().out)]
    assert kinds == ["profile", "topology", "scenario", "scenario"]


def test_a_file_that_cannot_be_read_has_kind_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    main(["validate", "--json", str(BAD / "y-binary.yaml")])
    [report] = json.loads(capsys.readouterr().out)
    assert report["kind"] == "unknown" and not report["ok"]
    assert report["errors"][0]["line"] == 0


def test_missing_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    assert "PATH" in capsys.readouterr().err


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_command_prints_each_schema(kind: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    assert json.loads(capsys.readouterr().out) == generate_schema(kind)


def test_schema_command_refuses_unknown_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schema", "topologyy"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_installed_command_prints_valid_json() -> None:
    result = subprocess.run([sys.executable, "-m", "testbed", "schema", "topology"],
                            capture_output=True, text=True, timeout=120, check=True)
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/draft/2020-12")
    assert "segments" in schema["required"]
