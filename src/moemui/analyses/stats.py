"""Small statistics with an explicit "undefined": correlations, cosine, Gini, log fit.

A statistic over fewer than :data:`MIN_CELLS` points, or one whose value is not
defined (a constant vector, a zero vector), is NaN with a reason, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_CELLS = 3


@dataclass(frozen=True)
class Stat:
    """A statistic's ``value``, the number ``n`` of points it used, and why it is NaN."""

    value: float
    n: int
    reason: str = ""


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"vectors differ in shape: {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _too_few(n: int, min_n: int) -> Stat | None:
    if n < min_n:
        return Stat(float("nan"), n, f"{n} cells, fewer than {min_n}")
    return None


def pearson(a, b, min_n: int = MIN_CELLS) -> Stat:
    """Pearson correlation of the finite pairs of ``a`` and ``b``.

    Examples
    --------
    >>> round(pearson([1, 2, 3], [2, 4, 7]).value, 4)
    0.9934
    >>> pearson([1, 2], [1, 2]).reason
    '2 cells, fewer than 3'
    """
    a, b = _pairs(a, b)
    if (bad := _too_few(a.size, min_n)) is not None:
        return bad
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt((da * da).sum() * (db * db).sum())
    if denom == 0:
        return Stat(float("nan"), a.size, "constant values")
    return Stat(float(np.clip((da * db).sum() / denom, -1.0, 1.0)), a.size)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]
    mean_rank = (starts + ends - 1) / 2 + 1
    out = np.empty(x.size)
    out[order] = mean_rank[group]
    return out


def spearman(a, b, min_n: int = MIN_CELLS) -> Stat:
    """Spearman correlation: Pearson of the (tie-averaged) ranks."""
    a, b = _pairs(a, b)
    if (bad := _too_few(a.size, min_n)) is not None:
        return bad
    return pearson(ranks(a), ranks(b), min_n)


def cosine(a, b, min_n: int = 1) -> Stat:
    """Cosine similarity of two vectors; NaN for a zero vector.

    Examples
    --------
    >>> round(cosine([1, 0], [1, 1]).value, 4)
    0.7071
    """
    a, b = _pairs(a, b)
    if (bad := _too_few(a.size, min_n)) is not None:
        return bad
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return Stat(float("nan"), a.size, "a zero vector")
    return Stat(float(np.clip(a @ b / (na * nb), -1.0, 1.0)), a.size)


def gini(counts) -> float:
    """Gini coefficient of non-negative counts (0: all equal; (n-1)/n: all in one).

    NaN when the counts sum to zero.

    Examples
    --------
    >>> gini([5, 5, 5, 5])
    0.0
    >>> gini([0, 0, 0, 8])
    0.75
    """
    x = np.sort(np.asarray(counts, dtype=float).ravel())
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return float("nan")
    if (x < 0).any():
        raise ValueError("Gini needs non-negative counts")
    i = np.arange(1, n + 1)
    return float((2 * (i * x).sum()) / (n * total) - (n + 1) / n)


@dataclass(frozen=True)
class LogFit:
    """``y = intercept + slope * ln(x)``, its R², the points used and why it is NaN."""

    intercept: float
    slope: float
    r2: float
    rmse: float
    n: int
    reason: str = ""


def log_fit(x, y, min_n: int = MIN_CELLS) -> LogFit:
    """Least-squares fit of ``y`` against ``ln(x)`` over the pairs with ``x > 0``.

    Examples
    --------
    >>> fit = log_fit([1, np.e, np.e**2], [1, 3, 5])
    >>> round(fit.intercept, 6), round(fit.slope, 6), round(fit.r2, 6)
    (1.0, 2.0, 1.0)
    """
    x, y = _pairs(x, y)
    keep = x > 0
    x, y = x[keep], y[keep]
    nan = float("nan")
    if x.size < min_n:
        return LogFit(nan, nan, nan, nan, x.size, f"{x.size} points, fewer than {min_n}")
    lx = np.log(x)
    if np.ptp(lx) == 0:
        return LogFit(nan, nan, nan, nan, x.size, "a single MUI value")
    slope, intercept = np.polyfit(lx, y, 1)
    pred = intercept + slope * lx
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else nan
    return LogFit(float(intercept), float(slope), r2, float(np.sqrt(ss_res / x.size)), x.size)
