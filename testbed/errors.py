"""The one exception root of the testbed, and its tree.

Every error the engine raises on purpose derives from :class:`TestbedError`. Library code raises;
only the CLI (``testbed.cli``) turns an error into a message and an exit code.

    TestbedError
    ├── InputError                  the user's files are wrong (carry Diagnostics: file, line, hint)
    │   └── ValidationError         one or more diagnostics from loading/validating YAML
    ├── RegistryError               an unknown name in a registry (lists the known ones)
    ├── BackendError                realising a topology failed (deploy, teardown, actions)
    │   ├── PrivilegeError          the backend needs root or a capability it lacks
    │   ├── ToolMissingError        a required external program (nft, ip, suricata) is absent
    │   └── RunNotFoundError        a run name that has no state on this machine
    ├── AgentError                  the in-host agent runtime refused or failed (guards, tokens)
    ├── DetectorError               a detector plug-in failed or was misconfigured
    └── RunError                    running a scenario end to end failed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AgentError",
    "BackendError",
    "DetectorError",
    "Diagnostic",
    "InputError",
    "PrivilegeError",
    "RegistryError",
    "RunError",
    "RunNotFoundError",
    "TestbedError",
    "ToolMissingError",
    "ValidationError",
]


class TestbedError(Exception):
    """Root of every error the testbed raises on purpose."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one input file, located like a compiler error."""

    file: str
    line: int  # 1-based; 0 when the problem concerns the whole file
    column: int  # 1-based; 0 when unknown
    message: str
    path: str = ""  # dotted key path inside the document, e.g. ``hosts.web1.services[0].port``
    hint: str = field(default="", compare=False)

    def format(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: error: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class InputError(TestbedError):
    """The user's input is wrong; carries located diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class ValidationError(InputError):
    """A topology or scenario file failed to load or validate."""

    @classmethod
    def single(cls, file: str | Path, message: str, *, line: int = 0, column: int = 0,
               path: str = "", hint: str = "") -> ValidationError:
        return cls([Diagnostic(str(file), line, column, message, path, hint)])


class RegistryError(TestbedError):
    """An unknown name was looked up in a registry."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = "") -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        message = f"unknown {kind} {name!r}; known: {', '.join(self.known) or '(none)'}"
        if hint:
            message += f" (hint: did you mean {hint!r}?)"
        super().__init__(message)


class BackendError(TestbedError):
    """Realising, changing or tearing down a deployment failed."""

    def __init__(self, message: str, *, command: str = "", stderr: str = "",
                 exit_status: int | None = None) -> None:
        self.command, self.stderr, self.exit_status = command, stderr, exit_status
        detail = message
        if command:
            detail += f"\n  command: {command}"
        if exit_status is not None:
            detail += f"\n  exit status: {exit_status}"
        if stderr:
            detail += f"\n  stderr: {stderr.strip()}"
        super().__init__(detail)


class PrivilegeError(BackendError):
    """The backend needs root (or CAP_NET_ADMIN) and does not have it."""


class ToolMissingError(BackendError):
    """An external program the backend relies on is not installed."""


class RunNotFoundError(BackendError):
    """No run of that name has state on this machine."""


class AgentError(TestbedError):
    """The in-host agent runtime refused an action or failed."""


class DetectorError(TestbedError):
    """A detector plug-in failed or was misconfigured."""


class RunError(TestbedError):
    """Running a scenario end to end failed."""
