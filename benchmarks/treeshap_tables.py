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
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from _timing import (
    add_world_arguments,
    interleaved,
    known_sample,
    timed,
    world_from_arguments,
    write_result,
)
from _timing import percentiles as _percentiles


def percentiles(ms: list[float]) -> dict[str, float]:
    return _percentiles(ms, digits=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_arguments(ap)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each kind per list")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/treeshap_tables_demo.json"))
    args = ap.parse_args()

    model, inter, name = world_from_arguments(args)
    ranker = model.ranker_

    tables, build_s = timed(lambda: ranker.shap_tables_)
    if tables is None:
        sys.exit("this ranker cannot be tabulated (categorical or linear trees, or too deep paths)")
    # the first call compiles the kernel
    _, compile_s = timed(lambda: ranker.contributions(np.zeros((1, len(ranker.feature_names_)), np.float32)))

    sample = known_sample(inter, args.customers)
    lists = []
    for c in sample:
        ranked = model.recommend(str(c), args.k)
        if ranked.status == "known" and ranked.items:
            lists.append((np.stack([it.features for it in ranked.items]), np.array([it.score for it in ranked.items])))
    base_ms: list[float] = []
    tables_ms: list[float] = []
    max_diff = max_err_tables = max_err_lightgbm = 0.0
    for rows, scores in lists:
        theirs, ours = interleaved(
            ranker.lightgbm_contributions, ranker.contributions, rows, args.repeats, base_ms, tables_ms
        )
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
