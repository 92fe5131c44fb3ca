"""Benchmark: the ranker's TreeSHAP by path tables against LightGBM's own ``pred_contrib``.

Trains clearshelf (demo world by default, or a real dataset), or loads the
active model of a clearshelf home (``--home``), builds the ranker's path
tables (:mod:`recsys.ranking.treeshap`, timing the build and the kernel's
compilation apart), then for a seeded sample of known customers takes the
features of their top ``k`` and times, interleaved on the same rows:

- baseline: ``LambdaRanker.lightgbm_contributions`` (LightGBM's TreeSHAP);
- tables: ``LambdaRanker.contributions`` (what the explainer calls).

Reports p50/p99 of each, the ratio of medians, and the largest absolute
difference between the two (and of each against the ranker's scores:
additivity). Writes JSON.

    python benchmarks/treeshap_tables.py --out benchmarks/results/treeshap_tables_demo.json
    python benchmarks/treeshap_tables.py --home /tmp/clearshelf/cj_home \
        --out benchmarks/results/treeshap_tables_completejourney.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from _timing import fit_world, write_result
from _timing import percentiles as _percentiles


def percentiles(ms: list[float]) -> dict[str, float]:
    return _percentiles(ms, digits=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"])
    ap.add_argument("--path", type=Path)
    ap.add_argument("--home", type=Path, help="a clearshelf home: time its active model instead of training")
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each kind per list")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/treeshap_tables_demo.json"))
    args = ap.parse_args()

    if args.home:
        from recsys.bundle import ModelRegistry

        registry = ModelRegistry(args.home / "models")
        version = registry.active_version()
        if version is None:
            sys.exit(f"{args.home} has no active model: run `clearshelf train` first")
        model, _ = registry.load(version)
        inter, name = model.stage_.interactions, f"home:{version}"
    else:
        world = fit_world(args.dataset, args.path, cache_dir=args.cache_dir)
        model, inter, name = world.model, world.interactions, world.name
    ranker = model.ranker_

    started = time.perf_counter()
    tables = ranker.shap_tables_
    build_s = time.perf_counter() - started
    if tables is None:
        sys.exit("this ranker cannot be tabulated (categorical or linear trees, or too deep paths)")
    started = time.perf_counter()
    ranker.contributions(np.zeros((1, len(ranker.feature_names_)), np.float32))  # compiles the kernel
    compile_s = time.perf_counter() - started

    rng = np.random.default_rng(42)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    sample = rng.choice(known, min(args.customers, len(known)), replace=False).tolist()
    lists = []
    for c in sample:
        ranked = model.recommend(str(c), args.k)
        if ranked.status == "known" and ranked.items:
            lists.append((np.stack([it.features for it in ranked.items]), np.array([it.score for it in ranked.items])))
    base_ms: list[float] = []
    tables_ms: list[float] = []
    max_diff = max_err_tables = max_err_lightgbm = 0.0
    for rows, scores in lists:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            theirs = ranker.lightgbm_contributions(rows)
            t1 = time.perf_counter()
            ours = ranker.contributions(rows)
            t2 = time.perf_counter()
            base_ms.append((t1 - t0) * 1000)
            tables_ms.append((t2 - t1) * 1000)
        max_diff = max(max_diff, float(np.abs(ours - theirs).max()))
        max_err_tables = max(max_err_tables, float(np.abs(ours.sum(axis=1) - scores).max()))
        max_err_lightgbm = max(max_err_lightgbm, float(np.abs(theirs.sum(axis=1) - scores).max()))
    booster = ranker.booster_
    result = {
        "benchmark": "treeshap_tables",
        "dataset": name,
        "k": args.k,
        "lists_timed": len(lists),
        "calls_per_list": args.repeats,
        "ranker": {"trees": booster.num_trees(), "leaves": len(tables.leaf_edge),
                   "splits": len(tables.split_feature),
                   "max_unique_features_per_path": int(np.diff(tables.leaf_start).max())},
        "tables": {"megabytes": round(tables.table.nbytes / 1e6, 3), "build_seconds": round(build_s, 3),
                   "kernel_compile_seconds": round(compile_s, 3)},
        "lightgbm_pred_contrib": percentiles(base_ms),
        "path_tables": percentiles(tables_ms),
        "ratio_p50_lightgbm_to_tables": round(float(np.median(base_ms) / np.median(tables_ms)), 3),
        "max_abs_difference": max_diff,
        "max_additivity_error": {"tables": max_err_tables, "lightgbm": max_err_lightgbm},
        "command": " ".join(["python", "benchmarks/treeshap_tables.py", *sys.argv[1:]]),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
