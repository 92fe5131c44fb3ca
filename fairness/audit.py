"""The audit pipeline on frames: split -> audit model -> outcomes -> groups -> statistics -> report.

Pure computation: frames in, a report dict and the outcome table out. The
store-backed job (:mod:`fairness.job`) and ``clearshelf audit --data-dir``
both call :func:`audit_frames`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from fairness.errors import NO_EVENTS, NO_OUTCOMES, UNKNOWN_ATTRIBUTE, AuditInputError
from fairness.exposure import item_exposure
from fairness.groups import GroupConfig, GroupTable, build_groups
from fairness.outcomes import (
    ItemInfo,
    Outcomes,
    Progress,
    ReasonTypes,
    audit_split,
    audit_truth,
    outcomes_from_recs,
    recommend_cohort,
)
from fairness.report import SCHEMA_VERSION, validate_report
from fairness.stats import MetricResult, assess, worst
from fairness.thresholds import DEFAULT_VERSION, ThresholdVersion
from recsys.evaluation.metrics import Relevance, coverage
from recsys.interactions import Interactions
from recsys.ranking.policy import ServingPolicy
from recsys.recommender import Recommender, RecommenderConfig

ReasonFactory = Callable[[Recommender], ReasonTypes]
DEFAULT_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class AuditConfig:
    """One audit run. ``k=None`` takes the thresholds' ``audit.k``.

    - ``split``: ``temporal`` (when every event has a timestamp) or ``random``
      (a seeded per-customer hold-out, e.g. for ratings data where users
      rate in one sitting).
    - ``cutoff_days``: the audit model is trained on everything up to this
      many days before the newest event and judged on what came after;
      ``test_fraction``/``seed``: the random hold-out used without timestamps.
    - ``sensitive``: attribute columns to group by (None: the store's declared).
    - ``intersections``: attribute tuples to cross, e.g. ``(("age_band", "income"),)``.
    - ``sweep``: also compute the re-rank trade-off curve at ``sweep_strengths``
      for ``sweep_attribute``.
    - ``max_customers``: audit a seeded sample of the cohort (None: everyone).
    """

    k: int | None = None
    split: Literal["temporal", "random"] = "temporal"
    cutoff_days: float = 28.0
    test_fraction: float = 0.2
    seed: int = 42
    sensitive: tuple[str, ...] | None = None
    intersections: tuple[tuple[str, ...], ...] = ()
    sweep: bool = False
    sweep_strengths: tuple[float, ...] = DEFAULT_STRENGTHS
    sweep_attribute: str = "activity"
    max_customers: int | None = None
    recommender: RecommenderConfig | None = None


@dataclass(frozen=True, eq=False)
class AuditRun:
    """``report``: the JSON-ready report; ``outcomes``: customer_id + group columns + metric columns."""

    report: dict[str, Any]
    outcomes: pl.DataFrame
    group_attributes: tuple[str, ...]
    metrics: tuple[str, ...]
    model: Recommender | None = None  # the audit model (trained up to the cutoff)


def new_report_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def largest_gap(values: np.ndarray, labels: np.ndarray, *, min_size: int) -> float | None:
    """max - min of group means over groups with at least ``min_size`` customers (None if < 2)."""
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    sums = np.bincount(codes, weights=values, minlength=len(names))
    ok = sizes >= min_size
    if ok.sum() < 2:
        return None
    means = sums[ok] / sizes[ok]
    return float(means.max() - means.min())


def run_sweep(
    model: Recommender,
    customers: Sequence[str],
    relevance: Relevance,
    items: ItemInfo,
    groups: GroupTable,
    *,
    k: int,
    strengths: Sequence[float],
    min_score: float | None,
    attribute: str,
    min_group_size: int,
    progress: Progress | None = None,
    served: tuple[float, np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Overall NDCG@k, largest NDCG gap (per attribute) and catalog coverage at each strength.

    ``served``: ``(strength, recs, fallback)`` already served at one strength (reused, not re-served).
    """
    points = []
    n_items = len(model.stage_.interactions.items)
    for s in strengths:
        if served is not None and np.isclose(served[0], s):
            recs, fallback = served[1], served[2]
        else:
            policy = ServingPolicy(min_score=min_score, rerank_strength=float(s))
            recs, fallback, _ = recommend_cohort(model, customers, k=k, policy=policy, progress=progress, label=f"sweep {s:g}")
        out = outcomes_from_recs(customers, recs, fallback, relevance, items, k=k)
        ndcg = out.frame[f"ndcg@{k}"].to_numpy()
        gaps = {a: largest_gap(ndcg, groups.labels(a), min_size=min_group_size) for a in groups.attributes}
        points.append(
            {
                "strength": float(s),
                "ndcg": round(float(ndcg.mean()), 6),
                "max_gap": None if gaps.get(attribute) is None else round(gaps[attribute], 6),  # type: ignore[arg-type]
                "coverage": round(coverage(recs, n_items, k), 6),
                "gaps": {a: (None if g is None else round(g, 6)) for a, g in gaps.items()},
            }
        )
    return points


def audit_frames(
    events: pl.DataFrame,
    catalog: pl.DataFrame,
    customers: pl.DataFrame,
    *,
    config: AuditConfig = AuditConfig(),
    thresholds: ThresholdVersion = DEFAULT_VERSION,
    model: Recommender | None = None,
    model_version: str | None = None,
    source: str = "store",
    reasons: ReasonFactory | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    served: tuple[np.ndarray, np.ndarray] | None = None,
) -> AuditRun:
    """Run the whole audit on frames.

    ``events``: customer_id, item_id, event_type, ts (or timestamp), value;
    ``catalog``: item_id + item columns; ``customers``: customer_id + attribute
    columns. ``model``: an already fitted recommender trained only on events
    up to the cutoff (None: one is trained here with ``config.recommender``).
    ``served``: the cohort's lists already served by ``model`` under the
    thresholds' policy, ``(item indices customers x k, fallback flags)`` in
    cohort order (the scale benchmark passes them to time the rest alone).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    known = [c for c in customers.columns if c != "customer_id"]
    wanted = [*(config.sensitive or ()), *(a for combo in config.intersections for a in combo)]
    for name in wanted:  # fail before training, not after
        if name not in customers.columns and name not in ("activity", "activity_quintile", "tenure"):
            raise AuditInputError(UNKNOWN_ATTRIBUTE.format(name=name, known=", ".join(known) or "none"))
    settings = thresholds.settings
    k = config.k or settings.audit.k
    if events.height == 0:
        raise AuditInputError(NO_EVENTS)
    split = audit_split(
        events, cutoff_days=config.cutoff_days, test_fraction=config.test_fraction, seed=config.seed,
        kind=config.split,
    )
    if split.train.height == 0 or split.test.height == 0:
        raise AuditInputError(NO_OUTCOMES)
    if model is None:
        rc = config.recommender or RecommenderConfig()
        if split.kind == "random" and rc.label_split == "auto":
            # the ranker's labels are held out the way the audit's truth is (as recsys.evaluation does)
            rc = replace(rc, label_split="random")
        inter = Interactions.from_events(split.train, catalog=catalog)
        model = Recommender(rc).fit(inter, progress=progress)
    timings["train"] = time.perf_counter() - t0
    vocab = model.stage_.interactions.items
    truth = audit_truth(split, discovery=model.config.mode == "discovery")
    if config.max_customers is not None:
        truth = truth.sample(config.max_customers, seed=config.seed)
    if len(truth) == 0:
        raise AuditInputError(NO_OUTCOMES)
    items = ItemInfo.build(vocab, catalog, split.train)
    relevance = truth.relevance(vocab)
    policy = settings.policy.serving_policy()
    t1 = time.perf_counter()
    cohort = list(truth.customer_ids)
    served_reasons = None
    if served is not None:
        recs, fallback = served
    else:
        reason_fn = reasons(model) if reasons is not None else None
        recs, fallback, served_reasons = recommend_cohort(
            model, cohort, k=k, policy=policy, reason_types=reason_fn, progress=progress
        )
    outcomes: Outcomes = outcomes_from_recs(cohort, recs, fallback, relevance, items, k=k, reasons=served_reasons)
    timings["recommend"] = time.perf_counter() - t1

    sensitive = tuple(config.sensitive) if config.sensitive is not None else ()
    group_cfg = GroupConfig(sensitive=sensitive, intersections=config.intersections)
    groups = build_groups(customers, truth.customer_ids, split.train, config=group_cfg, cutoff=split.cutoff)
    t2 = time.perf_counter()
    results: list[MetricResult] = assess(outcomes.frame, groups, metrics=outcomes.metrics, settings=settings.audit, seed=config.seed)
    exposure = item_exposure(outcomes.recs, relevance, items, settings=settings.audit, seed=config.seed)
    timings["statistics"] = time.perf_counter() - t2

    sweep = None
    if config.sweep:
        t3 = time.perf_counter()
        if config.sweep_attribute not in groups.attributes:
            raise AuditInputError(
                f"sweep attribute '{config.sweep_attribute}' is not among the audit's groups "
                f"({', '.join(groups.attributes)})"
            )
        sweep = run_sweep(
            model, cohort, relevance, items, groups, k=k,
            strengths=config.sweep_strengths, min_score=policy.min_score,
            attribute=config.sweep_attribute, min_group_size=settings.audit.min_group_size, progress=progress,
            served=(policy.rerank_strength, recs, fallback),
        )
        timings["sweep"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0

    created = (now or datetime.now(UTC)).astimezone(UTC)
    ev_ts = split.train["ts"].drop_nulls()
    test_ts = split.test["ts"].drop_nulls()
    all_ts = pl.concat([ev_ts, test_ts])
    statuses = [r.status for r in results if r.judged]
    status = worst(statuses)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": new_report_id(created),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "model_version": model_version,
        "audit_model": {
            "description": (
                f"{model.config.mode} recommender trained on the {split.train.height:,} events up to the cutoff"
                if split.kind == "temporal"
                else f"{model.config.mode} recommender trained on all but a seeded {config.test_fraction:.0%} hold-out of each customer's events"
            ),
            "mode": model.config.mode,
            "seed": model.config.seed,
            "cutoff_iso": datetime.fromtimestamp(split.cutoff, UTC).isoformat().replace("+00:00", "Z") if split.cutoff is not None else None,
        },
        "cohort_size": len(truth),
        "k": k,
        "status": "pass" if status == "too_small" else status,
        "thresholds_version": thresholds.version,
        "thresholds": settings.model_dump(mode="json"),
        "policy": {"min_score": policy.min_score, "rerank_strength": policy.rerank_strength},
        "groups": groups.definitions,
        "data": {
            "source": source,
            "events": split.train.height + split.test.height,
            "customers": int(pl.concat([split.train["customer_id"], split.test["customer_id"]]).n_unique()),
            "items": len(vocab),
            "first_ts": int(all_ts.min()) if all_ts.len() else None,  # type: ignore[arg-type]
            "last_ts": int(all_ts.max()) if all_ts.len() else None,  # type: ignore[arg-type]
            "split": split.kind,
            "cutoff": split.cutoff,
            "cutoff_days": config.cutoff_days if split.kind == "temporal" else None,
            "train_events": split.train.height,
            "test_events": split.test.height,
        },
        "metrics": [r.as_dict() for r in results],
        "item_exposure": exposure,
        "statistics": {
            "method": "percentile bootstrap, customers resampled within each group",
            "resamples": settings.audit.resamples,
            "confidence": settings.audit.confidence,
            "seed": config.seed,
            "min_group_size": settings.audit.min_group_size,
            "metric_frame": "fairlearn.metrics.MetricFrame",
            # judged (attribute, metric) pairs that got a verdict; 0 means the status
            # "pass" only says that no group was large enough to judge
            "verdicts": sum(1 for s_ in statuses if s_ != "too_small"),
        },
        "timings": {k_: round(v, 3) for k_, v in timings.items()},
    }
    if sweep is not None:
        report["sweep"] = sweep
        report["sweep_attribute"] = config.sweep_attribute
        report["sweep_metric"] = f"ndcg@{k}"
    validate_report(report)
    table = groups.frame.join(outcomes.frame, on="customer_id", how="left", maintain_order="left")
    return AuditRun(report=report, outcomes=table, group_attributes=groups.attributes, metrics=outcomes.metrics, model=model)
