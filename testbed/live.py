"""What a person watches while a scenario runs: elapsed time, infections by tier, alerts,
actions, sensor drops. A rich ``Live`` panel on a terminal, plain log lines otherwise.

Owns: ``LiveStatus`` (a snapshot the runner fills in) and ``LiveView`` (renders it). Must not
decide anything: the runner computes the numbers; this only shows them, on stderr, so that
``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["LiveStatus", "LiveView"]

TIER_STYLES = {"launch-pad": "yellow", "workstation": "cyan", "server": "magenta",
               "crown-jewel": "bold red"}


@dataclass
class LiveStatus:
    scenario: str
    run_name: str
    duration_s: float
    hosts_by_tier: dict[str, int]
    phase: str = "starting"
    elapsed_s: float = 0.0
    infected_by_tier: dict[str, int] = field(default_factory=dict)
    alerts_by_detector: dict[str, int] = field(default_factory=dict)
    actions_by_kind: dict[str, int] = field(default_factory=dict)
    sensor: dict[str, Any] = field(default_factory=dict)
    contained: bool | None = None
    stop_reason: str = ""

    @property
    def infected_total(self) -> int:
        return sum(self.infected_by_tier.values())


class LiveView:
    """``with LiveView(status, live=True) as view: ... view.refresh()``; ``view.say(msg)``."""

    def __init__(self, status: LiveStatus, *, live: bool = True, stream: TextIO | None = None,
                 log_every_s: float = 10.0) -> None:
        self.status = status
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, stderr=stream is None)
        self.live = live and self.console.is_terminal
        self._live: Live | None = None
        self._log_every_s = log_every_s
        self._last_log = -1e9

    def __enter__(self) -> LiveView:
        if self.live:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(exc_type, exc, traceback)
            self._live = None

    def say(self, message: str) -> None:
        """A milestone (first infection beyond patient zero, first alert, containment...)."""
        line = f"[{self.status.elapsed_s:7.1f}s] {message}"
        if self._live is not None:
            self._live.console.print(Text(line))
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    # ---- rendering ---------------------------------------------------------------------------
    def _line(self) -> str:
        status = self.status
        tiers = ", ".join(f"{tier} {count}" for tier, count in status.infected_by_tier.items()
                          if count)
        alerts = sum(status.alerts_by_detector.values())
        return (f"[{status.elapsed_s:7.1f}s] {status.phase}: infected {status.infected_total}"
                f"{f' ({tiers})' if tiers else ''}, alerts {alerts}"
                f", actions {sum(status.actions_by_kind.values())}, sensor drops "
                f"{status.sensor.get('kernel_drops', 0)}")

    def _render(self) -> Group:
        status = self.status
        header = Text.assemble(
            (f"{status.scenario}", "bold"), f"  run {status.run_name}  ",
            (f"{status.elapsed_s:6.1f}s", "bold"), f" / {status.duration_s:.0f}s  ",
            (status.phase, "green" if status.contained else "yellow"))
        tiers = Table(title="infected by tier", expand=False, show_edge=False)
        for tier in status.hosts_by_tier:
            tiers.add_column(tier, style=TIER_STYLES.get(tier, ""), justify="right")
        tiers.add_row(*(f"{status.infected_by_tier.get(tier, 0)}/{total}"
                        for tier, total in status.hosts_by_tier.items()))
        defence = Table(title="defence", expand=False, show_edge=False)
        defence.add_column("alerts", justify="left")
        defence.add_column("actions", justify="left")
        defence.add_column("sensor", justify="left")
        defence.add_row(
            ", ".join(f"{k} {v}" for k, v in status.alerts_by_detector.items()) or "none",
            ", ".join(f"{k} {v}" for k, v in status.actions_by_kind.items()) or "none",
            f"{status.sensor.get('packets', 0)} pkts, {status.sensor.get('kernel_drops', 0)} "
            "drops")
        contained = {None: "", True: "contained", False: "spreading"}[status.contained]
        footer = Text(contained + (f"  stopping: {status.stop_reason}" if status.stop_reason
                                   else ""), style="bold")
        return Group(header, tiers, defence, footer)
