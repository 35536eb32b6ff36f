"""The backend contract: how a resolved Topology becomes a live, emulated network, and back.

Owns: the abstract ``Backend`` and ``Deployment`` every backend implements (netns and docker,
both through :mod:`testbed.backends.fabric`), and the small value types they exchange
(``ActionTiming``, ``RunInfo``; ``Tap`` lives in :mod:`testbed.taps`). Runner, sensors,
responders, reach and the CLI talk to deployments only through this contract: every capability
is a method here, so nobody probes a deployment with ``getattr``.

A Deployment is a context manager: leaving the ``with`` block tears everything down, also on an
exception or Ctrl-C. Every kernel object or container is recorded in a ledger under the run's state
directory *before* it is made, so that ``Backend.destroy(run)`` can remove it after a crash.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from testbed.model.topology import Topology
from testbed.policy import ContainmentState
from testbed.taps import Tap

__all__ = [
    "ActionTiming",
    "Backend",
    "Deployment",
    "Progress",
    "RunInfo",
    "Tap",
    "state_root",
]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called while deploying or tearing down (for progress bars)."""


def state_root() -> Path:
    """Where run state lives: ``$TESTBED_STATE_DIR`` or ``/run/testbed``.

    Tests point this elsewhere so that ``down --all`` in one test cannot touch another's runs.
    """
    return Path(os.environ.get("TESTBED_STATE_DIR", "/run/testbed"))


@dataclass(frozen=True)
class ActionTiming:
    """How long a containment action took from the call until the kernel enforced it."""

    action: str
    target: str
    seconds: float


@dataclass(frozen=True)
class RunInfo:
    """What ``testbed status`` shows of a run found on this machine."""

    name: str
    backend: str
    topology: str
    hosts: int
    created: float  # epoch seconds
    pid: int | None  # the process that deployed it, if known
    alive: bool  # whether that process still runs


class Deployment(ABC):
    """A live emulated network. Use as a context manager; teardown is idempotent."""

    run_name: str
    topology: Topology
    state_dir: Path  # /run/testbed/<run>: ledger, agent configs, logs (out of band)

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.teardown()

    @abstractmethod
    def teardown(self, progress: Progress | None = None) -> None:
        """Remove every object of the run (idempotent; also kills processes spawned in hosts)."""

    # ---- hosts -------------------------------------------------------------------------
    def address_of(self, host: str) -> ipaddress.IPv4Address:
        return self.topology.hosts[host].ip

    @abstractmethod
    def netns_path(self, node: str) -> str:
        """The network namespace of a host or router (or of ``"fabric"``, where the segment
        bridges live), as a path to enter (``/run/netns/...``); for reach and sensors."""

    @abstractmethod
    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside ``host`` interactively (stdin, a
        terminal): inside the whole node, e.g. its container, not only its network."""

    @abstractmethod
    def agent_argv(self, host: str, config_path: Path) -> list[str]:
        """The argv to ``spawn`` in ``host`` that starts its agent with that config file."""

    @abstractmethod
    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30.0,
            check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a command inside ``host`` (a host or router name) and wait for it."""

    @abstractmethod
    def spawn(self, host: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              stdout: int | None = subprocess.DEVNULL, stderr: int | None = subprocess.DEVNULL
              ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``host``; teardown kills it if still running."""

    # ---- containment -------------------------------------------------------------------
    @abstractmethod
    def quarantine(self, host: str) -> ActionTiming:
        """Cut ``host`` off: it reaches nobody, nobody reaches it. Atomic."""

    @abstractmethod
    def release(self, host: str) -> ActionTiming:
        """Undo ``quarantine``."""

    @abstractmethod
    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        """Drop new flows from ``source`` to ``destination`` (host names, CIDRs or 'any')."""

    @abstractmethod
    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        """Undo a matching ``block``."""

    @abstractmethod
    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        """Limit new outbound flows of ``host`` to ``per_second``."""

    @abstractmethod
    def remove_rate_limit(self, host: str) -> ActionTiming:
        """Undo ``rate_limit``."""

    @abstractmethod
    def containment(self) -> ContainmentState:
        """The containment currently enforced (quarantines, blocks, rate limits), as data."""

    # ---- observation -------------------------------------------------------------------
    @abstractmethod
    def taps(self) -> list[Tap]:
        """Every segment and router interface a sensor must listen on."""

    @abstractmethod
    def egress_counters(self) -> dict[str, int]:
        """Per host: packets the egress guard dropped (to non-topology destinations). Must be 0."""


class Backend(ABC):
    """Realises topologies. Registered by name in ``testbed.backends.BACKENDS``."""

    name: str
    simulated: bool = False
    """True for a backend that simulates runs in virtual time instead of deploying a network
    (``sim``): the runner then simulates the scenario (``testbed.sim``) and never calls
    ``deploy``; ``up``, ``exec``, ``reach`` and manual containment have nothing to attach to."""

    @abstractmethod
    def deploy(self, topology: Topology, run_name: str, *,
               progress: Progress | None = None, agents: bool = True) -> Deployment:
        """Build the network; on failure remove what was built and raise BackendError.

        ``agents``: whether every host will run an agent (a run does; ``testbed up`` does not),
        so that the capacity check before anything is made counts their memory."""

    @abstractmethod
    def attach(self, run_name: str) -> Deployment:
        """A handle on a run deployed by another process (for exec, reach, quarantine)."""

    @abstractmethod
    def runs(self) -> list[RunInfo]:
        """Runs of this backend that have state on this machine."""

    @abstractmethod
    def destroy(self, run_name: str) -> None:
        """Remove everything the run's ledger records, even if its deployer was killed."""
