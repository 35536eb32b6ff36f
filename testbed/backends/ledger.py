"""The cleanup ledger: a run's record of every kernel object it will make, written first.

Owns: the file ``state_root()/<run>/ledger.json`` (format below), run-name checks, listing the
runs on this machine, and the small lock that serialises changes of one run's state between
processes. Backends decide *what* they record; this module only stores it crash-safely (write to
a temporary file, fsync, rename), so that after ``kill -9`` of any process the file is either the
old or the new version, never half of one. It must not touch kernel objects itself.

Format (JSON object, version 1)::

    {
      "version": 1,
      "backend": "netns",              # which backend can destroy/attach it
      "run": "demo",                   # run name (= directory name)
      "status": "deploying",           # deploying | up | failed | tearing-down
      "created": 1718000000.0,         # epoch seconds
      "pid": 4242,                     # the deploying process
      "topology": {"name": "small", "hosts": 6, "source": "/abs/topo.yaml",
                   "copy": "topology.yaml"},   # copy inside the run directory, for attach()
      "objects": {...}                 # backend-owned: what to remove (e.g. namespaces)
    }
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.backends.base import state_root
from testbed.errors import BackendError, RunNotFoundError
from testbed.files import write_json_atomically

__all__ = [
    "LEDGER_FILE",
    "RUN_NAME_PATTERN",
    "Ledger",
    "backend_of_run",
    "check_run_name",
    "list_ledgers",
    "pid_alive",
    "run_directory",
    "run_lock",
]

LEDGER_FILE = "ledger.json"
LOCK_FILE = ".lock"
RUN_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_RUN_NAME = re.compile(RUN_NAME_PATTERN)


def check_run_name(name: str) -> str:
    """Return ``name`` if it is a valid run name (used as a directory name), else raise."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise BackendError(f"invalid run name {name!r}: use 1-63 characters of a-z, 0-9, '.', "
                           "'_' and '-', starting with a letter or digit")
    return name


def run_directory(run_name: str) -> Path:
    return state_root() / check_run_name(run_name)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Ledger:
    """One run's ledger. ``save()`` after every change that records a new object."""

    run: str
    backend: str
    status: str = "deploying"
    created: float = field(default_factory=time.time)
    pid: int | None = field(default_factory=os.getpid)
    topology: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return run_directory(self.run)

    @property
    def path(self) -> Path:
        return self.directory / LEDGER_FILE

    # ---- persistence --------------------------------------------------------------------
    @classmethod
    def create(cls, run: str, backend: str) -> Ledger:
        """A new ledger; refuses a run name that already has one on this machine."""
        directory = run_directory(run)
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        directory.mkdir(exist_ok=True, mode=0o700)
        ledger = cls(run=run, backend=backend)
        # Exclusive and complete at once: write a temporary file, then hard-link it into place
        # (fails if the ledger exists), so two concurrent `testbed up --name X` cannot both win
        # and a crash never leaves an empty ledger behind.
        text = json.dumps(ledger.to_json(), indent=1, sort_keys=True) + "\n"
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{LEDGER_FILE}.")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.link(temporary, ledger.path)
        except FileExistsError:
            raise BackendError(f"run {run!r} already exists on this machine (hint: pick "
                               f"another --name, or remove it with `testbed down {run}`)"
                               ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return ledger

    @classmethod
    def load(cls, run: str) -> Ledger:
        path = run_directory(run) / LEDGER_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            known = ", ".join(sorted(info.run for info in list_ledgers())) or "(none)"
            raise RunNotFoundError(f"no run named {run!r} under {state_root()}; "
                                   f"known runs: {known}") from None
        except (OSError, ValueError) as err:
            raise BackendError(f"cannot read the ledger of run {run!r} ({path}): {err}") from None
        return cls.from_json(data)

    @classmethod
    def load_live(cls, run: str, backend: str) -> Ledger:
        """The ledger of a run of ``backend`` that is up, for attaching to it from another
        process; a clear error when it belongs to another backend or is not up."""
        ledger = cls.load(run)
        if ledger.backend != backend:
            raise BackendError(f"run {run!r} belongs to the {ledger.backend} backend")
        if ledger.status != "up":
            alive = pid_alive(ledger.pid)
            raise BackendError(
                f"run {run!r} is not up (status {ledger.status!r}"
                + (", its deployer is still running)" if alive else
                   f"; its deployer is gone: remove it with `testbed down {run}`)"))
        return ledger

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        return cls(run=data["run"], backend=data["backend"], status=data.get("status", "?"),
                   created=float(data.get("created", 0.0)), pid=data.get("pid"),
                   topology=dict(data.get("topology") or {}),
                   objects=dict(data.get("objects") or {}))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "backend": self.backend, "run": self.run, "status": self.status,
                "created": self.created, "pid": self.pid, "topology": self.topology,
                "objects": self.objects}

    def save(self) -> None:
        write_json_atomically(self.path, self.to_json())

    def remove(self) -> None:
        """Forget the run: delete the ledger and backend files; keep agent logs and records.

        The run directory itself goes only when nothing else (events, alerts) is left in it.
        """
        for name in (LEDGER_FILE, LOCK_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()


def list_ledgers() -> list[Ledger]:
    """Every run with a readable ledger under ``state_root()``, oldest first."""
    root = state_root()
    found: list[Ledger] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        path = entry / LEDGER_FILE
        if not path.is_file():
            continue
        try:
            found.append(Ledger.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError):
            continue  # a foreign or broken file: not ours to interpret
    return sorted(found, key=lambda ledger: ledger.created)


def backend_of_run(run: str) -> str:
    """The name of the backend that deployed ``run`` (raises RunNotFoundError)."""
    return Ledger.load(run).backend


@contextlib.contextmanager
def run_lock(run: str) -> Iterator[None]:
    """Serialise state changes of one run across processes (containment actions, teardown)."""
    directory = run_directory(run)
    if not directory.is_dir():
        raise RunNotFoundError(f"no run named {run!r} under {state_root()}")
    handle = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
