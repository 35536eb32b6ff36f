"""How a run meets Ctrl-C and SIGTERM: both interrupt the run, neither interrupts its cleanup.

Owns: ``sigterm_as_interrupt`` (SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C, so a service
manager stopping ``testbed run`` gets the same cleanup and partial results) and
``interrupts_deferred`` (while cleaning up, both signals are noted and answered with a message,
never obeyed: a second, impatient Ctrl-C must not leave namespaces or agents behind).

Must not touch: anything but the process's signal handlers, which it restores on leaving. Off the
main thread (where Python cannot install handlers) both are no-ops.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["interrupts_deferred", "sigterm_as_interrupt"]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM during the run cleans up exactly like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred(say: Callable[[str], None]) -> Iterator[list[int]]:
    """While cleaning up, Ctrl-C and SIGTERM are noted (the yielded list) but do not interrupt."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        say("still cleaning up, please wait (nothing is left behind)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
