"""Descriptive statistics and two-sample comparisons of a handful to a few thousand numbers: the
one place behind the scorer's medians, the runner's summary over repetitions and the bench's
leaderboard (medians with quartiles, means with bootstrap confidence intervals, effect sizes and
corrected p-values against a baseline row).

Owns: ``median`` and ``spread`` (median, inclusive quartiles, IQR, count); ``bootstrap_mean_ci``
(percentile bootstrap of the mean, seeded so the same values always give the same interval);
``mann_whitney`` (two-sided Mann-Whitney U test: exact permutation distribution for small samples,
normal approximation with tie correction otherwise, and Cliff's delta as its effect size);
``holm`` (Holm's step-down correction of a family of p-values); ``intervals_overlap``;
unpaired equivalence tests against a margin fixed in advance (two one-sided tests, TOST:
``welch_tost`` on means, ``proportions_tost`` on proportions, both giving an ``Equivalence``
with its verdict), with the Student t distribution they need (``student_t_cdf``,
``student_t_quantile``: regularized incomplete beta function, no scipy).
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
    "DIFFERENT",
    "EQUIVALENT",
    "INCONCLUSIVE",
    "Comparison",
    "Equivalence",
    "Spread",
    "bootstrap_mean_ci",
    "equivalence_verdict",
    "format_number",
    "format_p",
    "holm",
    "intervals_overlap",
    "mann_whitney",
    "median",
    "proportions_tost",
    "spread",
    "student_t_cdf",
    "student_t_quantile",
    "welch_tost",
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


# ---- unpaired equivalence tests (TOST) ---------------------------------------------------------

EQUIVALENT, DIFFERENT, INCONCLUSIVE = "equivalent", "different", "inconclusive"
_BETA_FRACTION_TERMS = 10_000
_BETA_EPSILON = 1e-15


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST, Schuirmann 1987) of whether ``difference`` (sample minus
    reference) lies within +-``margin``.

    ``low``/``high``: the (1 - 2 alpha) confidence interval of the difference (90 % for alpha
    0.05); ``p_value``: the larger of the two one-sided p-values (H0: difference <= -margin,
    H0: difference >= +margin); ``verdict``: ``EQUIVALENT`` when that interval lies inside the
    margin (equivalently p < alpha), ``DIFFERENT`` when it lies wholly outside it (the
    difference is significantly beyond the margin), ``INCONCLUSIVE`` otherwise (too few samples
    or too much noise to tell). ``degrees_of_freedom``: Welch's, or None for a normal (z)
    test."""

    difference: float
    margin: float
    low: float
    high: float
    p_value: float
    verdict: str
    standard_error: float
    degrees_of_freedom: float | None


def equivalence_verdict(low: float, high: float, margin: float) -> str:
    """The TOST verdict of a confidence interval (low, high) against +-margin."""
    if -margin < low and high < margin:
        return EQUIVALENT
    if low >= margin or high <= -margin:
        return DIFFERENT
    return INCONCLUSIVE


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Press et al.,
    Numerical Recipes, 3rd ed., section 6.4, ``betacf``)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, _BETA_FRACTION_TERMS + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < _BETA_EPSILON:
            break
    return result


def _regularized_beta(a: float, b: float, x: float, complement: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1; ``complement`` is
    1 - x computed by the caller without cancellation (x near 1 would lose it)."""
    if x <= 0.0:
        return 0.0
    if complement <= 0.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log(complement))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, complement) / b


def student_t_cdf(t: float, degrees_of_freedom: float) -> float:
    """P(T <= t) for Student's t with (possibly fractional) ``degrees_of_freedom`` > 0:
    the tail is I_{v/(v+t^2)}(v/2, 1/2) / 2."""
    if degrees_of_freedom <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {degrees_of_freedom}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    v = float(degrees_of_freedom)
    tail = 0.5 * _regularized_beta(v / 2.0, 0.5, v / (v + t * t), t * t / (v + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """The t with ``student_t_cdf(t, df) == probability`` (0 < probability < 1), by bisection
    (to ~1e-12; the cdf is monotone)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), not {probability}")
    low, high = -1.0, 1.0
    while student_t_cdf(low, degrees_of_freedom) > probability:
        low *= 2.0
    while student_t_cdf(high, degrees_of_freedom) < probability:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if student_t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, abs(middle)):
            break
    return (low + high) / 2.0


def welch_tost(sample: Sequence[float], reference: Sequence[float], margin: float, *,
               alpha: float = 0.05) -> Equivalence | None:
    """Welch's two one-sided t tests (Schuirmann 1987's TOST with Welch's 1947 unequal-variance
    t statistic and Welch-Satterthwaite degrees of freedom) of mean(sample) - mean(reference)
    against +-``margin``, for two independent samples (not paired). None when either sample has
    fewer than 2 values. When both samples are constant the difference is known exactly:
    ``EQUIVALENT`` with p 0 inside the margin, ``DIFFERENT`` with p 1 otherwise."""
    if margin <= 0:
        raise ValueError(f"margin must be positive, not {margin}")
    n_s, n_r = len(sample), len(reference)
    if n_s < 2 or n_r < 2:
        return None
    difference = statistics.fmean(sample) - statistics.fmean(reference)
    share_s = statistics.variance(sample) / n_s
    share_r = statistics.variance(reference) / n_r
    variance = share_s + share_r
    if variance == 0.0:
        inside = abs(difference) < margin
        return Equivalence(difference, margin, difference, difference, 0.0 if inside else 1.0,
                           EQUIVALENT if inside else DIFFERENT, 0.0, None)
    se = math.sqrt(variance)
    df = variance ** 2 / (share_s ** 2 / (n_s - 1) + share_r ** 2 / (n_r - 1))
    p_lower = 1.0 - student_t_cdf((difference + margin) / se, df)  # H0: difference <= -margin
    p_upper = student_t_cdf((difference - margin) / se, df)        # H0: difference >= +margin
    half = student_t_quantile(1.0 - alpha, df) * se
    low, high = difference - half, difference + half
    return Equivalence(difference, margin, low, high, max(p_lower, p_upper),
                       equivalence_verdict(low, high, margin), se, df)


def proportions_tost(successes: int, trials: int, reference_successes: int,
                     reference_trials: int, margin: float, *,
                     alpha: float = 0.05) -> Equivalence | None:
    """Two one-sided z tests of p_sample - p_reference against +-``margin`` for two independent
    binomial samples (not paired), with Agresti & Caffo's (2000) adjustment: one success and
    one failure added to each sample before the Wald statistic, so that 0/n or n/n on both sides
    still has a variance and the interval keeps its coverage at small n. ``difference`` is the
    adjusted one the test uses. None when either sample is empty."""
    if margin <= 0:
        raise ValueError(f"margin must be positive, not {margin}")
    if trials <= 0 or reference_trials <= 0:
        return None
    rate_s = (successes + 1.0) / (trials + 2.0)
    rate_r = (reference_successes + 1.0) / (reference_trials + 2.0)
    difference = rate_s - rate_r
    se = math.sqrt(rate_s * (1.0 - rate_s) / (trials + 2.0)
                   + rate_r * (1.0 - rate_r) / (reference_trials + 2.0))
    normal = statistics.NormalDist()
    p_lower = 1.0 - normal.cdf((difference + margin) / se)
    p_upper = normal.cdf((difference - margin) / se)
    half = normal.inv_cdf(1.0 - alpha) * se
    low, high = difference - half, difference + half
    return Equivalence(difference, margin, low, high, max(p_lower, p_upper),
                       equivalence_verdict(low, high, margin), se, None)


def format_number(value: float | None, digits: int = 2) -> str:
    """A table cell: ``value`` to ``digits`` decimals, an en dash for no value."""
    return "–" if value is None else f"{value:.{digits}f}"


def format_p(value: float | None) -> str:
    """A p-value as tables print it: ``<0.001`` below a thousandth, an en dash for none."""
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
