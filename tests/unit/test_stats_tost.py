"""Unpaired equivalence tests of ``testbed.stats``: Welch's TOST on means, the Agresti-Caffo
TOST on proportions, and the Student t distribution behind them, on cases checkable by hand or
against a printed t table."""

from __future__ import annotations

import math

import pytest

from testbed.stats import (
    DIFFERENT,
    EQUIVALENT,
    INCONCLUSIVE,
    equivalence_verdict,
    proportions_tost,
    student_t_cdf,
    student_t_quantile,
    welch_tost,
)

pytestmark = pytest.mark.unit


def test_t_cdf_closed_forms() -> None:
    # df 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi
    for t in (-3.0, -1.0, 0.0, 0.25, 1.0, 7.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    # df 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-2.0, 0.5, 2.0):
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)),
                                                    abs=1e-12)
    # a tiny t is not rounded to the centre (1 - x computed without cancellation)
    assert student_t_cdf(-1e-9, 1) == pytest.approx(0.5 - 1e-9 / math.pi, abs=1e-15)
    assert student_t_cdf(-1e-9, 1) < 0.5


def test_t_quantiles_match_a_printed_table() -> None:
    # one-sided 5 % critical values (any t table): df 8 -> 1.860, df 30 -> 1.697
    assert student_t_quantile(0.95, 8) == pytest.approx(1.8595, abs=5e-4)
    assert student_t_quantile(0.95, 30) == pytest.approx(1.6973, abs=5e-4)
    assert student_t_quantile(0.05, 8) == pytest.approx(-1.8595, abs=5e-4)
    assert student_t_quantile(0.5, 5) == pytest.approx(0.0, abs=1e-9)
    for p in (0.01, 0.3, 0.975):  # inverse of the cdf, fractional df too
        assert student_t_cdf(student_t_quantile(p, 2.5), 2.5) == pytest.approx(p, abs=1e-10)


def test_welch_tost_equivalent_by_hand() -> None:
    # means 4 and 3: difference 1; variances 2.5 each over n 5: se = sqrt(0.5 + 0.5) = 1;
    # Welch df = 1 / (0.25/4 + 0.25/4) = 8; 90 % interval 1 +- 1.860 = (-0.860, 2.860).
    result = welch_tost([2, 3, 4, 5, 6], [1, 2, 3, 4, 5], margin=5)
    assert result is not None
    assert result.difference == pytest.approx(1.0)
    assert result.standard_error == pytest.approx(1.0)
    assert result.degrees_of_freedom == pytest.approx(8.0)
    assert (result.low, result.high) == pytest.approx((-0.8595, 2.8595), abs=5e-4)
    # p = P(T8 >= (1 + 5) / 1 ... ) and P(T8 <= 1 - 5 = -4): the larger is P(T8 >= 4),
    # between the table's 0.001 (4.501) and 0.005 (3.355) one-sided points
    assert 0.001 < result.p_value < 0.005
    assert result.verdict == EQUIVALENT


def test_welch_tost_inconclusive_when_the_interval_straddles_the_margin() -> None:
    result = welch_tost([2, 3, 4, 5, 6], [1, 2, 3, 4, 5], margin=2)
    assert result is not None
    # interval (-0.86, 2.86) crosses +2; p = P(T8 <= -1), between 0.1 and 0.25 (table)
    assert result.verdict == INCONCLUSIVE
    assert 0.1 < result.p_value < 0.25


def test_welch_tost_different_when_the_interval_lies_beyond_the_margin() -> None:
    result = welch_tost([10, 11, 12, 13, 14], [1, 2, 3, 4, 5], margin=2)
    assert result is not None
    # difference 9, interval 9 +- 1.86 = (7.14, 10.86), wholly above +2
    assert result.verdict == DIFFERENT
    assert result.low == pytest.approx(9 - 1.8595, abs=5e-4)
    assert result.p_value > 0.999
    below = welch_tost([1, 2, 3, 4, 5], [10, 11, 12, 13, 14], margin=2)
    assert below is not None and below.verdict == DIFFERENT and below.high < -2


def test_welch_degrees_of_freedom_with_unequal_variances() -> None:
    # sample [0, 2]: s^2/n = 2/2 = 1; reference [1, 3, 5]: s^2/n = 4/3;
    # df = (1 + 4/3)^2 / (1^2/1 + (4/3)^2/2) = (49/9) / (17/9) = 49/17
    result = welch_tost([0, 2], [1, 3, 5], margin=1)
    assert result is not None
    assert result.degrees_of_freedom == pytest.approx(49 / 17)
    assert result.standard_error == pytest.approx(math.sqrt(7 / 3))
    assert result.difference == pytest.approx(-2.0)


def test_welch_tost_constant_samples_and_too_few_values() -> None:
    same = welch_tost([3, 3, 3], [3, 3], margin=1)
    assert same is not None and same.verdict == EQUIVALENT and same.p_value == 0.0
    apart = welch_tost([5, 5], [3, 3, 3], margin=1)
    assert apart is not None and apart.verdict == DIFFERENT and apart.p_value == 1.0
    assert welch_tost([1.0], [1.0, 2.0], margin=1) is None
    with pytest.raises(ValueError):
        welch_tost([1, 2], [1, 2], margin=0)


def test_proportions_tost_by_hand() -> None:
    # 50/100 each: adjusted rates 51/102 = 0.5; se = sqrt(2 * 0.25 / 102) = 0.0700;
    # interval +-1.645 * 0.0700 = +-0.1152, inside 0.15; p = P(Z >= 0.15 / 0.0700 = 2.14) = 0.016
    result = proportions_tost(50, 100, 50, 100, margin=0.15)
    assert result is not None
    assert result.standard_error == pytest.approx(math.sqrt(0.5 / 102))
    assert result.high == pytest.approx(0.1152, abs=5e-4)
    assert result.p_value == pytest.approx(0.0161, abs=5e-4)
    assert result.verdict == EQUIVALENT


def test_proportions_tost_different_and_inconclusive() -> None:
    # 90 % against 10 %: adjusted 91/102 - 11/102 = 0.784, far beyond 0.15
    far = proportions_tost(90, 100, 10, 100, margin=0.15)
    assert far is not None and far.verdict == DIFFERENT
    assert far.difference == pytest.approx(80 / 102)
    # equal rates over 10 trials each: se = sqrt(2 * 0.25 / 12) = 0.204, interval +-0.336
    few = proportions_tost(5, 10, 5, 10, margin=0.15)
    assert few is not None and few.verdict == INCONCLUSIVE
    assert few.high == pytest.approx(1.6449 * math.sqrt(0.5 / 12), abs=1e-3)
    # all-or-nothing on both sides still has a variance (the Agresti-Caffo adjustment)
    perfect = proportions_tost(300, 300, 300, 300, margin=0.15)
    assert perfect is not None and perfect.standard_error > 0 and perfect.verdict == EQUIVALENT
    assert proportions_tost(0, 0, 3, 10, margin=0.15) is None


def test_verdict_edges() -> None:
    assert equivalence_verdict(-0.5, 0.5, 1.0) == EQUIVALENT
    assert equivalence_verdict(-0.5, 1.0, 1.0) == INCONCLUSIVE  # touching the margin is not in
    assert equivalence_verdict(1.0, 2.0, 1.0) == DIFFERENT
    assert equivalence_verdict(-3.0, -1.0, 1.0) == DIFFERENT


def test_t_distribution_agrees_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2.882, 8, 30, 598, 1e5):
        for t in (-6.0, -2.0, -0.3, 0.0, 0.5, 1.86, 4.0, 12.0):
            assert student_t_cdf(t, df) == pytest.approx(float(scipy_stats.t.cdf(t, df)),
                                                          abs=1e-9)
        for p in (0.01, 0.05, 0.95, 0.999):
            assert student_t_quantile(p, df) == pytest.approx(float(scipy_stats.t.ppf(p, df)),
                                                              abs=1e-8)
