"""Docker tier: the testbed image (built offline by `make install`) and `testbed image`.

Needs a running engine; under CI=true a skip here is a failure (tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testbed.image import DEFAULT_IMAGE, image_status


def run_testbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_image_is_current(client) -> None:  # type: ignore[no-untyped-def]
    status = image_status(client)
    assert status.present, "testbed-host:latest missing: run `testbed image build`"
    assert status.current, "testbed-host:latest is older than testbed/image/Dockerfile"


def test_image_has_python_iproute2_and_nftables(client) -> None:  # type: ignore[no-untyped-def]
    output = client.containers.run(
        DEFAULT_IMAGE, network_mode="none", remove=True,
        command=["sh", "-c", "python3 -c 'import sys; print(sys.version_info[:2] >= (3, 11))'"
                             " && ip -V && nft --version && ip -o link"])
    lines = output.decode().splitlines()
    assert lines[0] == "True"
    assert any("iproute2" in line for line in lines)
    assert any(line.startswith("nftables") for line in lines)
    # network_mode=none: loopback only, so no route out exists from a bare container.
    links = [line for line in lines if ": " in line and line.split(": ")[0].isdigit()]
    assert [line.split(": ")[1].split("@")[0] for line in links] == ["lo"]


def test_build_if_missing_is_a_no_op_when_current(client) -> None:  # type: ignore[no-untyped-def]
    before = client.images.get(DEFAULT_IMAGE).id
    result = run_testbed("image", "build", "--offline", "--if-missing", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["built"] is False and report["image"] == DEFAULT_IMAGE
    assert client.images.get(DEFAULT_IMAGE).id == before


def test_image_status_cli(client) -> None:  # type: ignore[no-untyped-def]
    result = run_testbed("image", "status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["current"] is True


def test_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = run_testbed("image", "status")
    assert result.returncode == 3
    assert "no Docker engine answers" in result.stderr and "start-dockerd" in result.stderr
    assert "Traceback" not in result.stderr
