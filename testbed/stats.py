"""Median and spread of a handful of numbers: the one helper behind the scorer's medians, the
bench's leaderboard and the runner's summary over repetitions.

Owns: ``median`` and ``spread`` (median, inclusive quartiles, interquartile range, count).
Standard library only; knows nothing of runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Spread", "median", "spread"]


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of some values (None when there were none).

    Quartiles are the "inclusive" method of ``statistics.quantiles``; one value has IQR 0."""

    median: float | None
    iqr: float | None
    n: int


def median(values: Iterable[float], digits: int | None = None) -> float | None:
    """The median, rounded to ``digits`` when given; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = statistics.median(ordered)
    return round(middle, digits) if digits is not None else middle


def spread(values: Iterable[float]) -> Spread:
    """Median, IQR and count of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return Spread(median=None, iqr=None, n=0)
    if len(ordered) == 1:
        return Spread(median=ordered[0], iqr=0.0, n=1)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(median=statistics.median(ordered), iqr=q3 - q1, n=len(ordered))
