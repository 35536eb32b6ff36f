"""The simulation's timing model: the constants in ``timing.yaml``, typed.

Owns: reading and checking the parameter file (every key present, every value a non-negative
number). Must not: hold defaults of its own -- the file is the single source, so that
``benchmarks/calibrate_sim.py`` can replace it with measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from testbed.errors import RunError

__all__ = ["DEFAULT_TIMING_PATH", "Timing", "load_timing"]

DEFAULT_TIMING_PATH = Path(__file__).resolve().parent / "timing.yaml"


@dataclass(frozen=True)
class Timing:
    """Seconds, except ``arp_requests`` (a count). See ``timing.yaml`` for each meaning."""

    link_one_way_s: float
    router_hop_s: float
    service_s: float
    arp_retrans_s: float
    arp_requests: int
    arp_failure_s: float
    syn_retrans_s: float
    enforce_quarantine_s: float
    enforce_block_s: float
    enforce_rate_limit_s: float
    wake_delay_s: float
    sensor_poll_s: float
    stop_check_s: float
    source: str = ""

    def one_way(self, routers_crossed: int) -> float:
        """One-way latency of a packet crossing ``routers_crossed`` routers."""
        return self.link_one_way_s + self.router_hop_s * routers_crossed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_timing(path: Path | None = None) -> Timing:
    """The timing model in ``path`` (default: the shipped ``timing.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_TIMING_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RunError(f"{path}: cannot read the simulation timing file: {err.strerror}") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: the simulation timing file must be a mapping")
    values: dict[str, Any] = {}
    for spec in fields(Timing):
        if spec.name == "source":
            values["source"] = str(data.get("source", ""))
            continue
        if spec.name not in data:
            raise RunError(f"{path}: missing timing constant {spec.name!r}")
        value = data[spec.name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise RunError(f"{path}: {spec.name} must be a non-negative number, not {value!r}")
        values[spec.name] = int(value) if spec.name == "arp_requests" else float(value)
    unknown = set(data) - {spec.name for spec in fields(Timing)}
    if unknown:
        raise RunError(f"{path}: unknown timing constants: {', '.join(sorted(unknown))}")
    return Timing(**values)
