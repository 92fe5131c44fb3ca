"""Audit statistics: status rule, bootstrap intervals with a known answer, MetricFrame agreement, groups."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from fairlearn.metrics import MetricFrame
from hypothesis import given
from hypothesis import strategies as st

from fairness.errors import AuditInputError
from fairness.groups import UNKNOWN, GroupConfig, GroupTable, build_groups
from fairness.stats import SEVERITY, assess, judge, resampled_group_means, worst
from fairness.thresholds import AuditSettings

SETTINGS = AuditSettings(resamples=500)


def table(labels: dict[str, list[str]]) -> GroupTable:
    n = len(next(iter(labels.values())))
    frame = pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], **labels})
    return GroupTable(frame=frame, attributes=tuple(labels))


def outcomes(**cols: np.ndarray) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], **cols})


# -- the status rule --------------------------------------------------------------------

finite = st.floats(-10, 10, allow_nan=False)


@given(finite, finite, finite, st.floats(0, 5))
def test_difference_rule(value: float, a: float, b: float, limit: float) -> None:
    low, high = min(a, b), max(a, b)
    status = judge(value, low, high, limit=limit, kind="max")
    if low > limit:
        assert status == "fail"  # the whole interval is beyond the limit
    elif value > limit:
        assert status == "warn"  # the estimate crosses, the interval does not clear it
    else:
        assert status == "pass"


@given(finite, finite, finite, st.floats(0, 1))
def test_ratio_rule(value: float, a: float, b: float, limit: float) -> None:
    low, high = min(a, b), max(a, b)
    status = judge(value, low, high, limit=limit, kind="min")
    assert status == ("fail" if high < limit else "warn" if value < limit else "pass")


@given(st.floats(0, 1), st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 0.5))
def test_a_wider_interval_never_makes_the_verdict_harsher(value: float, w1: float, extra: float, limit: float) -> None:
    narrow = judge(value, value - w1, value + w1, limit=limit, kind="max")
    wide = judge(value, value - w1 - extra, value + w1 + extra, limit=limit, kind="max")
    assert SEVERITY[wide] <= SEVERITY[narrow]


@given(st.lists(st.sampled_from(["pass", "warn", "fail", "too_small"]), max_size=8))
def test_worst_status(statuses: list[str]) -> None:
    w = worst(statuses)
    judged = [s for s in statuses if s != "too_small"]
    assert w == (max(judged, key=SEVERITY.__getitem__) if judged else "too_small")


# -- bootstrap -----------------------------------------------------------------------------


def test_resampled_means_are_seeded_and_cover_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.1, size=(2000, 1))
    a = resampled_group_means(x, resamples=600, seed=(1, 2))
    b = resampled_group_means(x, resamples=600, seed=(1, 2))
    assert np.array_equal(a, b)
    low, high = np.quantile(a[:, 0], [0.025, 0.975])
    assert low < 0.5 < high
    # standard error of a mean of 2000 N(., 0.1): 0.1 / sqrt(2000) = 0.00224 -> 95% half-width ~ 0.0044
    assert 0.003 < (high - low) / 2 < 0.006


def test_resampled_means_skip_undefined_values() -> None:
    x = np.array([[1.0], [np.nan], [3.0], [np.nan]])
    means = resampled_group_means(x, resamples=200, seed=(0,))
    finite = means[np.isfinite(means)]
    # NaN rows are left out, not counted as 0: every mean is one of the defined values' averages
    assert len(finite) > 150 and finite.min() >= 1.0 and finite.max() <= 3.0


def test_a_group_clearly_worse_fails_and_identical_groups_pass() -> None:
    rng = np.random.default_rng(7)
    n = 300
    good = rng.binomial(1, 0.6, n).astype(float)
    bad = rng.binomial(1, 0.2, n).astype(float)
    labels = ["a"] * n + ["b"] * n
    res = assess(outcomes(**{"hr@10": np.concatenate([good, bad])}), table({"g": labels}), metrics=["hr@10"], settings=SETTINGS)
    (r,) = res
    assert r.status == "fail" and r.worst_group == "b" and r.reference_group == "a"
    assert r.difference is not None and r.difference.low > 0.05
    assert r.by_group["b"].status == "fail" and r.by_group["a"].status == "pass"

    same = rng.binomial(1, 0.5, 2 * n).astype(float)
    half = np.concatenate([same[:n], same[:n]])  # identical values in both groups
    (r2,) = assess(outcomes(**{"hr@10": half}), table({"g": labels}), metrics=["hr@10"], settings=SETTINGS)
    assert r2.status == "pass" and r2.difference is not None and r2.difference.value == pytest.approx(0.0)
    assert r2.ratio is not None and r2.ratio.value == pytest.approx(1.0)


def test_borderline_gap_is_a_warning() -> None:
    # true gap 0.08 > 0.05, but with 40 customers a group the interval cannot clear the limit
    rng = np.random.default_rng(3)
    n = 40
    a = rng.normal(0.50, 0.15, n)
    b = a - 0.08 + rng.normal(0, 0.001, n)
    (r,) = assess(outcomes(**{"ndcg@10": np.concatenate([a, b])}), table({"g": ["a"] * n + ["b"] * n}),
                  metrics=["ndcg@10"], settings=AuditSettings(resamples=500, ratio_min=0.1))
    assert r.difference is not None and r.difference.value > 0.05
    assert r.status == "warn"


def test_metricframe_agreement_and_small_groups() -> None:
    rng = np.random.default_rng(11)
    labels = np.array(["x"] * 120 + ["y"] * 80 + ["z"] * 12, dtype=object)
    vals = rng.random(len(labels))
    (r,) = assess(outcomes(**{"ndcg@10": vals}), table({"g": list(labels)}), metrics=["ndcg@10"], settings=SETTINGS)
    frame = pl.DataFrame({"g": list(labels), "v": vals})
    means = dict(frame.group_by("g").agg(pl.col("v").mean()).iter_rows())
    for g in ("x", "y", "z"):
        assert r.by_group[g].value == pytest.approx(means[g])
        assert r.by_group[g].n == int((labels == g).sum())
    assert r.overall == pytest.approx(vals.mean())
    # z has 12 customers: too small to judge, left out of difference and ratio
    assert r.by_group["z"].status == "too_small"
    judged = vals[labels != "z"]
    mf = MetricFrame(metrics=lambda yt, yp: float(np.mean(yp)), y_true=judged, y_pred=judged,
                     sensitive_features=labels[labels != "z"])
    assert r.difference is not None and r.difference.value == pytest.approx(mf.difference())
    assert r.ratio is not None and r.ratio.value == pytest.approx(mf.ratio())
    assert r.group_min == pytest.approx(mf.group_min())
    assert r.difference.value == pytest.approx(abs(means["x"] - means["y"]))
    assert r.difference.low <= r.difference.value <= r.difference.high


def test_lower_is_better_metric_uses_the_lowest_group_as_reference() -> None:
    vals = np.array([0.0] * 50 + [1.0] * 10 + [0.0] * 40)
    (r,) = assess(outcomes(cold_start_share=vals), table({"g": ["a"] * 50 + ["b"] * 50}),
                  metrics=["cold_start_share"], settings=SETTINGS)
    assert r.reference_group == "a" and r.worst_group == "b" and r.direction == "lower"
    assert r.ratio_min is None and r.difference_max == 0.05


def test_only_too_small_groups_give_no_verdict() -> None:
    (r,) = assess(outcomes(**{"hr@10": np.ones(40)}), table({"g": ["a"] * 20 + ["b"] * 20}), metrics=["hr@10"], settings=SETTINGS)
    assert r.status == "too_small" and r.difference is None and r.reference_group is None


# -- groups ------------------------------------------------------------------------------------


def test_unknown_groups_activity_tenure_and_intersections() -> None:
    customers = pl.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "age_band": ["18-24", None, "25-34", " "],
        "income": ["low", "high", None, "low"],
    })
    cohort = ["a", "b", "c", "d", "e"]  # e is not in the customers table
    day = 86_400
    train = pl.DataFrame({
        "customer_id": ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"],
        "ts": [0, day, 2 * day, 3 * day, 4 * day, 50 * day, 51 * day, 52 * day, 90 * day, 95 * day, 99 * day],
    })
    g = build_groups(customers, cohort, train, config=GroupConfig(sensitive=("age_band", "income"), intersections=(("age_band", "income"),)), cutoff=100 * day)
    f = g.frame
    assert f["customer_id"].to_list() == cohort
    assert f["age_band"].to_list() == ["18-24", UNKNOWN, "25-34", UNKNOWN, UNKNOWN]
    assert f["age_band & income"].to_list() == ["18-24 & low", UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]
    assert f["activity"].to_list() == ["top_5pct", "rest", "rest", "rest", "rest"]
    assert f["activity_quintile"].to_list() == ["q5", "q4", "q3", "q2", "q1"]  # e: 0 events
    assert f["tenure"].to_list()[0] == "q4"  # a's first event is the oldest
    assert set(g.attributes) == {"age_band", "income", "activity", "activity_quintile", "tenure", "age_band & income"}
    with pytest.raises(AuditInputError, match="attribute 'gender' is not in the data"):
        build_groups(customers, cohort, train, config=GroupConfig(sensitive=("gender",)), cutoff=None)


def test_tenure_needs_timestamps() -> None:
    customers = pl.DataFrame({"customer_id": ["a", "b"]})
    train = pl.DataFrame({"customer_id": ["a", "b"], "ts": [None, None]}, schema={"customer_id": pl.Utf8, "ts": pl.Int64})
    g = build_groups(customers, ["a", "b"], train, config=GroupConfig(), cutoff=None)
    assert "tenure" not in g.attributes and "activity" in g.attributes
