"""Descriptive statistics and two-sample comparisons of a handful to a few thousand numbers: the
one place behind the scorer's medians, the runner's summary over repetitions and the bench's
leaderboard (medians with quartiles, means with bootstrap confidence intervals, effect sizes and
corrected p-values against a baseline row).

Owns: ``median`` and ``spread`` (median, inclusive quartiles, IQR, count); ``bootstrap_mean_ci``
(percentile bootstrap of the mean, seeded so the same values always give the same interval);
``mann_whitney`` (two-sided Mann-Whitney U test: exact permutation distribution for small samples,
normal approximation with tie correction otherwise, and Cliff's delta as its effect size);
``holm`` (Holm's step-down correction of a family of p-values); ``intervals_overlap``.
Knows nothing of runs. numpy only for the bootstrap resampling (pure Python would take minutes on
a 10,000-run leaderboard).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "Comparison",
    "Spread",
    "bootstrap_mean_ci",
    "holm",
    "intervals_overlap",
    "mann_whitney",
    "median",
    "spread",
]

BOOTSTRAP_RESAMPLES = 2000
# Enumerate every split of the pooled ranks (exact p) up to this many; beyond, the normal
# approximation is within a few thousandths of it.
EXACT_SPLITS_LIMIT = 20_000


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and interquartile range of some values (None when there were none).

    Quartiles are the "inclusive" method of ``statistics.quantiles``; one value has IQR 0."""

    median: float | None
    iqr: float | None
    n: int
    q1: float | None = None
    q3: float | None = None


def median(values: Iterable[float], digits: int | None = None) -> float | None:
    """The median, rounded to ``digits`` when given; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = statistics.median(ordered)
    return round(middle, digits) if digits is not None else middle


def spread(values: Iterable[float]) -> Spread:
    """Median, quartiles, IQR and count of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return Spread(median=None, iqr=None, n=0)
    if len(ordered) == 1:
        return Spread(median=ordered[0], iqr=0.0, n=1, q1=ordered[0], q3=ordered[0])
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(median=statistics.median(ordered), iqr=q3 - q1, n=len(ordered), q1=q1, q3=q3)


def bootstrap_mean_ci(values: Iterable[float], *, confidence: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> tuple[float, float, float] | None:
    """(mean, low, high): the mean and its percentile-bootstrap confidence interval.

    The values are sorted first and the generator seeded, so the interval depends only on the
    multiset of values (not on the order runs finished in). None for no values; one value or
    identical values give a zero-width interval."""
    import numpy as np

    ordered = np.sort(np.asarray(list(values), dtype=float))
    if ordered.size == 0:
        return None
    mean = float(ordered.mean())
    if ordered.size == 1 or ordered[0] == ordered[-1]:
        return mean, mean, mean
    generator = np.random.default_rng(seed)
    picks = generator.integers(0, ordered.size, size=(resamples, ordered.size))
    means = ordered[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return mean, float(low), float(high)


def intervals_overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two closed intervals (low, high) share a point."""
    return first[0] <= second[1] and second[0] <= first[1]


@dataclass(frozen=True)
class Comparison:
    """A sample compared with a baseline sample.

    ``effect`` is Cliff's delta: P(x > y) - P(x < y) over all pairs, from -1 (every value below
    the baseline's) to +1 (every value above); ``p_value`` the two-sided Mann-Whitney p-value;
    ``exact`` whether it comes from the full permutation distribution."""

    effect: float
    p_value: float
    u_statistic: float
    exact: bool


def _ranks(pooled: Sequence[float]) -> list[float]:
    """Average ranks (1-based) of ``pooled``, ties sharing the mean of their positions."""
    order = sorted(range(len(pooled)), key=lambda index: pooled[index])
    ranks = [0.0] * len(pooled)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and pooled[order[end + 1]] == pooled[order[position]]:
            end += 1
        average = (position + end) / 2.0 + 1.0
        for index in order[position:end + 1]:
            ranks[index] = average
        position = end + 1
    return ranks


def mann_whitney(sample: Sequence[float], baseline: Sequence[float]) -> Comparison | None:
    """Two-sided Mann-Whitney U test of ``sample`` against ``baseline``; None when either is
    empty. Exact (every split of the pooled ranks) while there are at most
    ``EXACT_SPLITS_LIMIT`` splits, otherwise the normal approximation with tie and continuity
    corrections. Identical samples give p = 1."""
    n_x, n_y = len(sample), len(baseline)
    if n_x == 0 or n_y == 0:
        return None
    pooled = [float(v) for v in sample] + [float(v) for v in baseline]
    ranks = _ranks(pooled)
    rank_sum = sum(ranks[:n_x])
    u_statistic = rank_sum - n_x * (n_x + 1) / 2.0
    effect = 2.0 * u_statistic / (n_x * n_y) - 1.0  # Cliff's delta = rank-biserial correlation
    centre = n_x * n_y / 2.0
    if len(set(pooled)) == 1:
        return Comparison(effect=0.0, p_value=1.0, u_statistic=u_statistic, exact=True)
    if math.comb(n_x + n_y, n_x) <= EXACT_SPLITS_LIMIT:
        observed = abs(u_statistic - centre)
        offset = n_x * (n_x + 1) / 2.0
        extreme = total = 0
        for chosen in itertools.combinations(ranks, n_x):
            total += 1
            if abs(sum(chosen) - offset - centre) >= observed - 1e-9:
                extreme += 1
        return Comparison(effect=effect, p_value=extreme / total, u_statistic=u_statistic,
                          exact=True)
    counts: dict[float, int] = {}
    for value in pooled:
        counts[value] = counts.get(value, 0) + 1
    n = n_x + n_y
    tie_term = sum(t ** 3 - t for t in counts.values()) / (n * (n - 1))
    variance = n_x * n_y / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return Comparison(effect=effect, p_value=1.0, u_statistic=u_statistic, exact=False)
    z = max(0.0, abs(u_statistic - centre) - 0.5) / math.sqrt(variance)
    p_value = min(1.0, math.erfc(z / math.sqrt(2.0)))
    return Comparison(effect=effect, p_value=p_value, u_statistic=u_statistic, exact=False)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): controls the family-wise error
    rate without assuming independence."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * p_values[index]))
        adjusted[index] = running
    return adjusted
