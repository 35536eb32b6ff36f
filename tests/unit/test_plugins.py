"""Plug-ins by entry points: the example package (examples/plugin-sweep) is pip-installed into a
temporary folder, found by the registry with its package name, listed by ``testbed detectors``
and run by ``testbed detect``; a plug-in that fails its conformance check, cannot be imported or
shadows a built-in is refused with an error naming its package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detectors.registry import _conforms
from testbed.registry import PluginError, Registry, installed_plugins
from testbed.sensor.synth import TrafficBuilder

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugin-sweep"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/plugin-sweep installed by pip into a folder of its own (offline, no build
    isolation: setuptools and wheel come from the dev environment)."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
         str(EXAMPLE)],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"})
    assert done.returncode == 0, done.stderr
    assert (target / "testbed_sweep" / "detector.py").is_file()
    return target


def _testbed(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "testbed", *argv], capture_output=True,
                          text=True, timeout=120, cwd=REPO, check=False,
                          env={**os.environ, "PYTHONPATH": path})


def test_pip_installed_plugin_is_listed_with_its_package_and_runs(
        installed: Path, tmp_path: Path) -> None:
    listed = _testbed(installed, "detectors", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {d["name"]: d for d in json.loads(listed.stdout)}
    assert by_name["sweep"]["package"] == "testbed-plugin-sweep 0.1.0"
    assert by_name["trw"]["package"] == "built-in"
    assert by_name["sweep"]["parameters"] == {"threshold": 8, "window_s": 5.0}
    traffic = TrafficBuilder()
    for i in range(12):
        traffic.tcp("10.9.0.2", f"10.9.0.{50 + i}", 445, "refused").wait(0.05)
    pcap = traffic.write(tmp_path / "sweep.pcap")
    detected = _testbed(installed, "detect", str(pcap), "-d", "sweep", "-p",
                        "sweep.threshold=10", "--json")
    assert detected.returncode == 0, detected.stderr
    alerts = [json.loads(line) for line in detected.stdout.splitlines()]
    assert [a["alert"]["metadata"]["detector"] for a in alerts] == ["sweep"]
    assert alerts[0]["alert"]["metadata"]["evidence"]["addresses"] == 10


def test_the_registry_loads_the_installed_plugin_in_process(
        installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))
    (info,) = [p for p in installed_plugins("detector") if p.name == "sweep"]
    assert (info.package, info.target) == ("testbed-plugin-sweep",
                                           "testbed_sweep.detector:SweepDetector")
    registry: Registry[Any] = Registry("detector", plugins="detector", check=_conforms)
    registry.register("trw", "detectors.trw:TRWDetector")
    assert "sweep" in registry.names() and registry.origin("trw") == "built-in"
    assert registry.get("sweep").NAME == "sweep"


def _fake_distribution(site: Path, package: str, entry_points: str, module: str) -> None:
    """A distribution as pip leaves it (dist-info with METADATA and entry_points.txt)."""
    dist = site / f"{package.replace('-', '_')}-0.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.2\n")
    (dist / "entry_points.txt").write_text(entry_points)
    (site / f"{package.replace('-', '_')}.py").write_text(module)


BROKEN = '''
from detectors.base import Detector


class NoReferences(Detector):
    """Says nothing about where it comes from."""

    NAME = "noref"


class WrongName(Detector):
    """Named differently from its entry point."""

    NAME = "other"
    REFERENCES = ("nowhere",)


PROFILE = {"name": "quiet", "description": "A slow worm.", "params": {
    "rate": {"default": 0.5, "min": 0.1, "max": 2.0, "help": "Probes per second."}}}
BAD_PROFILE = {"name": "Not A Name"}
'''


@pytest.fixture()
def broken_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _fake_distribution(tmp_path, "broken-plugin", (
        "[testbed.detectors]\nnoref = broken_plugin:NoReferences\n"
        "wrongname = broken_plugin:WrongName\nmissing = broken_plugin_gone:Nothing\n"
        "trw = broken_plugin:WrongName\n"
        "[testbed.profiles]\nquiet = broken_plugin:PROFILE\n"
        "[testbed.backends]\nnotabackend = broken_plugin:WrongName\n"), BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("broken_plugin", None)


def test_a_nonconforming_plugin_is_refused_naming_its_package(broken_site: Path) -> None:
    registry: Registry[Any] = Registry("detector", plugins="detector", check=_conforms)
    with pytest.raises(PluginError, match=r"'trw' from package 'broken-plugin 0\.2' uses a "
                                          r"name already registered by built-in"):
        registry.register("trw", "detectors.trw:TRWDetector")
        registry.names()
    registry = Registry("detector", plugins="detector", check=_conforms)
    with pytest.raises(PluginError, match=r"'noref' from package 'broken-plugin 0\.2' fails "
                                          r"its conformance check: .*REFERENCES"):
        registry.get("noref")
    with pytest.raises(PluginError, match=r"'wrongname' from package 'broken-plugin 0\.2' "
                                          r"fails .*entry point is named 'wrongname'"):
        registry.get("wrongname")
    with pytest.raises(PluginError, match=r"'missing' from package 'broken-plugin 0\.2' cannot "
                                          r"be loaded .*ModuleNotFoundError"):
        registry.get("missing")


def test_profile_and_plugin_listings_show_the_package(
        broken_site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from testbed.cli.main import main

    assert main(["profiles", "--json"]) == 0
    profiles = json.loads(capsys.readouterr().out)
    assert profiles["quiet"]["package"] == "broken-plugin 0.2"
    assert profiles["classic"]["package"] == "built-in"
    assert main(["detectors", "--plugins", "--json"]) == 0
    listed = {(p["group"], p["name"]): p["package"] for p in json.loads(capsys.readouterr().out)}
    assert listed[("testbed.detectors", "noref")] == "broken-plugin"
    assert listed[("testbed.profiles", "quiet")] == "broken-plugin"
    assert main(["profiles"]) == 0
    assert "quiet: A slow worm. (plug-in from broken-plugin 0.2)" in capsys.readouterr().out
    (broken_site / "broken_plugin.py").write_text(BROKEN + "\nPROFILE = BAD_PROFILE\n")
    sys.modules.pop("broken_plugin", None)
    assert main(["profiles"]) == 1
    assert "profile plug-in 'quiet' from package 'broken-plugin 0.2' fails its conformance" \
        in capsys.readouterr().err


def test_a_backend_plugin_must_be_a_backend(broken_site: Path) -> None:
    from testbed.backends import _conforms as backend_conforms

    registry: Registry[Any] = Registry("backend", plugins="backend", check=backend_conforms)
    assert registry.origin("notabackend") == "broken-plugin 0.2"
    with pytest.raises(PluginError, match=r"backend plug-in 'notabackend' from package "
                                          r"'broken-plugin 0\.2' fails its conformance check: "
                                          r".*not a subclass of testbed\.backends\.base\.Backend"):
        registry.get("notabackend")
