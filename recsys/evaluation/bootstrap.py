"""Bootstrap confidence intervals over customers.

Customers are the unit of resampling: each resample draws ``n`` customers with
replacement and recomputes the statistic; the interval is the percentile
interval of the resampled statistics. For two models evaluated on the same
customers the draw is paired (one index set for both), which is what makes a
ratio of their means tight when the models agree customer by customer.

Resampling is vectorised: an index matrix of shape (chunk, n) at a time, so
1,000 resamples of 2,500 customers take a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsys.errors import EvaluationError

# elements of one (chunk x n) index matrix: bounds memory at ~32 MB of int64
_CHUNK_ELEMENTS = 4_000_000

ERR_LENGTHS = "a and b must hold one value per customer for the same customers; got lengths {a} and {b}"
ERR_EMPTY = "cannot bootstrap over zero customers; evaluate at least one customer"
ERR_ZERO_BASELINE = (
    "the baseline's mean is 0, so the ratio mean(a)/mean(b) is undefined; compare on a "
    "metric where the baseline scores above 0"
)


@dataclass(frozen=True)
class RatioCI:
    """``ratio = mean(a) / mean(b)`` and its ``1 - alpha`` percentile interval ``[low, high]``."""

    ratio: float
    low: float
    high: float
    n_resamples: int
    alpha: float = 0.05

    def excludes_one(self) -> bool:
        """True when the whole interval is on one side of 1 (a clear difference)."""
        return self.low > 1.0 or self.high < 1.0


@dataclass(frozen=True)
class MeanCI:
    """``mean(a)`` and its ``1 - alpha`` percentile interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n_resamples: int
    alpha: float = 0.05


def paired_ratio_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 42,
    alpha: float = 0.05,
) -> RatioCI:
    """Paired bootstrap interval of ``mean(a) / mean(b)``.

    ``a`` and ``b`` are per-customer values of two models on the same
    customers, aligned. A resample where ``b`` sums to 0 gives ``inf`` (or 1
    when ``a`` does too). Raises ``ValueError`` when ``mean(b)`` is 0.
    """
    x, y = _as_vector(a), _as_vector(b)
    if len(x) != len(y):
        raise EvaluationError(ERR_LENGTHS.format(a=len(x), b=len(y)))
    _check(len(x), n_resamples, alpha)
    total_b = y.sum()
    if total_b == 0:
        raise EvaluationError(ERR_ZERO_BASELINE)
    ratio = float(x.sum() / total_b)
    stats = np.empty(n_resamples, dtype=np.float64)
    for rows, idx in _resample_indices(len(x), n_resamples, seed):
        sa, sb = x[idx].sum(axis=1), y[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sa / sb
        r[(sb == 0) & (sa == 0)] = 1.0
        stats[rows] = r
    low, high = _percentiles(stats, alpha)
    return RatioCI(ratio=ratio, low=low, high=high, n_resamples=n_resamples, alpha=alpha)


def mean_ci(
    a: npt.ArrayLike, *, n_resamples: int = 1000, seed: int = 42, alpha: float = 0.05
) -> MeanCI:
    """Bootstrap interval of ``mean(a)`` over customers."""
    x = _as_vector(a)
    _check(len(x), n_resamples, alpha)
    stats = np.empty(n_resamples, dtype=np.float64)
    for rows, idx in _resample_indices(len(x), n_resamples, seed):
        stats[rows] = x[idx].mean(axis=1)
    low, high = _percentiles(stats, alpha)
    return MeanCI(mean=float(x.mean()), low=low, high=high, n_resamples=n_resamples, alpha=alpha)


def _resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[tuple[slice, npt.NDArray[np.int64]]]:
    """(rows of the output, index matrix of shape (rows, n)) chunk by chunk, from one seeded stream."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        yield slice(start, stop), rng.integers(0, n, size=(stop - start, n))


def _percentiles(stats: npt.NDArray[np.float64], alpha: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore"):
        low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    # interpolating between two infinite resamples gives nan; the bound is still infinite
    return float(np.nan_to_num(low, nan=np.inf)), float(np.nan_to_num(high, nan=np.inf))


def _as_vector(a: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 1:
        raise EvaluationError(f"expected one value per customer (a 1-D array); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise EvaluationError("per-customer values must be finite; found NaN or inf")
    return x


def _check(n: int, n_resamples: int, alpha: float) -> None:
    if n == 0:
        raise EvaluationError(ERR_EMPTY)
    if n_resamples < 1:
        raise EvaluationError(f"n_resamples must be at least 1; got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise EvaluationError(f"alpha must be strictly between 0 and 1; got {alpha}")
