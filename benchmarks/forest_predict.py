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
import sys
from pathlib import Path

from _timing import (
    add_world_arguments,
    interleaved,
    known_sample,
    percentiles,
    timed,
    world_from_arguments,
    write_result,
)


def main() -> None:
    import numpy as np  # after _timing, whose import set one BLAS thread and offline model loading

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_arguments(ap)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each kind per row set")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/forest_predict_demo.json"))
    args = ap.parse_args()

    model, inter, name = world_from_arguments(args)
    ranker = model.ranker_
    forest, build_s = timed(lambda: ranker.forest_)
    if forest is None:
        sys.exit("this ranker has categorical or linear trees: it is scored by LightGBM")
    _, compile_s = timed(lambda: ranker.predict(np.zeros((1, len(ranker.feature_names_)), np.float32)))

    sample = known_sample(inter, args.customers)
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
            theirs, ours = interleaved(ranker.lightgbm_predict, ranker.predict, rows, args.repeats, base_ms, ours_ms)
            equal = equal and ours.tobytes() == theirs.tobytes()
        out[label] = {
            "row_sets": len(row_sets),
            "rows_median": float(np.median([len(r) for r in row_sets])) if row_sets else 0.0,
            "lightgbm_predict": percentiles(base_ms, digits=4),
            "compiled_trees": percentiles(ours_ms, digits=4),
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
