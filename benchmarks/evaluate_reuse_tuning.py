"""`clearshelf evaluate` without re-running the baselines' tuning: their parameters come from an earlier run.

The tuning is a pure function of the data, the split and the seed (it runs
on the validation split carved from the training part), so an earlier
results JSON of the same dataset/split/seed holds exactly the parameters a
new tuning would pick (up to BPR's multi-threaded SGD). On a crowded machine
this saves most of the run. Everything else is `run_evaluation`: the same
split, clearshelf with the default configuration, the tuned baselines, the
same metrics, bootstrap and JSON. Optionally pickles clearshelf's fitted
model (for `benchmarks/recommend_latency.py --model`).

    python benchmarks/evaluate_reuse_tuning.py --dataset completejourney --path ../shared/data/completejourney \
        --params-from benchmarks/results/evaluate_completejourney_temporal_first.json \
        --out benchmarks/results/evaluate_completejourney_temporal.json --save-model /tmp/cj_clearshelf.pkl
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recsys.evaluation.baselines import baseline_models
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.report import print_results, write_results
from recsys.evaluation.runner import compare, evaluate_models
from recsys.evaluation.splits import SplitConfig, make_split, normalise_events
from recsys.recommender import RecommenderConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"], required=True)
    ap.add_argument("--path", type=Path, required=True)
    ap.add_argument("--split", choices=["temporal", "random"], default="temporal")
    ap.add_argument("--include-repeats", action="store_true")
    ap.add_argument("--params-from", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--save-model", type=Path)
    args = ap.parse_args()
    from recsys.data.datasets import load_dataset

    earlier = json.loads(args.params_from.read_text())
    if (earlier["dataset"], earlier["split"], earlier["seed"]) != (args.dataset, args.split, 42):
        raise SystemExit(f"{args.params_from} is a {earlier['dataset']}/{earlier['split']} run; tuning does not carry over")
    params: dict[str, dict[str, Any]] = earlier["baseline_params"]
    ds = load_dataset(args.dataset, args.path)
    split = make_split(normalise_events(ds.events), SplitConfig(kind=args.split, test_fraction=0.2, seed=42))
    print(f"split: {split.train.height:,} train events, {split.test.height:,} test events", flush=True)
    level2, level3 = dataset_hierarchy(args.dataset)
    discovery = not args.include_repeats
    config = RecommenderConfig(
        level2_column=level2, level3_column=level3, mode="discovery" if discovery else "repeats", seed=42,
        label_split="random" if args.split == "random" else "auto",
    )
    config = replace(config, content=replace(config.content, cache_dir=str(args.cache_dir)))  # type: ignore[arg-type]
    fitted: list[ClearshelfModel] = []

    def clearshelf() -> ClearshelfModel:
        fitted.append(ClearshelfModel(config))
        return fitted[-1]

    models: dict[str, Any] = {"clearshelf": clearshelf, **baseline_models(params, seed=42)}
    result = evaluate_models(split, models, k=10, discovery=discovery, catalog=ds.items, progress=print)
    comparison = compare(result, "clearshelf")
    extra = {
        "tuned": True, "baseline_params": params,
        "tuning_reused_from": str(args.params_from),
        "command": " ".join(["python", "benchmarks/evaluate_reuse_tuning.py", *os.sys.argv[1:]]),
    }
    write_results(result, args.out, dataset=args.dataset, split=split, k=10, seed=42, comparison=comparison, extra=extra)
    print_results(result, comparison=comparison)
    if args.save_model is not None:
        with args.save_model.open("wb") as fh:
            pickle.dump(fitted[-1].model_, fh, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main()
