"""The testbed's data model: topology and scenario formats, pure data (no system access).

- ``spec`` / ``scenario_spec``: the file formats (pydantic, the source of the JSON schemas)
- ``topology``: the resolved, frozen topology every other layer shares
- ``load_topology`` / ``load_scenario``: loading, validation with located diagnostics, resolution
- ``profiles``: the worm profile catalog
"""

from testbed.model.load_scenario import Scenario, expand_hosts, load_scenario
from testbed.model.load_topology import load_topology, resolve_host_fields
from testbed.model.spec import TIER_VALUES, Tier
from testbed.model.topology import (
    Endpoint,
    Host,
    HostFirewall,
    Router,
    Rule,
    Segment,
    Service,
    Topology,
)

__all__ = [
    "TIER_VALUES",
    "Endpoint",
    "Host",
    "HostFirewall",
    "Router",
    "Rule",
    "Scenario",
    "Segment",
    "Service",
    "Tier",
    "Topology",
    "expand_hosts",
    "load_scenario",
    "load_topology",
    "resolve_host_fields",
]
