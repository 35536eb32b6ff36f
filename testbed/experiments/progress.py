"""A progress bar with rate and ETA for long experiments, on a terminal or in a log.

Owns: ``ProgressBar`` (one line redrawn with a carriage return on a TTY, at most every 0.2 s;
a plain line every 10 s elsewhere). Must not: read outcomes beyond "done" and "failed".
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m40s`` or ``12s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressBar:
    """``[#####.....] 5123/10000  51.2%  38.5 cells/s  ETA 2m06s  failed 0``."""

    WIDTH = 24

    def __init__(self, total: int, already_done: int = 0, stream: TextIO | None = None,
                 label: str = "") -> None:
        self.total, self.done, self.failed = total, already_done, 0
        self.already_done = already_done
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_state: tuple[int, int] | None = None

    def advance(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        self.draw()

    def text(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.WIDTH)
        elapsed = time.monotonic() - self.started
        fresh = self.done - self.already_done
        rate = fresh / elapsed if elapsed > 0 else 0.0
        remaining = self.total - self.done
        eta = format_duration(remaining / rate) if rate > 0 else "?"
        return (f"{self.label}[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.done}/{self.total} {100 * fraction:5.1f}%  {rate:.1f} cells/s  "
                f"ETA {eta}  elapsed {format_duration(elapsed)}  failed {self.failed}")

    def draw(self, final: bool = False) -> None:
        now = time.monotonic()
        interval = 0.2 if self.tty else 10.0
        state = (self.done, self.failed)
        if final and state == self._last_state:
            return  # already on screen
        if not final and now - self._last_draw < interval and self.done < self.total:
            return
        self._last_draw, self._last_state = now, state
        if self.tty:
            self.stream.write("\r" + self.text() + ("\n" if final else ""))
        else:
            self.stream.write(self.text() + "\n")
        self.stream.flush()
