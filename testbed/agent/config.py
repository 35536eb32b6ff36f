"""The agent's configuration: one JSON file per host, written by the engine, read by the agent.

Owns: the config format (``FORMAT_VERSION``), its stdlib-only parsing and validation, and the
paths of the run's out-of-band files. ``testbed.runner.agent_configs`` (engine side) builds these
objects from a scenario and writes them with :func:`dump_config`.
Must not: import anything outside the standard library, ``testbed.errors`` and ``testbed.records``.

Layout under the run's state directory (shared with ``testbed.agent.control``)::

    agents/<host>.json        this config (mode 0600: it holds the run's secret)
    hosts/<host>/events.jsonl ground truth (GroundTruthEvent lines)
    hosts/<host>/ready        written once every service listens (JSON: pid, ports)
    control/stop              present: every agent of the run stops
    control/wake/<host>       present: that host's dormant worm wakes (as patient zero)
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import AgentError

__all__ = [
    "FORMAT_VERSION",
    "AgentConfig",
    "BackupJob",
    "BenignTarget",
    "ExploitSpec",
    "ScannerJob",
    "ServiceConfig",
    "UserJob",
    "WormConfig",
    "control_dir",
    "dump_config",
    "events_path",
    "load_config",
    "parse_config",
    "read_config_file",
    "ready_path",
    "stop_path",
    "wake_path",
    "write_config",
]

FORMAT_VERSION = 1


def events_path(state_dir: Path, host: str) -> Path:
    return state_dir / "hosts" / host / "events.jsonl"


def ready_path(state_dir: Path, host: str) -> Path:
    return state_dir / "hosts" / host / "ready"


def control_dir(state_dir: Path) -> Path:
    return state_dir / "control"


def stop_path(state_dir: Path) -> Path:
    return control_dir(state_dir) / "stop"


def wake_path(state_dir: Path, host: str) -> Path:
    return control_dir(state_dir) / "wake" / host


@dataclass(frozen=True)
class ServiceConfig:
    name: str  # a kind of testbed.model.spec.DEFAULT_PORTS
    port: int  # 0 (tests only): any free port, reported in the ready file
    proto: str  # "tcp" or "udp"
    banner: str = ""
    vulns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExploitSpec:
    """One exploit the worm carries: a mock vulnerability of a service kind on a port."""

    vuln: str
    service: str
    port: int
    proto: str

    @property
    def key(self) -> str:
        return f"{self.vuln}@{self.port}/{self.proto}"


@dataclass(frozen=True)
class BenignTarget:
    address: str
    port: int
    proto: str
    service: str
    host: str = ""


@dataclass(frozen=True)
class UserJob:
    """A human using ``targets`` at ``per_minute`` requests a minute (exponential gaps)."""

    per_minute: float
    targets: tuple[BenignTarget, ...]


@dataclass(frozen=True)
class BackupJob:
    """Contact every target once per ``every_s`` (a backup server's nightly round, compressed)."""

    every_s: float
    targets: tuple[BenignTarget, ...]


@dataclass(frozen=True)
class ScannerJob:
    """Sweep every address of ``cidrs`` on ``ports`` (TCP connect) once per ``every_s``."""

    every_s: float
    cidrs: tuple[str, ...]
    ports: tuple[int, ...]
    per_second: float = 50.0


@dataclass(frozen=True)
class WormConfig:
    profile: str
    params: dict[str, Any]
    arsenal: tuple[ExploitSpec, ...]
    patient_zero: bool = False
    wake_after_s: float | None = None  # patient zero wakes itself this long after start
    max_probe_rate: float = 200.0  # hard cap, whatever the profile asks
    max_in_flight: int = 64
    connect_timeout_s: float = 2.0
    reply_timeout_s: float = 2.0


@dataclass(frozen=True)
class AgentConfig:
    run: str
    host: str
    address: str
    segment_cidr: str
    secret: bytes
    seed: int
    state_dir: Path
    cidrs: tuple[str, ...]
    services: tuple[ServiceConfig, ...]
    patched: bool | frozenset[str]
    worm: WormConfig
    trusts: tuple[str, ...] = ()  # addresses of the hosts whose credentials it holds
    address_book: dict[str, str] = field(default_factory=dict)  # ip -> host (ground truth only)
    users: tuple[UserJob, ...] = ()
    backup: BackupJob | None = None
    scanner: ScannerJob | None = None
    ttl_s: float = 600.0
    listen_address: str = "0.0.0.0"
    bind_source: bool = False  # bind outbound sockets to ``address`` (several agents on loopback)

    @property
    def events_path(self) -> Path:
        return events_path(self.state_dir, self.host)

    @property
    def ready_path(self) -> Path:
        return ready_path(self.state_dir, self.host)

    @property
    def stop_path(self) -> Path:
        return stop_path(self.state_dir)

    @property
    def wake_path(self) -> Path:
        return wake_path(self.state_dir, self.host)


def dump_config(config: AgentConfig) -> dict[str, Any]:
    """The JSON-ready form of ``config``."""
    data = asdict(config)
    data["format"] = FORMAT_VERSION
    data["secret"] = config.secret.hex()
    data["state_dir"] = str(config.state_dir)
    data["patched"] = (config.patched if isinstance(config.patched, bool)
                       else sorted(config.patched))
    return data


def read_config_file(path: Path, what: str) -> Any:
    """The JSON in ``path`` (an agent config or a group of them, says ``what``). Raises
    AgentError naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as err:
        raise AgentError(f"{path}: cannot read {what}: {err.strerror}") from None
    except ValueError as err:
        raise AgentError(f"{path}: {what} is not valid JSON: {err}") from None


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate an agent config. Raises AgentError naming the file and the problem."""
    path = Path(path)
    data = read_config_file(path, "agent config")
    try:
        return parse_config(data)
    except (KeyError, TypeError, ValueError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise AgentError(f"{path}: invalid agent config: {what}") from None


def parse_config(data: dict[str, Any]) -> AgentConfig:
    if not isinstance(data, dict):
        raise TypeError("the config must be a JSON object")
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"format {data.get('format')!r} is not {FORMAT_VERSION}")
    cidrs = tuple(str(ipaddress.IPv4Network(c)) for c in data["cidrs"])
    if not cidrs:
        raise ValueError("cidrs must not be empty")
    address = str(ipaddress.IPv4Address(data["address"]))
    segment_cidr = str(ipaddress.IPv4Network(data["segment_cidr"]))
    services = tuple(_service(s) for s in data.get("services", ()))
    patched_raw = data.get("patched", False)
    patched: bool | frozenset[str] = (patched_raw if isinstance(patched_raw, bool)
                                      else frozenset(str(v) for v in patched_raw))
    worm_data = data["worm"]
    worm = WormConfig(
        profile=str(worm_data["profile"]),
        params=dict(worm_data.get("params", {})),
        arsenal=tuple(ExploitSpec(str(e["vuln"]), str(e["service"]), _port(e["port"]),
                                  _proto(e["proto"])) for e in worm_data.get("arsenal", ())),
        patient_zero=bool(worm_data.get("patient_zero", False)),
        wake_after_s=_optional_float(worm_data.get("wake_after_s")),
        max_probe_rate=_positive(worm_data.get("max_probe_rate", 200.0), "max_probe_rate"),
        max_in_flight=int(worm_data.get("max_in_flight", 64)),
        connect_timeout_s=_positive(worm_data.get("connect_timeout_s", 2.0), "connect_timeout_s"),
        reply_timeout_s=_positive(worm_data.get("reply_timeout_s", 2.0), "reply_timeout_s"),
    )
    secret = bytes.fromhex(data["secret"])
    if len(secret) < 16:
        raise ValueError("secret must be at least 16 bytes")
    backup = data.get("backup")
    scanner = data.get("scanner")
    return AgentConfig(
        run=str(data["run"]), host=str(data["host"]), address=address,
        segment_cidr=segment_cidr, secret=secret, seed=int(data["seed"]),
        state_dir=Path(data["state_dir"]), cidrs=cidrs, services=services, patched=patched,
        worm=worm,
        trusts=tuple(str(ipaddress.IPv4Address(a)) for a in data.get("trusts", ())),
        address_book={str(k): str(v) for k, v in data.get("address_book", {}).items()},
        users=tuple(UserJob(_positive(u["per_minute"], "per_minute"),
                            tuple(_target(t) for t in u["targets"]))
                    for u in data.get("users", ())),
        backup=(None if backup is None else
                BackupJob(_positive(backup["every_s"], "every_s"),
                          tuple(_target(t) for t in backup["targets"]))),
        scanner=(None if scanner is None else
                 ScannerJob(_positive(scanner["every_s"], "every_s"),
                            tuple(str(ipaddress.IPv4Network(c)) for c in scanner["cidrs"]),
                            tuple(_port(p) for p in scanner["ports"]),
                            _positive(scanner.get("per_second", 50.0), "per_second"))),
        ttl_s=_positive(data.get("ttl_s", 600.0), "ttl_s"),
        listen_address=str(ipaddress.IPv4Address(data.get("listen_address", "0.0.0.0"))),
        bind_source=bool(data.get("bind_source", False)),
    )


def write_config(path: Path, config: AgentConfig) -> None:
    """Write ``config`` atomically with mode 0600 (it holds the secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(dump_config(config), handle, indent=1, sort_keys=True)
    os.replace(temporary, path)


def _service(data: dict[str, Any]) -> ServiceConfig:
    port = int(data["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return ServiceConfig(str(data["name"]), port, _proto(data["proto"]),
                         str(data.get("banner", "")), tuple(str(v) for v in data.get("vulns", ())))


def _target(data: dict[str, Any]) -> BenignTarget:
    return BenignTarget(str(ipaddress.IPv4Address(data["address"])), _port(data["port"]),
                        _proto(data["proto"]), str(data["service"]), str(data.get("host", "")))


def _port(value: Any) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return port


def _proto(value: Any) -> str:
    if value not in ("tcp", "udp"):
        raise ValueError(f"proto {value!r} is not tcp or udp")
    return str(value)


def _positive(value: Any, name: str) -> float:
    number = float(value)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return number


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
