"""Benchmark: in-process `recommend()` latency, one customer at a time, k=10, no explanations.

Trains clearshelf on the demo world (default) or a real dataset, then times
`Recommender.recommend` for a seeded sample of known customers, and, as the
baseline in the same run, a bare ALS top-10 (`AlsRetriever.candidates`) for
the same customers: the floor of any single-source recommender. Reports
p50/p99 of wall time and of the calling thread's CPU time (the machine is
shared: CPU time is what contention inflates least) per timing pass, the
medians over ``--repeats`` passes and the ratio of medians. ``--model``
times a pickled model instead of training one. Writes JSON.

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
from _timing import fit_world
from _timing import percentiles as _percentiles


def percentiles(ms: list[float]) -> dict[str, float]:
    return _percentiles(ms, digits=3)


def timed(fn: object, customers: list[str]) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for c in customers:
        t, ct = time.perf_counter(), time.thread_time()
        fn(c)  # type: ignore[operator]
        cpu.append((time.thread_time() - ct) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def median_of(passes: list[dict[str, float]], key: str) -> float:
    return round(float(np.median([p[key] for p in passes])), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"])
    ap.add_argument("--path", type=Path)
    ap.add_argument("--customers", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3, help="timing passes over the sample")
    ap.add_argument("--model", type=Path, help="a pickled fitted Recommender to time instead of training")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recommend_latency_demo.json"))
    args = ap.parse_args()
    train_s = None
    if args.model is not None:
        import pickle

        with args.model.open("rb") as fh:
            model = pickle.load(fh)
        inter = model.stage_.interactions
        name = args.dataset or "pickled"
    else:
        world = fit_world(args.dataset, args.path, cache_dir=args.cache_dir)
        model, inter, name = world.model, world.interactions, world.name
        train_s = round(world.train_seconds, 1)
    rng = np.random.default_rng(42)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    sample = rng.choice(known, min(args.customers, len(known)), replace=False).tolist()
    for c in sample[:20]:  # warm caches
        model.recommend(c, 10)
    als = model.stage_.retrievers["als"]
    load_before = os.getloadavg()
    passes = []
    for _ in range(args.repeats):
        ours_wall, ours_cpu = timed(lambda c: model.recommend(c, 10), sample)
        base_wall, base_cpu = timed(lambda c: als.candidates(c, 10, exclude=inter.history(c)), sample)
        passes.append({
            "clearshelf_wall": percentiles(ours_wall), "clearshelf_cpu": percentiles(ours_cpu),
            "baseline_wall": percentiles(base_wall), "baseline_cpu": percentiles(base_cpu),
        })
    flat = [{f"{k}_{q}": v for k, d in p.items() for q, v in d.items()} for p in passes]
    summary = {key: median_of(flat, key) for key in flat[0]}
    result = {
        "benchmark": "recommend_latency_in_process",
        "dataset": name,
        "customers_timed": len(sample),
        "k": 10,
        "repeats": args.repeats,
        "train_seconds": train_s,
        "ranker_trees": sum(b.num_trees() for b in model.ranker_.boosters_),
        "median_over_passes": summary,
        "ratio_p50_wall": round(summary["clearshelf_wall_p50_ms"] / summary["baseline_wall_p50_ms"], 2),
        "ratio_p50_cpu": round(summary["clearshelf_cpu_p50_ms"] / summary["baseline_cpu_p50_ms"], 2),
        "passes": passes,
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2), "cores": os.cpu_count()},
        "targets": {"p50_ms": 5, "p99_ms": 20},
        "command": " ".join(["python", "benchmarks/recommend_latency.py", *os.sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
