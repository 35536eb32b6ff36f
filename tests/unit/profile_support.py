"""Shared by the profile tests: a brain driver and a small flat lab where every new profile
can spread (benign users chain ws-1 -> files -> db; ws-1 holds the file server's credentials).

The same lab is used by tests/privileged/test_profiles_spread.py on netns, so the two backends
are asked the same question."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from testbed.agent.brain import Brain, Observation, Probe
from testbed.agent.knowledge import CONNECTED, TRW_ALARM_LEAD

Environment = Callable[[Probe, float], str]

LAB_TOPOLOGY = """
name: profiles-lab
segments:
  lan: {cidr: 10.77.0.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}, {name: http}]
hosts:
  ws-1: {segment: lan, ip: 10.77.0.11, tier: launch-pad, trusts: [files]}
  ws-2: {segment: lan, ip: 10.77.0.12}
  files: {segment: lan, ip: 10.77.0.20, tier: server}
  db:
    segment: lan
    ip: 10.77.0.30
    tier: crown-jewel
    services: [{name: sql, vulns: [MOCK-SQL-1]}]
  printer: {segment: lan, ip: 10.77.0.40, services: [{name: ipp}]}
"""
LAB_USERS = """
benign:
  users:
    - {hosts: ws-1, targets: files, services: [smb], per_minute: 30}
    - {hosts: files, targets: db, services: [sql], per_minute: 30}
    - {hosts: ws-2, targets: printer, services: [ipp], per_minute: 6}
"""
LAB_CHAIN = {"ws-1", "files", "db"}
"""What a worm that follows benign users (mimic) or known-open services (recon) takes."""


def write_lab(directory: Path, profile: str, *, params: str = "{}", duration: float = 120.0,
              rate: float | None = None) -> Path:
    """The lab's topology and a scenario with ``profile`` from ws-1; returns the scenario."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lab-topology.yaml").write_text(LAB_TOPOLOGY)
    rate_line = f", rate: {rate}" if rate is not None else ""
    scenario = directory / f"lab-{profile}.yaml"
    scenario.write_text(
        f"name: lab-{profile}\ntopology: lab-topology.yaml\nduration_s: {duration}\nseed: 5\n"
        f"worm: {{profile: {profile}, patient_zero: ws-1, start_s: 1, params: {params}"
        f"{rate_line}}}\n" + LAB_USERS)
    return scenario


def simulate(brain: Brain, environment: Environment, until: float, *, start: float = 0.0
             ) -> list[tuple[float, Probe, str]]:
    """Drive the brain as the runtime does: plan, answer each probe at once, feed it back."""
    now, log = start, []
    while now < until:
        plan = brain.plan(now)
        for probe in plan.probes:
            outcome = environment(probe, now)
            log.append((now, probe, outcome))
            brain.observe(Observation(probe, outcome, now))
        now = max(plan.wake_at, now + 1e-6)
    return log


def first_contacts(log: list[tuple[float, Probe, str]]) -> list[tuple[Probe, str]]:
    """The first probe to each address, with its outcome (what TRW and CBCRL count)."""
    seen: set[str] = set()
    firsts = []
    for _, probe, outcome in log:
        if probe.target not in seen:
            seen.add(probe.target)
            firsts.append((probe, outcome))
    return firsts


def trw_peak(log: list[tuple[float, Probe, str]]) -> int:
    """The highest lead of failed over successful first contacts on TRW's walk (it alarms at
    ``TRW_ALARM_LEAD`` and restarts at minus that)."""
    lead = peak = 0
    for _, outcome in first_contacts(log):
        if outcome in CONNECTED:
            lead -= 1
            if lead <= -TRW_ALARM_LEAD:
                lead = 0
        else:
            lead += 1
        peak = max(peak, lead)
    return peak
