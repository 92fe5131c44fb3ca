"""Benchmark: the in-process cost of explaining the top 10, against recommend() in the same run.

Trains clearshelf (demo world by default, or a real dataset), then for a
seeded sample of known customers times, one customer at a time and
interleaved so machine noise hits both alike:

- baseline: ``Recommender.recommend(customer, 10)`` without explanations;
- explained: ``Explainer.explain(ranked)`` (the default explainer, with the
  serving-time counterfactual check) plus ``as_dict()`` of every item (what
  the API returns), on the list just made;
- within it, the TreeSHAP call alone (``LambdaRanker.contributions`` on the
  10 rows) and, for scale, the ranker's plain ``predict`` on the same rows;
- apart, what one exact counterfactual check would add at serving time:
  ``Recommender.score_items`` of one item with one history item removed.

Reports p50/p99, the ratio of medians explain / recommend (target <= 2) and
the p99 of recommend + explain (target <= 30 ms), plus the largest additivity
error seen. Writes JSON.

    python benchmarks/explain_latency.py --out benchmarks/results/explain_latency_demo.json
    python benchmarks/explain_latency.py --dataset movielens-100k --path ../shared/data/ml-100k \
        --out benchmarks/results/explain_latency_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from _timing import fit_world
from _timing import percentiles as _percentiles

from explain import Explainer, ExplainerConfig


def percentiles(seconds: list[float]) -> dict[str, float]:
    return _percentiles(np.asarray(seconds) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"])
    ap.add_argument("--path", type=Path)
    ap.add_argument("--customers", type=int, default=400)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-content", action="store_true", help="leave out the text-embedding source")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/explain_latency_demo.json"))
    args = ap.parse_args()
    world = fit_world(args.dataset, args.path, cache_dir=args.cache_dir, content=not args.no_content)
    model, inter, name, train_s = world.model, world.interactions, world.name, world.train_seconds
    explainer = Explainer(model)
    rng = np.random.default_rng(42)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    sample = rng.choice(known, min(args.customers, len(known)), replace=False).tolist()
    for c in sample[:20]:  # warm caches (the explainer builds its lookups on first use)
        for e in explainer.explain(model.recommend(c, args.k)):
            e.as_dict()
    rec, exp, total, shap_call, predict_call, rescore = [], [], [], [], [], []
    unchecked = Explainer(model, ExplainerConfig(counterfactual=False))
    cited = cited_unchecked = n_explained = 0
    max_err = 0.0
    for c in sample:
        t0 = time.perf_counter()
        ranked = model.recommend(c, args.k)
        t1 = time.perf_counter()
        explained = explainer.explain(ranked)
        out = [e.as_dict() for e in explained]
        t2 = time.perf_counter()
        rec.append(t1 - t0)
        exp.append(t2 - t1)
        total.append(t2 - t0)
        rows = np.stack([it.features for it in ranked.items])
        t3 = time.perf_counter()
        model.ranker_.contributions(rows)
        t4 = time.perf_counter()
        model.ranker_.predict(rows)
        t5 = time.perf_counter()
        shap_call.append(t4 - t3)
        predict_call.append(t5 - t4)
        row = model.history_row(c)
        if row.nnz > 1 and ranked.status == "known":
            # what one exact counterfactual check at serving time would cost: re-score one item
            without = row.copy()
            without.data[0] = 0
            without.eliminate_zeros()
            t6 = time.perf_counter()
            model.score_items(c, [ranked.items[0].index], history=without)
            rescore.append(time.perf_counter() - t6)
        cited += sum(e.reason.cited is not None for e in explained)
        cited_unchecked += sum(e.reason.cited is not None for e in unchecked.explain(ranked))
        n_explained += len(out)
        for d, it in zip(out, ranked.items, strict=True):
            a = d["attributions"]
            if a is not None:
                max_err = max(max_err, abs(a["base_value"] + sum(x["shap"] for x in a["contributions"]) - it.score))
    ratio = float(np.median(exp) / np.median(rec))
    result = {
        "benchmark": "explain_latency_in_process",
        "dataset": name,
        "content_source": not args.no_content,
        "customers_timed": len(sample),
        "k": args.k,
        "train_seconds": round(train_s, 1),
        "ranker": {"trees": model.config.ranker.n_estimators, "leaves": model.config.ranker.num_leaves,
                   "seeds": len(model.config.ranker.seeds)},
        "recommend_baseline": percentiles(rec),
        "explain": percentiles(exp),
        "recommend_plus_explain": percentiles(total),
        "treeshap_call_k_rows": percentiles(shap_call),
        "ranker_predict_k_rows": percentiles(predict_call),
        "counterfactual_rescore_one_item": percentiles(rescore),
        "ratio_p50_explain_to_recommend": ratio,
        "ratio_p50_treeshap_to_predict": float(np.median(shap_call) / np.median(predict_call)),
        "max_additivity_error": max_err,
        "additivity_failures": explainer.additivity_failures,
        # the serving-time counterfactual check (on by default): its work and what it leaves
        "serving_check": {
            "on": explainer.config.counterfactual,
            "budget": explainer.config.counterfactual_budget,
            "rescored_per_list": explainer.counterfactual_rescored / (len(sample) + 20),
            "history_citing_share": cited / n_explained if n_explained else None,
            "history_citing_share_unchecked": cited_unchecked / n_explained if n_explained else None,
        },
        "targets": {"ratio_p50_explain_to_recommend": 2.0, "recommend_plus_explain_p99_ms": 30.0,
                    "max_additivity_error": 1e-6},
        "met": {
            "ratio": ratio <= 2.0,
            "p99": percentiles(total)["p99_ms"] <= 30.0,
            "additivity": max_err <= 1e-6,
        },
        "command": " ".join(["python", "benchmarks/explain_latency.py", *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
