"""Is a difference between two groups of runs more than seed noise? Welch's t-test, dependency-free.

``welch_t_test(a, b)`` compares the means of two samples with unequal variances (Welch 1947; the
Welch–Satterthwaite degrees of freedom), the test to use for "SE-ResNet-20 over 5 seeds vs
ResNet-20 over 5 seeds". The Student-t distribution is evaluated with the regularised incomplete
beta function (continued fraction, Numerical Recipes §6.4), so no SciPy is needed; the tests
compare it with ``scipy.stats`` where SciPy is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x={x} must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on the survival function)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q} must be in (0, 1)")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 1.0 - student_t_sf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return m, math.sqrt(var)


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of mean(a) − mean(b)."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    std_a: float
    std_b: float
    diff: float  # mean_a − mean_b
    t: float
    df: float
    p_value: float  # two-sided
    ci95: tuple[float, float]  # 95% confidence interval of the difference

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d

    def verdict(self, alpha: float = 0.05) -> str:
        """A one-line reading: significant at ``alpha`` or not, in plain words."""
        if math.isnan(self.p_value):
            return "not testable (a group needs at least 2 runs and some spread)"
        sig = "significant" if self.p_value < alpha else "not significant"
        return f"{sig} at the {alpha:g} level (p = {self.p_value:.3g})"


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's unequal-variances t-test of the means of ``a`` and ``b`` (two-sided).

    With fewer than two values in a group, or no spread at all, ``t``/``p_value`` are NaN.
    """
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    na, nb = len(a), len(b)
    diff = ma - mb
    nan = float("nan")
    if na < 2 or nb < 2:
        return WelchResult(na, nb, ma, mb, sa, sb, diff, nan, nan, nan, (nan, nan))
    va, vb = sa * sa / na, sb * sb / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return WelchResult(na, nb, ma, mb, sa, sb, diff, nan, nan, nan, (diff, diff))
    t = diff / se
    df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    p = min(1.0, 2.0 * student_t_sf(abs(t), df))
    half = student_t_ppf(0.975, df) * se
    return WelchResult(na, nb, ma, mb, sa, sb, diff, t, df, p, (diff - half, diff + half))
