"""Welch's t-test without SciPy (senet.analysis.significance), checked against SciPy."""

from __future__ import annotations

import math

import pytest

from senet.analysis import significance as sig


def test_student_t_matches_known_values() -> None:
    # textbook quantiles: t_{0.975, 4} = 2.7764, t_{0.975, 10} = 2.2281, t_{0.975, inf} → 1.95996
    assert sig.student_t_ppf(0.975, 4) == pytest.approx(2.776445, abs=1e-5)
    assert sig.student_t_ppf(0.975, 10) == pytest.approx(2.228139, abs=1e-5)
    assert sig.student_t_ppf(0.975, 1e6) == pytest.approx(1.959966, abs=1e-4)
    assert sig.student_t_sf(0.0, 3) == pytest.approx(0.5)
    assert sig.student_t_sf(1.0, 1) == pytest.approx(0.25)  # Cauchy: 1/2 − atan(1)/π


def test_welch_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a = [8.41, 8.12, 8.63, 8.29, 8.50]
    b = [7.95, 8.02, 7.71, 8.20, 7.88]
    ours = sig.welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert ours.diff == pytest.approx(sum(a) / 5 - sum(b) / 5)
    lo, hi = ours.ci95
    assert lo < ours.diff < hi and hi - ours.diff == pytest.approx(ours.diff - lo)
    assert "significant at the 0.05 level" in ours.verdict()


def test_welch_hand_computed() -> None:
    """a = (1, 2, 3), b = (4, 6, 8): t = −4/√(1/3 + 4/3) = −3.098, df = 2.94."""
    r = sig.welch_t_test([1, 2, 3], [4, 6, 8])
    assert r.t == pytest.approx(-4 / math.sqrt(5 / 3))
    assert r.df == pytest.approx((5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2))
    assert r.p_value == pytest.approx(0.054787, abs=1e-5)  # just short of 0.05 with 3 runs a side
    assert "not significant" in r.verdict()


def test_degenerate_groups_are_not_testable() -> None:
    assert math.isnan(sig.welch_t_test([1.0], [2.0, 3.0]).p_value)
    assert "not testable" in sig.welch_t_test([1.0, 1.0], [1.0, 1.0]).verdict()
    with pytest.raises(ValueError):
        sig.mean_std([])
