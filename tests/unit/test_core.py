"""The project's cross-cutting contracts: exception tree, registries, public surface, CLI exits,
and the import contracts (layers, plug-in API, agent, ground-truth wall) of pyproject.toml."""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import detectors
import testbed
from testbed import errors
from testbed.cli.main import COMMANDS, main
from testbed.errors import Diagnostic, RegistryError, TestbedError
from testbed.registry import Registry

REPO = Path(__file__).resolve().parents[2]


def all_modules() -> list[str]:
    names = []
    for package in (testbed, detectors):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):  # importing it would start the program
                names.append(info.name)
    return names


def test_every_error_class_derives_from_the_root() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, TestbedError), name


def test_diagnostic_formats_like_a_compiler() -> None:
    text = Diagnostic("t.yaml", 3, 7, "unknown key 'zon'", "segments.a.zon",
                      "did you mean 'zone'?").format()
    assert text == ("t.yaml:3:7: error: segments.a.zon: unknown key 'zon' "
                    "(hint: did you mean 'zone'?)")


def test_registry_refuses_duplicates_and_names_the_closest_for_typos() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("alpha", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("alpha", 2)
    with pytest.raises(RegistryError) as info:
        registry.get("alpah")
    assert "known: alpha" in str(info.value) and "did you mean 'alpha'" in str(info.value)


def test_registry_imports_lazily() -> None:
    registry: Registry[object] = Registry("thing")
    registry.register("json-dumps", "json:dumps")
    import json

    assert registry.get("json-dumps") is json.dumps


@pytest.mark.parametrize("module_name", all_modules())
def test_public_surface_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def test_library_code_never_exits() -> None:
    """Only the CLI turns errors into exit codes (STYLE.md 6)."""
    offenders = []
    for root in ("testbed", "detectors"):
        for path in (REPO / root).rglob("*.py"):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith("testbed/cli/") or path.name == "__main__.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "exit"
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "sys"):
                    offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_every_command_module_has_the_subcommand_interface() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"testbed.cli.commands.{name}")
        for attribute in ("NAME", "HELP", "configure", "run"):
            assert hasattr(module, attribute), (name, attribute)


def test_cli_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("validate", "plan", "run", "down"):
        assert command in out


# `lint-imports` with this interpreter's import-linter, as scripts/test.sh runs it.
LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports_command as lint_imports; "
                "sys.exit(lint_imports())")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """The import contracts of ``root/pyproject.toml`` checked on the packages under ``root``."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=root,
                          env=environment, capture_output=True, text=True, timeout=120,
                          check=False)


def test_import_contracts_hold() -> None:
    """Engine layers, plug-ins only on the plug-in API, agent stdlib-only, and the wall: detection
    never reaches ground truth (``testbed.truth``) or the scorer."""
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_catch_deliberate_violations(tmp_path: Path) -> None:
    """The same contracts on a scratch copy with three forbidden imports: each one is named."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for package in ("testbed", "detectors"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))

    def append(relative: str, line: str) -> None:
        with (tmp_path / relative).open("a", encoding="utf-8") as handle:
            handle.write(f"\n{line}  # deliberate violation\n")

    append("testbed/model/spec.py", "import testbed.cli")  # upward: model -> CLI
    append("detectors/trw.py", "import testbed.truth")  # a plug-in reading ground truth
    append("testbed/agent/events.py", "import yaml")  # the agent needing a third-party package
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for broken in ("testbed.model is not allowed to import testbed.cli",
                   "detectors is not allowed to import testbed.truth",
                   "detectors.trw is not allowed to import testbed.truth",
                   "testbed.agent is not allowed to import yaml"):
        assert broken in result.stdout, result.stdout
