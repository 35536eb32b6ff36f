"""Engines run an experiment's cells: ``local`` (one after another in this process) and ``ray``
(one Ray task per cell, on an embedded single-machine Ray or a cluster).

Owns: ``LocalEngine``, ``RayEngine``, ``make_engine`` and ``can_emulate``. Both engines are
context managers with one method, ``run(source, jobs, out_root, on_outcome)``, calling
``on_outcome`` in the driver for every cell as it finishes (in completion order).

Ray placement: a sim cell asks for one CPU. An emulation cell also asks for one unit of the
custom resource ``testbed_emulation``, which only nodes able to emulate advertise (root and
network namespaces); a node advertises ``emulations_per_node`` units (default 1), so by default
one emulation runs per node at a time and two never collide on names, namespaces or sensors.
The embedded Ray (no address) binds loopback only, has no dashboard, no usage reporting, and
advertises ``testbed_emulation`` when this process can emulate. ``RAY_ADDRESS`` or ``address``
joins a running cluster instead (its nodes advertise what ``ray start --resources`` gave them).
Must not: decide what to run (the driver gives the jobs) or write outside the cells' directories.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from testbed.experiments.cells import (
    CellJob,
    CellOutcome,
    ExperimentError,
    ScenarioSource,
    execute_cell,
)

__all__ = ["EMULATION_RESOURCE", "ENGINES", "LocalEngine", "RayEngine", "can_emulate",
           "make_engine", "require_placeable"]

EMULATION_RESOURCE = "testbed_emulation"
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a loopback-only, one-node Ray
ENGINES = ("local", "ray")
OnOutcome = Callable[[CellOutcome], None]


def can_emulate() -> bool:
    """Whether this process can deploy emulated networks: root and network namespaces."""
    return (os.geteuid() == 0 and Path("/proc/self/ns/net").exists()
            and Path("/sys/class/net").is_dir())


def require_placeable(jobs: Sequence[CellJob], resources: dict[str, float]) -> None:
    """Refuse (instead of queueing forever) emulation cells on a cluster where no node
    advertises ``testbed_emulation``."""
    if any(job.emulated for job in jobs) and not resources.get(EMULATION_RESOURCE):
        raise ExperimentError(
            f"no Ray node advertises {EMULATION_RESOURCE!r}, so emulation cells cannot be "
            "placed: run as root for the embedded Ray, or start cluster nodes with "
            f"ray start --resources='{{\"{EMULATION_RESOURCE}\": 1}}' (docs/scale-out.md); "
            "or use --backend sim")


class LocalEngine:
    """Cells one after another in this process (the reference the Ray engine must match)."""

    name = "local"

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> str:
        return "local engine (this process)"

    def run(self, source: ScenarioSource, jobs: Sequence[CellJob], out_root: Path,
            on_outcome: OnOutcome) -> None:
        for job in jobs:
            on_outcome(execute_cell(source, job, str(out_root)))


# Per Ray worker process: the experiment's scenario source, fetched once per experiment rather
# than once per task (a bench with its topologies is ~15 kB of pickle; 10,000 copies add up).
_SOURCES: dict[str, ScenarioSource] = {}


def _execute_in_worker(source_box: list[Any], job: CellJob, out_root: str) -> CellOutcome:
    """The Ray task body. ``source_box`` holds the source's ObjectRef inside a list so that Ray
    does not resolve it for every task; the worker resolves it once per experiment (per put)."""
    import ray

    reference = source_box[0]
    source = _SOURCES.get(reference.hex())
    if source is None:
        source = ray.get(reference)
        _SOURCES.clear()
        _SOURCES[reference.hex()] = source
    return execute_cell(source, job, out_root)


class RayEngine:
    """One Ray task per cell. Embedded Ray by default; ``address`` (or ``RAY_ADDRESS``) joins a
    cluster. Ctrl-C cancels queued and running tasks (forcefully: a cell killed mid-run leaves a
    partial directory that the next attempt removes) and shuts the embedded Ray down."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 object_store_memory: int = 200 * 1024 * 1024,
                 emulations_per_node: int = 1, in_flight_per_cpu: int = 4) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus or os.cpu_count() or 1
        self.object_store_memory = object_store_memory
        self.emulations_per_node = emulations_per_node
        self.in_flight_per_cpu = in_flight_per_cpu
        self._started = False
        self._ray: Any = None

    def __enter__(self) -> RayEngine:
        if not self.address:
            # Ray's switch for a single-machine cluster: every component on 127.0.0.1 (ray.init
            # would turn _node_ip_address="127.0.0.1" into the machine's routable address).
            # Read when ray is first imported; children (raylet, workers) inherit it.
            os.environ.setdefault(LOOPBACK_SWITCH, "0")
        try:
            import ray
        except ImportError:
            raise ExperimentError("the ray engine needs Ray: pip install "
                                  "'adaptive-worm-testbed[ray]' (scripts/install.sh python "
                                  "installs it)") from None
        self._ray = ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home
        if ray.is_initialized():
            return self  # the caller's session (tests share one per module)
        if self.address:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        else:
            self._init_embedded(ray)
        self._started = True
        return self

    def _init_embedded(self, ray: Any) -> None:
        from ray._private import ray_constants

        if os.environ.get(LOOPBACK_SWITCH) == "0":
            ray_constants.ENABLE_RAY_CLUSTER = False  # ray was imported before __enter__
        # Workers are spawned by the raylet with the environment it started with: put this
        # package first on their path so they run the same code as the driver.
        package_root = str(Path(__file__).resolve().parents[2])
        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = package_root + (os.pathsep + previous if previous else "")
        try:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1",
                     object_store_memory=self.object_store_memory,
                     resources=({EMULATION_RESOURCE: self.emulations_per_node}
                                if can_emulate() else {}),
                     log_to_driver=False, configure_logging=False)
        finally:
            if previous is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = previous

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
            self._started = False

    def describe(self) -> str:
        if self._ray is None or not self._ray.is_initialized():
            return "ray engine (not started)"
        resources = self._ray.cluster_resources()
        where = f"cluster {self.address}" if self.address else "embedded, 127.0.0.1"
        return (f"ray engine ({where}: {len(self._ray.nodes())} node(s), "
                f"{resources.get('CPU', 0):g} CPUs, "
                f"{resources.get(EMULATION_RESOURCE, 0):g} emulation slots)")

    def run(self, source: ScenarioSource, jobs: Sequence[CellJob], out_root: Path,
            on_outcome: OnOutcome) -> None:
        ray = self._ray
        if ray is None:
            raise ExperimentError("RayEngine.run outside its with-block")
        resources = ray.cluster_resources()
        require_placeable(jobs, resources)
        source_box = [ray.put(source)]
        task = ray.remote(_execute_in_worker)
        sim_task = task.options(num_cpus=1, max_retries=0)
        emulation_task = task.options(num_cpus=1, resources={EMULATION_RESOURCE: 1},
                                      max_retries=0)
        window = max(4, int(resources.get("CPU", 1) * self.in_flight_per_cpu))
        queue = list(reversed(jobs))
        pending: dict[Any, CellJob] = {}
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    job = queue.pop()
                    chosen = emulation_task if job.emulated else sim_task
                    pending[chosen.remote(source_box, job, str(out_root))] = job
                # everything already done, else wait (briefly, for Ctrl-C) for the next one:
                # refilling as soon as one finishes keeps every worker busy
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                if not ready:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    job = pending.pop(ref)
                    on_outcome(self._outcome(ray, ref, job))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _outcome(ray: Any, ref: Any, job: CellJob) -> CellOutcome:
        """The task's outcome; a worker that died (or a task Ray could not run) is a failed
        cell with Ray's reason, not a hole."""
        try:
            outcome: CellOutcome = ray.get(ref)
            return outcome
        except ray.exceptions.RayError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return CellOutcome(job.index, job.key, None,
                               f"{type(error).__name__}: {reason}", 0.0)


def make_engine(name: str, *, address: str | None = None) -> LocalEngine | RayEngine:
    """The engine called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        if address:
            print("note: --ray-address is ignored by the local engine", file=sys.stderr)
        return LocalEngine()
    if name == "ray":
        return RayEngine(address)
    raise ExperimentError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
