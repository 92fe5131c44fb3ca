"""Benchmark: the monotone ranker against the current default, chosen on the VALIDATION split only.

Splits the dataset as ``clearshelf evaluate`` does (temporal, test fraction
0.2, seed 42), then carves a validation split out of the training part
(:func:`recsys.evaluation.runner.tune`; the test split is never looked at)
and fits clearshelf twice on it: the ranker as it is, and with
``RankerConfig(monotone=True)``. Everything else is the same config.
Reports the validation metrics of both and which one validation prefers.

    python benchmarks/explain_monotone_validation.py --dataset movielens-100k --path ../shared/data/ml-100k \\
        --out benchmarks/results/explain_monotone_validation_ml100k.json
    python benchmarks/explain_monotone_validation.py --dataset completejourney \\
        --path ../shared/data/completejourney --no-content \\
        --out benchmarks/results/explain_monotone_validation_completejourney.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recsys.data.datasets import load_dataset
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.runner import tune
from recsys.evaluation.splits import SplitConfig, make_split, normalise_events
from recsys.recommender import RecommenderConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"], required=True)
    ap.add_argument("--path", type=Path, required=True)
    ap.add_argument("--no-content", action="store_true", help="leave out the text-embedding source")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--validation-customers", type=int, default=None,
                    help="score a seeded sample of this many validation customers (default: all)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = load_dataset(args.dataset, args.path)
    split = make_split(normalise_events(ds.events), SplitConfig(kind="temporal", test_fraction=0.2, seed=42))
    level2, level3 = dataset_hierarchy(args.dataset)
    base = RecommenderConfig(level2_column=level2, level3_column=level3, mode="discovery", seed=42)
    if args.no_content:
        base = replace(base, content=None)
    else:
        base = replace(base, content=replace(base.content, cache_dir=str(args.cache_dir)))  # type: ignore[arg-type]
    configs = {
        "unconstrained": replace(base, ranker=replace(base.ranker, monotone=False)),
        "monotone": replace(base, ranker=replace(base.ranker, monotone=True)),
    }
    started = time.perf_counter()
    choice = tune(
        lambda ranker: ClearshelfModel(configs[ranker]), {"ranker": list(configs)}, split,
        k=10, discovery=True, seed=42, catalog=ds.items, max_customers=args.validation_customers,
        progress=lambda m: print(m, file=sys.stderr),
    )
    result = {
        "benchmark": "explain_monotone_validation",
        "dataset": args.dataset,
        "content_source": not args.no_content,
        "split": "temporal, test fraction 0.2, seed 42; validation carved from train (test never used)",
        "ranker": {"trees": base.ranker.n_estimators, "leaves": base.ranker.num_leaves, "seeds": list(base.ranker.seeds)},
        "validation_customers": args.validation_customers,
        "chosen": choice.params["ranker"],
        "metric": choice.metric,
        "trials": [{"ranker": t.params["ranker"], **dict(t.metrics)} for t in choice.trials],
        "validation": dict(choice.validation),
        "seconds": round(time.perf_counter() - started, 1),
        "command": " ".join(["python", "benchmarks/explain_monotone_validation.py", *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
