"""Benchmark: the fairness audit's statistics on 100,000 generated customers.

What is timed, separately:

- ``train``: fitting the audit model on the generated world's events up to the
  cutoff (not part of the 60 s target; reported for context);
- ``recommend``: serving every cohort customer's top-k through
  ``Recommender.recommend`` (once; reported, not part of the target);
- ``report_with_served_lists_seconds``: ``audit_frames`` end to end given
  the model and the served lists (split, truth, outcomes, groups, statistics,
  exposure, validated report), once;
- ``statistics`` (the target, <= 60 s): per-customer outcome metrics from the
  served lists, groups (3 sensitive attributes + activity, activity quintiles,
  tenure + one intersection), Fairlearn MetricFrame per attribute, the
  within-group bootstrap (1,000 resamples) for every group, gap and metric,
  item-side exposure. Median of ``--repeats`` runs. The cohort is the
  generated customers with a purchase after the cutoff (about 60% of them);
  ``scaled_cohort`` times the same statistics on exactly ``--cohort-rows``
  (100,000) customers, drawn with replacement from the real cohort.
- baseline, same data, same run: Fairlearn's own bootstrap
  (``MetricFrame(n_boot=...)``) for ONE attribute and the three quality
  metrics, with ``--baseline-resamples`` resamples; its per-resample cost is
  scaled to 1,000 resamples and compared with ours per (attribute x metric).

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/audit_scale.py --customers 100000 --days 30

writes ``benchmarks/results/audit_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlearn.metrics import MetricFrame  # noqa: E402

from fairness.audit import AuditConfig, audit_frames  # noqa: E402
from fairness.exposure import item_exposure  # noqa: E402
from fairness.groups import GroupConfig, build_groups  # noqa: E402
from fairness.outcomes import (  # noqa: E402
    ItemInfo,
    audit_split,
    audit_truth,
    outcomes_from_recs,
    recommend_cohort,
)
from fairness.report import render_html  # noqa: E402
from fairness.stats import assess  # noqa: E402
from fairness.thresholds import ThresholdSettings  # noqa: E402
from recsys.data.demo import DemoConfig, generate_demo  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.ranking.ranker import RankerConfig  # noqa: E402
from recsys.recommender import Recommender, RecommenderConfig  # noqa: E402
from recsys.retrieval.als import AlsConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--cutoff-days", type=float, default=7.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-resamples", type=int, default=20)
    ap.add_argument("--cohort-rows", type=int, default=100_000,
                    help="also time the statistics on a cohort of exactly this many rows, drawn (seeded, with "
                         "replacement) from the real cohort's served lists, truth and groups")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "audit_scale.json")
    args = ap.parse_args()

    t = time.perf_counter()
    data = generate_demo(DemoConfig(customers=args.customers, items=args.items, days=args.days, seed=7))
    events = data.events.with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.epoch("s").alias("ts")
    )
    generate_s = time.perf_counter() - t
    print(f"generated {data.customers.height:,} customers, {events.height:,} events in {generate_s:.1f} s", flush=True)

    split = audit_split(events, cutoff_days=args.cutoff_days)
    config = RecommenderConfig(
        als=AlsConfig(factors=32, iterations=10), content=None, ranker=RankerConfig(n_estimators=100),
        label_window_days=args.cutoff_days,
    )
    t = time.perf_counter()
    inter = Interactions.from_events(split.train, catalog=data.items)
    model = Recommender(config).fit(inter)
    train_s = time.perf_counter() - t
    print(f"trained in {train_s:.1f} s", flush=True)

    truth = audit_truth(split, discovery=False)
    customers = list(truth.customer_ids)
    t = time.perf_counter()
    recs, fallback, _ = recommend_cohort(model, customers, k=10)
    recommend_s = time.perf_counter() - t
    print(f"served {len(customers):,} lists in {recommend_s:.1f} s", flush=True)

    settings = ThresholdSettings()
    relevance = truth.relevance(inter.items)
    items = ItemInfo.build(inter.items, data.items, split.train)
    group_cfg = GroupConfig(sensitive=data.sensitive, intersections=(("age_band", "gender"),))

    def statistics_pass() -> tuple[float, dict[str, float], dict]:
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        out = outcomes_from_recs(customers, recs, fallback, relevance, items, k=10)
        stages["outcomes"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        groups = build_groups(data.customers, customers, split.train, config=group_cfg, cutoff=split.cutoff)
        stages["groups"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        results = assess(out.frame, groups, metrics=out.metrics, settings=settings.audit)
        stages["metricframe_and_bootstrap"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        exposure = item_exposure(recs, relevance, items, settings=settings.audit)
        stages["exposure"] = time.perf_counter() - t3
        report_stub = {"n_results": len(results), "n_attributes": len(groups.attributes), "metrics": list(out.metrics),
                       "exposure": exposure is not None}
        return time.perf_counter() - t0, stages, report_stub

    runs = [statistics_pass() for _ in range(args.repeats)]
    totals = [r[0] for r in runs]
    print("statistics passes (s):", [round(x, 2) for x in totals], flush=True)

    # A cohort of exactly --cohort-rows customers: rows of the real cohort drawn with replacement
    # (lists, truth and group labels travel together), so the statistics see 100,000 customers.
    pick = np.random.default_rng(11).integers(0, len(customers), size=args.cohort_rows)
    big_customers = [f"{customers[i]}#{j}" for j, i in enumerate(pick)]
    big_recs, big_fallback, big_rel = recs[pick], fallback[pick], relevance[pick]
    base_groups = build_groups(data.customers, customers, split.train, config=group_cfg, cutoff=split.cutoff)
    big_groups = type(base_groups)(
        frame=base_groups.frame[pick].with_columns(pl.Series("customer_id", big_customers)),
        attributes=base_groups.attributes, definitions=base_groups.definitions,
    )

    def scaled_pass() -> float:
        t0 = time.perf_counter()
        out = outcomes_from_recs(big_customers, big_recs, big_fallback, big_rel, items, k=10)
        assess(out.frame, big_groups, metrics=out.metrics, settings=settings.audit)
        item_exposure(big_recs, big_rel, items, settings=settings.audit)
        return time.perf_counter() - t0

    scaled = [scaled_pass() for _ in range(args.repeats)]
    print(f"statistics on {args.cohort_rows:,} rows (s):", [round(x, 2) for x in scaled], flush=True)

    # The whole report as the product builds it (split, truth, outcomes, groups, statistics,
    # exposure, validated JSON), with the lists served above, then the HTML page.
    t = time.perf_counter()
    run = audit_frames(events, data.items, data.customers, config=AuditConfig(cutoff_days=args.cutoff_days,
                       sensitive=data.sensitive, intersections=(("age_band", "gender"),)), model=model,
                       served=(recs, fallback))
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    page = render_html(run.report)
    html_s = time.perf_counter() - t

    # Baseline: Fairlearn's bootstrap on one attribute, the three quality metrics.
    frame = run.outcomes
    qual = [m for m in run.metrics if m.split("@")[0] in ("ndcg", "recall", "hr")]
    idx = np.arange(frame.height)
    cols = {m: frame[m].to_numpy() for m in qual}
    metric_fns = {m: (lambda yt, yp, v=cols[m]: float(np.mean(v[yt.astype(int)]))) for m in qual}
    sf = pd.Series(frame["age_band"].to_numpy(), name="age_band")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MetricFrame(metrics=metric_fns, y_true=idx, y_pred=idx, sensitive_features=sf,
                    n_boot=args.baseline_resamples, ci_quantiles=[0.025, 0.975], random_state=1)
    baseline_s = time.perf_counter() - t
    baseline_per_1000 = baseline_s / args.baseline_resamples * 1000
    n_pairs = len(run.group_attributes) * len(run.metrics)
    ours_per_pair = statistics.median([r[1]["metricframe_and_bootstrap"] for r in runs]) / n_pairs
    baseline_per_pair = baseline_per_1000 / len(qual)

    result = {
        "benchmark": "audit_scale",
        "created_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu_count_visible": __import__("os").cpu_count(),
                    "note": "2 cores shared with other jobs"},
        "data": {"customers": data.customers.height, "events": events.height, "items": data.items.height,
                 "cohort": len(customers), "days": args.days, "cutoff_days": args.cutoff_days},
        "timed_target": "statistics: outcome metrics + groups + MetricFrame + 1,000-resample bootstrap + exposure",
        "statistics_seconds_median": round(statistics.median(totals), 2),
        "statistics_seconds_runs": [round(x, 2) for x in totals],
        "statistics_stages_median": {k: round(statistics.median([r[1][k] for r in runs]), 3) for k in runs[0][1]},
        "attributes": run.group_attributes,
        "metrics": list(run.metrics),
        "scaled_cohort": {
            "rows": args.cohort_rows,
            "what": "outcome metrics + MetricFrame + bootstrap + exposure on the real cohort's rows drawn with "
                    "replacement up to this many customers (groups carried over, not rebuilt)",
            "seconds_median": round(statistics.median(scaled), 2),
            "seconds_runs": [round(x, 2) for x in scaled],
            "meets_target": statistics.median(scaled) <= 60,
        },
        "resamples": settings.audit.resamples,
        "target_seconds": 60,
        "meets_target": statistics.median(totals) <= 60,
        "not_in_target": {"generate_seconds": round(generate_s, 1), "train_seconds": round(train_s, 1),
                          "recommend_seconds": round(recommend_s, 1),
                          "recommend_ms_per_customer": round(recommend_s / len(customers) * 1000, 3),
                          "report_with_served_lists_seconds": round(full_s, 1),
                          "html_render_seconds": round(html_s, 3), "html_bytes": len(page)},
        "baseline": {
            "what": f"fairlearn MetricFrame(n_boot={args.baseline_resamples}) on age_band x {len(qual)} quality metrics",
            "seconds": round(baseline_s, 2),
            "seconds_scaled_to_1000_resamples": round(baseline_per_1000, 1),
            "per_attribute_metric_pair_seconds_at_1000": round(baseline_per_pair, 3),
            "ours_per_attribute_metric_pair_seconds_at_1000": round(ours_per_pair, 4),
            "speedup": round(baseline_per_pair / ours_per_pair, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
