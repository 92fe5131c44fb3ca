"""Benchmark: in-process `recommend()` latency, one customer at a time, k=10, no explanations.

Trains clearshelf on the demo world (default) or a real dataset, then times
`Recommender.recommend` for a seeded sample of known customers, and, as the
baseline in the same run, a bare ALS top-10 (`AlsRetriever.candidates`) for
the same customers: the floor of any single-source recommender. Reports
p50/p99 and the ratio of medians. Writes JSON.

    python benchmarks/recommend_latency.py --out benchmarks/results/recommend_latency_demo.json
    python benchmarks/recommend_latency.py --dataset completejourney --path ../shared/data/completejourney \
        --out benchmarks/results/recommend_latency_cj.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from recsys.data.demo import DemoConfig, generate_demo
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.splits import normalise_events
from recsys.interactions import Interactions
from recsys.recommender import Recommender, RecommenderConfig


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"])
    ap.add_argument("--path", type=Path)
    ap.add_argument("--customers", type=int, default=500)
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recommend_latency_demo.json"))
    args = ap.parse_args()
    if args.dataset:
        from recsys.data.datasets import load_dataset

        ds = load_dataset(args.dataset, args.path)
        events, catalog, name = ds.events, ds.items, args.dataset
    else:
        demo = generate_demo(DemoConfig())
        events, catalog, name = demo.events, demo.items, "demo"
    level2, level3 = dataset_hierarchy(name)
    config = RecommenderConfig(level2_column=level2, level3_column=level3)
    from dataclasses import replace

    config = replace(config, content=replace(config.content, cache_dir=str(args.cache_dir)))  # type: ignore[arg-type]
    inter = Interactions.from_events(normalise_events(events), catalog=catalog)
    started = time.perf_counter()
    model = Recommender(config).fit(inter)
    train_s = time.perf_counter() - started
    rng = np.random.default_rng(42)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    sample = rng.choice(known, min(args.customers, len(known)), replace=False).tolist()
    for c in sample[:20]:  # warm caches
        model.recommend(c, 10)
    ours, base = [], []
    als = model.stage_.retrievers["als"]
    for c in sample:
        t = time.perf_counter()
        model.recommend(c, 10)
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        als.candidates(c, 10, exclude=inter.history(c))
        base.append((time.perf_counter() - t) * 1000)
    result = {
        "benchmark": "recommend_latency_in_process",
        "dataset": name,
        "customers_timed": len(sample),
        "k": 10,
        "train_seconds": round(train_s, 1),
        "clearshelf": percentiles(ours),
        "baseline_als_top10": percentiles(base),
        "ratio_p50": float(np.percentile(ours, 50) / np.percentile(base, 50)),
        "targets": {"p50_ms": 5, "p99_ms": 20},
        "command": " ".join(["python", "benchmarks/recommend_latency.py", *os.sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
