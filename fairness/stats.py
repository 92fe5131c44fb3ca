"""The audit's statistics: Fairlearn ``MetricFrame`` per attribute, bootstrap intervals, status.

For each group attribute and each per-customer metric:

- point values come from :class:`fairlearn.metrics.MetricFrame` (``by_group``,
  ``overall``; ``difference``, ``ratio`` and ``group_min`` over the groups
  large enough to judge);
- 95% intervals come from a seeded bootstrap that resamples customers
  *within each group* (the group sizes are what they are; the sampling
  uncertainty is in who is in them). It is vectorised: for a group of ``n``
  customers a chunk of resamples is a count matrix ``C`` (resamples x n) and
  every metric's resampled means are one matrix product ``C @ X``;
- each group is compared with the *reference* group (the best judgeable
  group: highest value, or lowest for a lower-is-better metric) by the
  difference ``|v_g - v_ref|`` and the ratio ``min/max``, both with
  intervals from the same resamples, and judged by :func:`judge`.
  The largest gap (``max - min`` over judgeable groups) gets an interval too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl
from fairlearn.metrics import MetricFrame

from fairness.groups import GroupTable
from fairness.thresholds import AuditSettings

Status = Literal["pass", "warn", "fail", "too_small"]
Verdict = Literal["pass", "warn", "fail"]
Direction = Literal["higher", "lower", "neutral"]
SEVERITY: dict[str, int] = {"too_small": -1, "pass": 0, "warn": 1, "fail": 2}
_CHUNK_ELEMENTS = 4_000_000


def direction_of(metric: str) -> Direction:
    base = metric.split("@", 1)[0]
    if base in ("ndcg", "recall", "hr", "category_diversity"):
        return "higher"
    if base == "cold_start_share":
        return "lower"
    return "neutral"


def judge(value: float, low: float, high: float, *, limit: float, kind: Literal["max", "min"]) -> Verdict:
    """Status of one gap statistic against its limit.

    ``kind="max"``: the statistic must be at most ``limit`` (a difference);
    ``kind="min"``: at least ``limit`` (a ratio). ``fail`` when the whole
    interval ``[low, high]`` is beyond the limit, else ``warn`` when the point
    estimate is beyond it, else ``pass``.
    """
    if kind == "max":
        if low > limit:
            return "fail"
        return "warn" if value > limit else "pass"
    if high < limit:
        return "fail"
    return "warn" if value < limit else "pass"


def worst(statuses: Sequence[str]) -> Status:
    judged = [s for s in statuses if s != "too_small"]
    if not judged:
        return "too_small"
    return max(judged, key=lambda s: SEVERITY[s])  # type: ignore[return-value]


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        return {"value": _num(self.value), "ci_low": _num(self.low), "ci_high": _num(self.high)}


@dataclass(frozen=True)
class GroupResult:
    value: float
    ci_low: float
    ci_high: float
    n: int
    status: Status
    difference: Interval | None  # vs the reference group
    ratio: Interval | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": _num(self.value), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
            "n": self.n, "status": self.status,
            "difference_to_reference": self.difference.as_dict() if self.difference else None,
            "ratio_to_reference": self.ratio.as_dict() if self.ratio else None,
        }


@dataclass(frozen=True)
class MetricResult:
    attribute: str
    metric: str
    direction: Direction
    overall: float
    by_group: dict[str, GroupResult]
    difference: Interval | None  # largest gap over judgeable groups
    ratio: Interval | None
    group_min: float | None
    reference_group: str | None
    worst_group: str | None
    status: Status
    judged: bool
    ratio_min: float | None
    difference_max: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "metric": self.metric,
            "direction": self.direction,
            "overall": _num(self.overall),
            "by_group": {g: r.as_dict() for g, r in self.by_group.items()},
            "difference": _num(self.difference.value) if self.difference else None,
            "difference_ci": [_num(self.difference.low), _num(self.difference.high)] if self.difference else None,
            "ratio": _num(self.ratio.value) if self.ratio else None,
            "ratio_ci": [_num(self.ratio.low), _num(self.ratio.high)] if self.ratio else None,
            "group_min": _num(self.group_min) if self.group_min is not None else None,
            "reference_group": self.reference_group,
            "worst_group": self.worst_group,
            "status": self.status,
            "judged": self.judged,
            "thresholds": {"ratio_min": self.ratio_min, "difference_max": self.difference_max},
        }


def _num(x: float | None) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), 6)


def resampled_group_means(
    X: npt.NDArray[np.float64], *, resamples: int, seed: Sequence[int]
) -> npt.NDArray[np.float64]:
    """Bootstrap means of each column of ``X`` (n x m, NaN = undefined): shape (resamples, m).

    Resamples draw ``n`` rows with replacement; NaN entries are left out of
    each column's mean (a resample with no defined value gives NaN).
    """
    n, m = X.shape
    out = np.full((resamples, m), np.nan)
    if n == 0:
        return out
    valid = np.isfinite(X)
    # float32 halves the memory traffic; counts stay exact (< 2**24) and sums of
    # values in [0, 1] keep ~7 significant digits, far finer than any interval.
    Z = np.concatenate([np.where(valid, X, 0.0), valid], axis=1).astype(np.float32)
    rng = np.random.default_rng(list(seed))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(rows, n))
        if n >= 4096:
            # one bincount per resample: its n counters stay in cache, where one
            # bincount over rows * n counters scatters across memory (3x slower)
            counts = np.empty((rows, n), dtype=np.float32)
            for r in range(rows):
                counts[r] = np.bincount(draws[r], minlength=n)
        else:
            draws += (np.arange(rows, dtype=np.int64) * n)[:, None]
            counts = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float32)
        S = (counts @ Z).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + rows] = S[:, :m] / S[:, m:]
    return out


def _ratio(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), np.where(lo == hi, 1.0, 0.0))
    return np.where(np.isfinite(a) & np.isfinite(b), r, np.nan)


def _interval(value: float, samples: npt.NDArray[np.float64], alpha: float) -> Interval:
    s = samples[np.isfinite(samples)]
    if len(s) == 0:
        return Interval(value, np.nan, np.nan)
    low, high = np.quantile(s, [alpha / 2, 1 - alpha / 2])
    return Interval(float(value), float(low), float(high))


def _ratio_of_sums(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.float64]) -> Any:
    """A MetricFrame metric over rows that are per-group sufficient statistics.

    Each row passed to MetricFrame is one group (its index into ``sums``);
    the metric of any set of rows is ``sum(sums) / sum(counts)``, which is
    exactly the mean over the customers behind those rows. Feeding Fairlearn
    one row per group instead of one per customer keeps its per-row Python
    overhead out of a 100k-customer audit.
    """

    def metric(y_true: Any, y_pred: Any) -> float:
        rows = np.asarray(y_true, dtype=np.int64)
        total = float(counts[rows].sum())
        return float(sums[rows].sum()) / total if total > 0 else float("nan")

    return metric


def _metric_frame(
    sums: npt.NDArray[np.float64], counts: npt.NDArray[np.float64], names: npt.NDArray[Any], metrics: Sequence[str], attribute: str
) -> MetricFrame:
    rows = np.arange(len(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MetricFrame(
            metrics={m: _ratio_of_sums(sums[:, j], counts[:, j]) for j, m in enumerate(metrics)},
            y_true=rows, y_pred=rows, sensitive_features=pd.Series(np.asarray(names, dtype=object), name=attribute),
        )


def assess(
    outcomes: pl.DataFrame,
    groups: GroupTable,
    *,
    metrics: Sequence[str],
    settings: AuditSettings,
    seed: int = 42,
) -> list[MetricResult]:
    """Every (attribute, metric) result. ``outcomes`` rows align with ``groups.frame`` rows."""
    if outcomes.height != groups.frame.height:
        raise ValueError(
            f"outcomes have {outcomes.height} rows but groups {groups.frame.height}; they must align per customer"
        )
    X = np.column_stack([outcomes[m].cast(pl.Float64).fill_null(np.nan).to_numpy() for m in metrics]) if metrics else np.zeros((outcomes.height, 0))
    alpha = 1.0 - settings.confidence
    results: list[MetricResult] = []
    for a_pos, attribute in enumerate(groups.attributes):
        labels = groups.labels(attribute)
        names, codes = np.unique(labels.astype(str), return_inverse=True)
        sizes = np.bincount(codes, minlength=len(names))
        judgeable = sizes >= settings.min_group_size
        boot = np.stack(
            [
                resampled_group_means(X[codes == g], resamples=settings.resamples, seed=(seed, a_pos, g))
                for g in range(len(names))
            ]
        )  # (groups, resamples, metrics)
        valid = np.isfinite(X)
        sums = np.stack([np.bincount(codes, weights=np.where(valid[:, j], X[:, j], 0.0), minlength=len(names)) for j in range(len(metrics))], axis=1) if metrics else np.zeros((len(names), 0))
        counts = np.stack([np.bincount(codes, weights=valid[:, j].astype(np.float64), minlength=len(names)) for j in range(len(metrics))], axis=1) if metrics else np.zeros((len(names), 0))
        mf = _metric_frame(sums, counts, names, metrics, attribute)
        mf_j = (
            _metric_frame(sums[judgeable], counts[judgeable], names[judgeable], metrics, attribute)
            if judgeable.sum() >= 2
            else None
        )
        by_group_frame = mf.by_group
        overall_series = mf.overall
        diff_s = mf_j.difference() if mf_j is not None else None
        ratio_s = mf_j.ratio() if mf_j is not None else None
        gmin_s = mf_j.group_min() if mf_j is not None else None
        for j, metric in enumerate(metrics):
            direction = direction_of(metric)
            limits = settings.limits_for(metric)
            values = np.array([float(by_group_frame.loc[name, metric]) for name in names])
            usable = judgeable & np.isfinite(values)
            ref: int | None = None
            if usable.sum() >= 2:
                cand = np.flatnonzero(usable)
                pick = np.argmin(values[cand]) if direction == "lower" else np.argmax(values[cand])
                ref = int(cand[pick])
            by_group: dict[str, GroupResult] = {}
            statuses: list[str] = []
            for g, name in enumerate(names):
                point = values[g]
                ci = _interval(point, boot[g, :, j], alpha)
                if not usable[g] or ref is None:
                    by_group[str(name)] = GroupResult(point, ci.low, ci.high, int(sizes[g]), "too_small", None, None)
                    continue
                d = _interval(abs(point - values[ref]), np.abs(boot[g, :, j] - boot[ref, :, j]), alpha)
                r = _interval(float(_ratio(np.array([point]), np.array([values[ref]]))[0]), _ratio(boot[g, :, j], boot[ref, :, j]), alpha)
                verdicts: list[str] = ["pass"]
                if g != ref:
                    if limits.difference_max is not None:
                        verdicts.append(judge(d.value, d.low, d.high, limit=limits.difference_max, kind="max"))
                    if limits.ratio_min is not None:
                        verdicts.append(judge(r.value, r.low, r.high, limit=limits.ratio_min, kind="min"))
                status = worst(verdicts)
                statuses.append(status)
                by_group[str(name)] = GroupResult(point, ci.low, ci.high, int(sizes[g]), status, d, r)
            difference = ratio = None
            worst_group = None
            group_min = None
            if ref is not None:
                idx = np.flatnonzero(usable)
                sub = boot[idx, :, j]
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gap_samples = np.nanmax(sub, axis=0) - np.nanmin(sub, axis=0)
                    ratio_samples = _ratio(np.nanmin(sub, axis=0), np.nanmax(sub, axis=0))
                difference = _interval(float(diff_s[metric]), gap_samples, alpha)  # type: ignore[index]
                ratio = _interval(float(ratio_s[metric]), ratio_samples, alpha)  # type: ignore[index]
                group_min = float(gmin_s[metric])  # type: ignore[index]
                far = idx[np.argmax(np.abs(values[idx] - values[ref]))]
                worst_group = str(names[far])
            results.append(
                MetricResult(
                    attribute=attribute, metric=metric, direction=direction,
                    overall=float(overall_series[metric]), by_group=by_group,
                    difference=difference, ratio=ratio, group_min=group_min,
                    reference_group=str(names[ref]) if ref is not None else None,
                    worst_group=worst_group, status=worst(statuses) if statuses else "too_small",
                    judged=settings.is_judged(metric),
                    ratio_min=limits.ratio_min, difference_max=limits.difference_max,
                )
            )
    return results
