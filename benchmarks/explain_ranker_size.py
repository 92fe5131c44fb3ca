"""Benchmark: what a smaller ranker saves in TreeSHAP time, and what it costs in NDCG.

For each ranker shape, fits clearshelf on the temporal split ``clearshelf
evaluate`` uses (20% held out, seed 42, discovery, no content source), scores
NDCG@10 on the test period, and times, for the first 60 evaluated customers,
TreeSHAP of their top 10 rows, the ranker's plain predict of the same rows and
recommend(). Writes JSON (one entry per shape).

    python benchmarks/explain_ranker_size.py --dataset movielens-100k --path ../shared/data/ml-100k \
        --out benchmarks/results/explain_ranker_size_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from recsys.data.datasets import load_dataset
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.runner import evaluate_models
from recsys.evaluation.splits import SplitConfig, make_split, normalise_events
from recsys.recommender import Filters, RecommenderConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"], required=True)
    ap.add_argument("--path", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = load_dataset(args.dataset, args.path)
    split = make_split(normalise_events(ds.events), SplitConfig(kind="temporal", test_fraction=0.2, seed=42))
    level2, level3 = dataset_hierarchy(args.dataset)
    base = RecommenderConfig(level2_column=level2, level3_column=level3, mode="discovery", content=None)
    shapes = {
        "80 trees x 15 leaves (default)": base.ranker,
        "40 trees x 15 leaves": replace(base.ranker, n_estimators=40),
        "80 trees x 15 leaves, max depth 4": replace(base.ranker, extra={"max_depth": 4}),
        "80 trees x 7 leaves": replace(base.ranker, num_leaves=7),
        "50 trees x 7 leaves": replace(base.ranker, n_estimators=50, num_leaves=7),
    }
    filters = Filters(exclude_purchased=True, allow_repeats=False)
    out = []
    for name, ranker in shapes.items():
        fitted: list[ClearshelfModel] = []

        def make(ranker: Any = ranker, fitted: list[ClearshelfModel] = fitted) -> ClearshelfModel:
            fitted.append(ClearshelfModel(replace(base, ranker=ranker)))
            return fitted[-1]

        result = evaluate_models(split, {"clearshelf": make}, k=10, discovery=True, catalog=ds.items)
        model = fitted[-1].model_
        customers = result.customer_ids[:60]
        shap_t, pred_t, rec_t = [], [], []
        for c in customers:
            t0 = time.perf_counter()
            ranked = model.recommend(c, 10, filters=filters)
            rec_t.append(time.perf_counter() - t0)
            rows = np.stack([it.features for it in ranked.items])
            t1 = time.perf_counter()
            model.ranker_.contributions(rows)
            t2 = time.perf_counter()
            model.ranker_.predict(rows)
            shap_t.append(t2 - t1)
            pred_t.append(time.perf_counter() - t2)
        entry = {
            "ranker": name,
            "ndcg@10": result.models["clearshelf"].metrics["ndcg@10"],
            "treeshap_10_rows_p50_ms": float(np.median(shap_t) * 1e3),
            "predict_10_rows_p50_ms": float(np.median(pred_t) * 1e3),
            "recommend_p50_ms": float(np.median(rec_t) * 1e3),
        }
        print(json.dumps(entry), flush=True)
        out.append(entry)
    doc = {"benchmark": "explain_ranker_size", "dataset": args.dataset, "shapes": out,
           "command": " ".join(["python", "benchmarks/explain_ranker_size.py", *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
