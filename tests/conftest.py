"""Test tiers: every test is marked by the folder it lives in.

- tests/unit        -> ``unit``: no privileges, no network
- tests/privileged  -> ``privileged``: root, namespaces, nftables (skipped without root)
- tests/docker      -> ``docker``: a running Docker engine and the testbed image
- tests/browser     -> ``browser``: headless Chromium drives the dashboard (root for live runs)

With ``CI=true`` a skipped privileged, docker or browser test is turned into a failure: CI runs as
root and ``make test`` installs and starts what those tiers need, so a skip there hides a broken
setup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

TIERS = {"unit": "unit", "privileged": "privileged", "docker": "docker", "browser": "browser"}
STRICT_TIERS = ("privileged", "docker", "browser")  # under CI=true a skip there is a failure
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, TIERS[tier]))
        if tier == "privileged" and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="privileged tier needs root"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    in_ci = os.environ.get("CI", "").lower() == "true"
    strict_tier = any(item.get_closest_marker(tier) for tier in STRICT_TIERS)
    if in_ci and strict_tier and report.skipped:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: skipped under CI=true, which is a failure for the "
                           f"privileged, docker and browser tiers ({report.longrepr})")


@pytest.fixture()
def repo_root() -> Path:
    return REPO


def _check_run_directory(run_dir: Path) -> dict[str, object]:
    """Check that a run's ``results.json`` and ``manifest.json`` validate against the published
    schemas (``testbed schema results|manifest``) and their typed models; returns the results.

    Every backend's runs are checked with it, so a field one backend writes differently (or
    forgets) fails its tier's test."""
    import json

    import jsonschema

    from testbed.results import Manifest, Results
    from testbed.schema import generate_schema

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, generate_schema("results"), cls=jsonschema.Draft202012Validator)
    jsonschema.validate(manifest, generate_schema("manifest"),
                        cls=jsonschema.Draft202012Validator)
    Results.model_validate(results)
    Manifest.model_validate(manifest)
    return dict(results)


@pytest.fixture()
def check_run_directory() -> Callable[[Path], dict[str, object]]:
    """``check_run_directory(out)``: the run's results and manifest validate; returns results."""
    return _check_run_directory


EVE_SCHEMA = REPO.parent / "shared" / "reference" / "suricata-eve.schema.json"


@pytest.fixture(scope="session")
def eve_validator() -> object:
    """A validator for Suricata's own EVE JSON Schema (``../shared/reference``, beside the repo).

    Outside CI a missing reference skips the test; with ``CI=true`` it fails, in every tier:
    the check that the alerts are EVE would otherwise vanish silently."""
    import json

    import jsonschema

    if not EVE_SCHEMA.is_file():
        message = f"Suricata's EVE schema is missing: {EVE_SCHEMA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing reference is a failure)")
        pytest.skip(message)
    schema = json.loads(EVE_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)
