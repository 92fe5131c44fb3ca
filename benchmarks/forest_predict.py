"""Benchmark: the ranker's scores by its compiled trees against LightGBM's own ``predict``.

Trains clearshelf (demo world by default, or a real dataset), or loads the
active model of a clearshelf home (``--home``), then for a seeded sample of
known customers builds their candidate rows as ``recommend()`` does and
times, interleaved on the same rows:

- baseline: ``LambdaRanker.lightgbm_predict`` (``Booster.predict``);
- compiled: ``LambdaRanker.predict`` (the trees as arrays, a numba loop:
  :mod:`recsys.ranking.forest`, what ``recommend()`` and the explainer's
  check call);

on two row sets per customer: every candidate (what ``recommend()``
scores) and 88 of them (what the check scores for 8 removals of an
11-row list). Reports p50/p99 of each, the ratio of medians, and whether
the scores were equal bit for bit. Writes JSON.

    python benchmarks/forest_predict.py --out benchmarks/results/forest_predict_demo.json
    python benchmarks/forest_predict.py --home /tmp/clearshelf/cj_home \
        --out benchmarks/results/forest_predict_completejourney.json
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
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each kind per row set")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/forest_predict_demo.json"))
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
    forest = ranker.forest_
    build_s = time.perf_counter() - started
    if forest is None:
        sys.exit("this ranker has categorical or linear trees: it is scored by LightGBM")
    started = time.perf_counter()
    ranker.predict(np.zeros((1, len(ranker.feature_names_)), np.float32))  # compiles the loop
    compile_s = time.perf_counter() - started

    rng = np.random.default_rng(42)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    sample = rng.choice(known, min(args.customers, len(known)), replace=False).tolist()
    sets: dict[str, list[np.ndarray]] = {"candidates": [], "check_88_rows": []}
    for c in sample:
        history = model._history(str(c))
        if history is None:
            continue
        cs = model.stage_.candidates(str(c), allow_repeats=True, category=None, now=None, history=history)
        if cs is None or not len(cs.items):
            continue
        sets["candidates"].append(cs.features)
        sets["check_88_rows"].append(np.resize(cs.features, (88, cs.features.shape[1])))
    out: dict[str, object] = {}
    equal = True
    for label, row_sets in sets.items():
        base_ms: list[float] = []
        ours_ms: list[float] = []
        for rows in row_sets:
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                theirs = ranker.lightgbm_predict(rows)
                t1 = time.perf_counter()
                ours = ranker.predict(rows)
                t2 = time.perf_counter()
                base_ms.append((t1 - t0) * 1000)
                ours_ms.append((t2 - t1) * 1000)
            equal = equal and ours.tobytes() == theirs.tobytes()
        out[label] = {
            "row_sets": len(row_sets),
            "rows_median": float(np.median([len(r) for r in row_sets])) if row_sets else 0.0,
            "lightgbm_predict": percentiles(base_ms),
            "compiled_trees": percentiles(ours_ms),
            "ratio_p50_lightgbm_to_compiled": round(float(np.median(base_ms) / np.median(ours_ms)), 3),
        }
    result = {
        "benchmark": "forest_predict",
        "dataset": name,
        "calls_per_row_set": args.repeats,
        "ranker": {"trees": ranker.booster_.num_trees(), "nodes": len(forest.split_feature),
                   "leaves": len(forest.leaf_value)},
        "build_seconds": round(build_s, 3),
        "compile_seconds": round(compile_s, 3),
        **out,
        "scores_equal_bit_for_bit": equal,
        "command": " ".join(["python", "benchmarks/forest_predict.py", *sys.argv[1:]]),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
