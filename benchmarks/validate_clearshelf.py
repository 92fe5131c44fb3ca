"""Tune clearshelf's own levers on the VALIDATION split only (never the test split).

Carves the validation split out of the training part of the evaluation split
(the same way the baselines are tuned: `recsys.evaluation.splits.validation_split`),
then fits clearshelf variants and the tuned best baselines (parameters taken
from an earlier results JSON, themselves chosen on validation) on the
validation-train part and scores everyone on the validation customers.
Writes JSON with NDCG@10 per model and each variant's ratio to the best baseline.

    python benchmarks/validate_clearshelf.py --dataset completejourney \
        --path ../shared/data/completejourney --variants default,w2s3 \
        --params-from benchmarks/results/evaluate_completejourney_temporal.json \
        --out benchmarks/results/validate_completejourney.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recsys.evaluation.baselines import baseline_models
from recsys.evaluation.job import dataset_hierarchy, tuned_sources
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.runner import compare, evaluate_models
from recsys.evaluation.splits import SplitConfig, make_split, normalise_events, validation_split
from recsys.ranking.ranker import RankerConfig
from recsys.recommender import CandidateCounts, RecommenderConfig


def variants(base: RecommenderConfig, params: dict[str, dict[str, Any]]) -> dict[str, RecommenderConfig]:
    """Named candidate configurations (levers named in issue 3).

    ``tuned*`` variants take the sources' settings from the baselines'
    validation tuning (as ``clearshelf evaluate`` does).
    """
    three = RankerConfig(n_estimators=33, seeds=(42, 43, 44))
    tuned = tuned_sources(base, params)
    return {
        "tuned": tuned,
        "tuned_w2s3": replace(tuned, label_windows=2, ranker=three),
        "tuned_w2": replace(tuned, label_windows=2),
        "c200": replace(base, candidates=CandidateCounts(als=200, ease=200, copurchase=100, content=40, popularity=30)),
        "tuned_c200": replace(
            tuned, candidates=CandidateCounts(als=200, ease=200, copurchase=100, content=40, popularity=30)
        ),
        "leaves31": replace(base, ranker=replace(base.ranker, num_leaves=31, min_child_samples=20)),
        "w1s1": replace(base, label_windows=1, ranker=RankerConfig()),
        "default": base,
        "w2": replace(base, label_windows=2),
        "s3": replace(base, ranker=three),
        "w2s3": replace(base, label_windows=2, ranker=three),
        "w2s3c": replace(
            base, label_windows=2, ranker=three,
            candidates=CandidateCounts(als=150, ease=150, copurchase=60, content=30, buy_again=40, popularity=20),
        ),
        "w2s3_noease_cap": replace(base, label_windows=2, ranker=three, max_training_customers=6000),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"], required=True)
    ap.add_argument("--path", type=Path, required=True)
    ap.add_argument("--split", choices=["temporal", "random"], default="temporal")
    ap.add_argument("--variants", default="default,w2s3")
    ap.add_argument("--baselines", default="ease,als")
    ap.add_argument("--params-from", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--no-content", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from recsys.data.datasets import load_dataset

    ds = load_dataset(args.dataset, args.path)
    ev = normalise_events(ds.events)
    split = make_split(ev, SplitConfig(kind=args.split, test_fraction=0.2, seed=42))
    val = validation_split(split)  # the test part of `split` is never read below
    level2, level3 = dataset_hierarchy(args.dataset)
    base = RecommenderConfig(
        level2_column=level2, level3_column=level3, mode="discovery",
        label_split="random" if args.split == "random" else "auto",  # as `clearshelf evaluate` does
    )
    if args.no_content:
        base = replace(base, content=None)
    else:
        base = replace(base, content=replace(base.content, cache_dir=str(args.cache_dir)))  # type: ignore[arg-type]
    params = json.loads(args.params_from.read_text())["baseline_params"]
    names = args.baselines.split(",")
    models: dict[str, Any] = dict(baseline_models({n: params[n] for n in names}, seed=42))
    all_variants = variants(base, params)
    for v in args.variants.split(","):
        models[f"clearshelf_{v}"] = (lambda c: lambda: ClearshelfModel(c))(all_variants[v])
    started = time.perf_counter()
    result = evaluate_models(val, models, k=10, discovery=True, catalog=ds.items, progress=print)
    best = max(names, key=lambda n: result.models[n].metrics["ndcg@10"])
    out: dict[str, Any] = {
        "benchmark": "clearshelf_validation_tuning",
        "dataset": args.dataset,
        "split": f"validation carved from the {args.split} split's 80% training part, the same way",
        "customers": len(result.customer_ids),
        "ndcg@10": {n: round(m.metrics["ndcg@10"], 5) for n, m in result.models.items()},
        "train_seconds": {n: round(m.metrics["train_seconds"], 1) for n, m in result.models.items()},
        "best_baseline": best,
        "ratios": {},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "command": " ".join(["python", "benchmarks/validate_clearshelf.py", *os.sys.argv[1:]]),
    }
    for n in result.models:
        if n.startswith("clearshelf_"):
            c = compare(result, n, baseline=best)
            out["ratios"][n] = {"ratio": round(c.ratio, 4), "low": round(c.low, 4), "high": round(c.high, 4)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
