"""Connecting to the Docker engine, and saying in words when it does not answer.

Owns: the connection (``connect``) and the classification of an engine failure: an error from
the Docker SDK whose cause is that the engine is not there any more (connection refused, socket
gone, timed out) becomes :class:`EngineUnavailableError` with those words. Everything else talks
to the returned client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.errors import BackendError, ToolMissingError

if TYPE_CHECKING:
    import docker

__all__ = ["START_HINT", "EngineUnavailableError", "connect", "engine_failure"]

START_HINT = ("start it with 'scripts/start-dockerd.sh' (or 'make install'), "
              "or install it with 'apt-get install docker.io'")


class EngineUnavailableError(BackendError):
    """The Docker engine does not answer: not started, stopped, or restarting."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # in words, e.g. "connection refused"


def _causes(err: BaseException, depth: int = 0) -> list[BaseException]:
    """The error, its chained causes and the exceptions carried in its arguments (requests and
    urllib3 wrap the socket error as an argument: ``('Connection aborted.', ConnectionRefused
    Error(111, ...))``)."""
    if depth > 6:
        return []
    found = [err]
    for inner in (err.__cause__, err.__context__, *err.args):
        if isinstance(inner, BaseException) and inner is not err:
            found += _causes(inner, depth + 1)
    return found


def engine_failure(err: BaseException) -> str | None:
    """Words for an error that means the engine is not answering; None for any other error."""
    for cause in _causes(err):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, FileNotFoundError):
            return "its socket is gone"
        if isinstance(cause, TimeoutError):
            return "it timed out"
        if isinstance(cause, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return "the connection broke"
    text = str(err)
    if "Connection aborted" in text or "Failed to establish a new connection" in text:
        return "the connection broke"
    return None


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client of the local engine (``DOCKER_HOST`` or the default socket), checked alive."""
    try:
        import docker
        import docker.errors
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ToolMissingError("the Docker SDK for Python is missing: pip install docker") from err
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as err:
        reason = engine_failure(err)
        if reason is not None:
            raise EngineUnavailableError(f"no Docker engine answers ({reason}: {err}); "
                                         f"{START_HINT}", reason=reason) from err
        raise BackendError(f"no Docker engine answers ({err}); {START_HINT}") from err
    except OSError as err:  # requests' ConnectionError, if the SDK lets one through
        reason = engine_failure(err) or "no connection"
        raise EngineUnavailableError(f"no Docker engine answers ({reason}: {err}); "
                                     f"{START_HINT}", reason=reason) from err
    return client
