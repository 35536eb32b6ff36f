"""The bad-file corpus: every file in tests/data/bad must fail `testbed validate` with exactly the
located diagnostics listed in tests/data/bad/expected.yaml, and never with a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from testbed.cli.main import main
from testbed.yamlsource import MAX_FILE_BYTES

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
EXPECTED: dict[str, list[str]] = yaml.safe_load((BAD / "expected.yaml").read_text("utf-8"))

# "file:line:col: error: ..." or "file: error: ..." (whole-file problems)
DIAGNOSTIC = re.compile(r"^(?P<file>[^\s:][^:]*?)(?::(?P<line>\d+):(?P<column>\d+))?: error: ")


@dataclass(frozen=True)
class Expectation:
    file: str
    line: int  # 0 for a whole-file problem
    column: int
    fragments: tuple[str, ...]

    def matches(self, diagnostic: str) -> bool:
        found = DIAGNOSTIC.match(diagnostic)
        assert found, diagnostic
        return (found["file"] == self.file
                and int(found["line"] or 0) == self.line
                and int(found["column"] or 0) == self.column
                and all(fragment in diagnostic for fragment in self.fragments))


def parse_expectation(own_file: str, entry: str) -> Expectation:
    where, *fragments = (part.strip() for part in entry.split("|"))
    if where == "-":
        return Expectation(own_file, 0, 0, tuple(fragments))
    *file, line, column = where.split(":")
    return Expectation(file[0] if file else own_file, int(line), int(column), tuple(fragments))


def diagnostics_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if DIAGNOSTIC.match(line)]


def check_report(name: str, stderr: str) -> None:
    expectations = [parse_expectation(name, entry) for entry in EXPECTED[name]]
    diagnostics = diagnostics_in(stderr)
    unmatched = list(diagnostics)
    for expectation in expectations:
        hit = next((d for d in unmatched if expectation.matches(d)), None)
        assert hit is not None, f"{name}: no diagnostic matches {expectation}\n{stderr}"
        unmatched.remove(hit)
    assert not unmatched, f"{name}: unexpected diagnostics {unmatched}"
    count = len(expectations)
    assert f"{count} error{'s' if count != 1 else ''} in 1 of 1 file" in stderr
    assert "Traceback" not in stderr


def corpus_files() -> list[str]:
    return sorted(path.name for path in BAD.glob("*.yaml") if path.name != "expected.yaml")


def test_corpus_is_large_and_fully_described() -> None:
    files = corpus_files()
    assert len(files) >= 40
    assert sorted(EXPECTED) == files, "every bad file needs an entry in expected.yaml"
    assert all(EXPECTED[name] for name in files)


@pytest.mark.parametrize("name", corpus_files())
def test_bad_file_is_rejected_with_located_diagnostics(
        name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(BAD)
    assert main(["validate", name]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    check_report(name, captured.err)


@pytest.mark.parametrize("name", ["y-unsafe-tag.yaml", "y-bomb.yaml", "y-not-utf8.yaml",
                                  "t-three-errors.yaml", "s-bad-topology.yaml"])
def test_no_traceback_reaches_stderr_of_the_real_command(name: str) -> None:
    result = subprocess.run([sys.executable, "-m", "testbed", "validate", name], cwd=BAD,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    check_report(name, result.stderr)


def test_every_error_of_a_file_is_listed(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(BAD)
    main(["validate", "t-three-errors.yaml"])
    assert len(diagnostics_in(capsys.readouterr().err)) == 3


def test_all_bad_files_at_once_count_every_file(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(BAD)
    files = corpus_files()
    assert main(["validate", *files]) == 1
    err = capsys.readouterr().err
    total = sum(len(EXPECTED[name]) for name in files)
    assert f"{total} errors in {len(files)} of {len(files)} files" in err


def test_absurd_size_is_refused_before_parsing(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "huge.yaml"
    line = "  # " + "x" * 95 + "\n"
    with big.open("w", encoding="utf-8") as handle:
        handle.write("name: huge\nsegments:\n  lan: {cidr: 10.0.0.0/24}\n")
        handle.write(line * (MAX_FILE_BYTES // len(line) + 10))
    assert big.stat().st_size > MAX_FILE_BYTES
    assert main(["validate", str(big)]) == 1
    err = capsys.readouterr().err
    assert f"{big}: error: file is {big.stat().st_size} bytes, larger than the limit" in err
    assert "use host groups" in err


def test_alias_bomb_stays_bounded_in_a_memory_capped_process() -> None:
    """The bomb expands to ~387 million nodes; with 512 MiB of address space the process can
    only answer if the loader refuses it without expanding (a crash or timeout fails)."""
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))\n"
            "from testbed.cli.main import main\n"
            "sys.exit(main(['validate', 'y-bomb.yaml']))\n")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=BAD, capture_output=True,
                            text=True, timeout=120, check=False, env=env)
    assert result.returncode == 1, result.stderr
    assert "alias bomb" in result.stderr and "Traceback" not in result.stderr


def test_missing_file_is_a_located_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: error: file not found" in capsys.readouterr().err


def test_directory_is_not_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


# ---- no input, however mangled, gets anything but located diagnostics ----------------------
_ODD_VALUES = [None, -1, 0, 70000, 2.5, "", "any", "x", "10.0.0.0/8", "10.10.5.1", "0.0.0.0/0",
               "8.8.8.0/24", "255.255.255.255", [], {}, [None], ["nobody"], {"a": 1}, True,
               "1-2", "-5", "80-", [-5], ["9-1"], "MOCK-X", "CVE-2017-0144", "icmp", "deny",
               1e300, "users", "pc", "pc-1", ["users", "pc"], {"action": "allow"}]


def _paths(data: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def test_mangled_topologies_and_scenarios_only_ever_give_diagnostics() -> None:
    import copy
    import random

    from testbed.errors import ValidationError
    from testbed.model.load_scenario import scenario_from_document
    from testbed.model.load_topology import topology_from_document
    from testbed.yamlsource import SourceDocument, load_yaml

    repo = BAD.parents[2]
    sources = [(repo / "topologies" / "smb-segmented.yaml", False),
               (repo / "topologies" / "home-basement.yaml", False),
               (repo / "scenarios" / "basement-launchpad.yaml", True)]
    rng = random.Random(20240607)  # fixed: a failure must reproduce
    rejected = 0
    for _trial in range(300):
        path, is_scenario = rng.choice(sources)
        data = copy.deepcopy(load_yaml(path).data)
        for _change in range(rng.randint(1, 3)):
            where = rng.choice(_paths(data))
            parent = data
            for part in where[:-1]:
                parent = parent[part]
            parent[where[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
        document = SourceDocument(path, data)
        try:
            if is_scenario:
                scenario_from_document(document, path)
            else:
                topology_from_document(document)
        except ValidationError as err:
            rejected += 1
            assert err.diagnostics and all(d.message for d in err.diagnostics)
    assert rejected > 200  # the mangling really produced bad input
