"""The topology file format as written by users: strict pydantic models, the source of the schema.

Owns: the keys a topology YAML may contain, their types, defaults and descriptions. The JSON Schema
shipped in ``testbed/schemas/topology.schema.json`` is generated from these classes.
Must not: resolve references, assign addresses or touch the system (see ``testbed.model.topology``).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

__all__ = [
    "DEFAULT_PORTS",
    "LARGEST_SEGMENT_PREFIX",
    "MAX_GROUP_HOSTS",
    "SERVICE_KINDS",
    "SMALLEST_SEGMENT_PREFIX",
    "TIER_VALUES",
    "GroupSpec",
    "HostFields",
    "HostFirewallSpec",
    "HostRuleSpec",
    "HostSpec",
    "LimitsSpec",
    "RouterSpec",
    "RuleSpec",
    "SegmentSpec",
    "ServiceSpec",
    "Tier",
    "TopologySpec",
]

LARGEST_SEGMENT_PREFIX = 12
"""The largest segment is a /12 (1,048,576 addresses): the simulation backend holds it; the
emulation backends refuse what they cannot hold when deploying (``testbed.backends.preflight``)."""
SMALLEST_SEGMENT_PREFIX = 29
MAX_GROUP_HOSTS = 1_000_000
"""The most hosts one group may stamp (the simulation backend's scale; see above)."""

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$"
VULN_PATTERN = r"^MOCK-[A-Z0-9][A-Z0-9-]{0,40}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN,
                            description="Lower-case letters, digits and '-', 1-32 characters.")]
VulnId = Annotated[str, Field(
    pattern=VULN_PATTERN,
    description="A mock vulnerability id such as MOCK-SMB-1. Only mock ids exist: the testbed "
                "never models a real CVE.")]


class Tier(StrEnum):
    """How much a host matters; value rises in this order."""

    LAUNCH_PAD = "launch-pad"
    WORKSTATION = "workstation"
    SERVER = "server"
    CROWN_JEWEL = "crown-jewel"


TIER_VALUES: dict[Tier, float] = {
    Tier.LAUNCH_PAD: 1.0,
    Tier.WORKSTATION: 5.0,
    Tier.SERVER: 20.0,
    Tier.CROWN_JEWEL: 100.0,
}
"""Default ``value`` of a host of each tier (used for value-weighted loss)."""

DEFAULT_PORTS: dict[str, tuple[int, Literal["tcp", "udp"]]] = {
    "http": (80, "tcp"),
    "smb": (445, "tcp"),
    "ssh": (22, "tcp"),
    "rdp": (3389, "tcp"),
    "telnet": (23, "tcp"),
    "ftp": (21, "tcp"),
    "mqtt": (1883, "tcp"),
    "modbus": (502, "tcp"),
    "rtsp": (554, "tcp"),
    "ipp": (631, "tcp"),
    "sql": (3306, "tcp"),
    "vpn": (1194, "udp"),
    "generic": (9000, "tcp"),
}
"""Every service kind the mock services implement, with its usual port and protocol."""

SERVICE_KINDS = tuple(DEFAULT_PORTS)


def _as_list(value: Any) -> Any:
    """Let users write ``from: office`` for ``from: [office]``."""
    return [value] if isinstance(value, str | int) else value


NameList = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "description": "A name (segment, group, host), a CIDR, or 'any'; or a list."}),
]

PortRange = Annotated[str, Field(pattern=r"^\d{1,5}(-\d{1,5})?$")]
PortList = Annotated[
    list[int | PortRange],
    BeforeValidator(_as_list),
    WithJsonSchema({"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {"type": "array", "items": {"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"type": "string", "pattern": r"^\d{1,5}(-\d{1,5})?$"}]}}],
        "description": "Ports: 445, [80, 443], or ranges like '8000-8080'. Omit for all ports."}),
]


_NAMED_KEYS_ONLY: dict[str, Any] = {"additionalProperties": False}
"""Make the published schema refuse mapping keys that are not valid names (pydantic writes the
name pattern as ``patternProperties`` and would otherwise let any other key through)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              use_enum_values=False)


class SegmentSpec(_Strict):
    """A layer-2 segment (one broadcast domain, one bridge)."""

    cidr: ipaddress.IPv4Network = Field(
        description="The segment's IPv4 network, inside a private range (10/8, 172.16/12, "
                    "192.168/16, 100.64/10), between /12 and /29 (the emulation backends hold far "
                    "fewer hosts than a /12 has addresses; see `testbed generate`).")
    zone: str | None = Field(None, description="Free label such as 'corp', 'dmz', 'ot'.")
    description: str = Field("", description="What this segment is.")

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return ipaddress.IPv4Network(value, strict=True)
            except ValueError as err:
                raise ValueError(f"not an IPv4 network in CIDR form ({err})") from None
        return value


class ServiceSpec(_Strict):
    """A mock service a host exposes."""

    name: Literal[SERVICE_KINDS] = Field(  # type: ignore[valid-type]
        description="Service kind: " + ", ".join(SERVICE_KINDS) + ".")
    port: int | None = Field(None, ge=1, le=65535,
                             description="Port; defaults to the kind's usual port.")
    proto: Literal["tcp", "udp"] | None = Field(None, description="Defaults to the kind's usual.")
    banner: str | None = Field(None, max_length=200,
                               description="What the service announces (version string).")
    vulns: list[VulnId] = Field(default_factory=list,
                                description="Mock vulnerability ids this service carries.")


class HostRuleSpec(_Strict):
    """An inbound rule of a host's own firewall (micro-segmentation)."""

    action: Literal["allow", "deny"]
    from_: NameList = Field(["any"], alias="from")
    ports: PortList | None = None
    proto: Literal["tcp", "udp", "icmp", "any"] = "any"
    description: str = ""


class HostFirewallSpec(_Strict):
    """A host-level (micro-segmentation) firewall on inbound traffic; first match wins."""

    default: Literal["allow", "deny"] = Field("allow", description="Action when no rule matches.")
    rules: list[HostRuleSpec] = Field(default_factory=list)


class LimitsSpec(_Strict):
    """Resource limits (used by the docker backend)."""

    cpus: float | None = Field(None, gt=0, le=64, description="CPU share, e.g. 0.25.")
    memory_mb: int | None = Field(None, ge=16, le=65536, description="Memory limit in MiB.")


class HostFields(_Strict):
    """Fields a host may take from ``defaults``, its group, or itself (in rising precedence)."""

    segment: Name | None = Field(None, description="The segment the host sits on.")
    tier: Tier | None = Field(None, description="launch-pad, workstation, server or crown-jewel.")
    value: float | None = Field(None, ge=0, le=1e6,
                                description="What losing it costs; defaults per tier "
                                            "(1, 5, 20, 100).")
    os: str | None = Field(None, max_length=64, description="OS label, e.g. 'windows-10'.")
    device: str | None = Field(None, max_length=64, description="Device label, e.g. 'camera'.")
    services: list[ServiceSpec] | None = Field(None, description="Mock services it runs.")
    trusts: list[str] | None = Field(
        None, description="Hosts or groups whose credentials it holds (the worm's hit list).")
    patched: bool | list[VulnId] | None = Field(
        None, description="true: immune to every mock vulnerability; or the ids patched.")
    firewall: HostFirewallSpec | None = Field(None, description="Host-level inbound rules.")
    limits: LimitsSpec | None = None
    image: str | None = Field(None, max_length=200,
                              description="Docker backend: an image with python3 to use.")
    description: str | None = None


class HostSpec(HostFields):
    """One host."""

    ip: ipaddress.IPv4Address | None = Field(None, description="Fixed address; else assigned.")


class GroupSpec(HostFields):
    """Many similar hosts: ``name-1`` .. ``name-<count>``."""

    count: int = Field(ge=1, le=MAX_GROUP_HOSTS,
                       description="How many hosts to stamp (up to 1,000,000: the simulation "
                                   "backend's scale; emulation holds a few thousand at most).")


class RuleSpec(_Strict):
    """One router policy rule; rules are evaluated in order, first match wins."""

    action: Literal["allow", "deny"]
    from_: NameList = Field(["any"], alias="from")
    to: NameList = Field(["any"])
    ports: PortList | None = None
    proto: Literal["tcp", "udp", "icmp", "any"] = "any"
    description: str = ""


class RouterSpec(_Strict):
    """A router/firewall attached to segments; forwards between them under its policy."""

    segments: list[Name] = Field(min_length=1, description="Segments it has an interface on.")
    addresses: dict[Name, ipaddress.IPv4Address] = Field(
        default_factory=dict, json_schema_extra=_NAMED_KEYS_ONLY,
        description="Interface address per segment; default: the first free address.")
    default: Literal["allow", "deny"] = Field("deny", description="Action when no rule matches.")
    rules: list[RuleSpec] = Field(default_factory=list)
    description: str = ""


class TopologySpec(_Strict):
    """A network to defend: segments, hosts, host groups, routers and their policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              title="Adaptive-worm testbed topology")

    name: Name = Field(description="Topology name.")
    description: str = ""
    segments: dict[Name, SegmentSpec] = Field(
        min_length=1, json_schema_extra=_NAMED_KEYS_ONLY,
        description="Layer-2 segments by name, each with its own private network.")
    defaults: HostFields = Field(default_factory=HostFields,
                                 description="Values every host and group starts from.")
    groups: dict[Name, GroupSpec] = Field(
        default_factory=dict, json_schema_extra=_NAMED_KEYS_ONLY,
        description="Groups of similar hosts by name; members are NAME-1 .. NAME-count.")
    hosts: dict[Name, HostSpec] = Field(default_factory=dict, json_schema_extra=_NAMED_KEYS_ONLY,
                                        description="Individual hosts by name.")
    routers: dict[Name, RouterSpec] = Field(
        default_factory=dict, json_schema_extra=_NAMED_KEYS_ONLY,
        description="Routers/firewalls by name, with their policy.")
    decoys: list[ipaddress.IPv4Address] = Field(
        default_factory=list, description="Unused addresses watched as canaries (darknet).")
