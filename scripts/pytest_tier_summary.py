"""pytest plugin: a per-tier table (unit, privileged, docker, browser) printed just above
pytest's own closing line, so one pytest run covers every tier and its last line stays the total.

Owns: only this summary. Tiers come from the markers tests/conftest.py assigns by folder.
Load with ``python3 -m pytest -p pytest_tier_summary`` and ``scripts`` on PYTHONPATH.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

TIERS = ("unit", "privileged", "docker", "browser")
_outcomes: dict[str, Counter[str]] = defaultdict(Counter)


def _tier(nodeid: str) -> str:
    # Same rule as tests/conftest.py: the tier is the folder under tests/.
    parts = nodeid.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in TIERS else "other"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The final report (after conftest turned CI skips into failures). One outcome per test:
    # the call phase, or setup when it failed or skipped, plus an error for a failed teardown.
    tier = _tier(report.nodeid)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[tier][report.outcome] += 1
    elif report.when == "teardown" and report.failed:
        _outcomes[tier]["error"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    write = terminalreporter.write_line
    terminalreporter.section("tiers")
    for tier in (*TIERS, "other"):
        counts = _outcomes.get(tier)
        if not counts:
            if tier != "other":
                write(f"{tier:<11} no tests ran")
            continue
        parts = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped", "error")
                          if counts[k])
        write(f"{tier:<11} {parts}")
