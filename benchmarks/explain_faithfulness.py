"""Benchmark: faithfulness of history-citing reasons, and what the citation threshold trades.

Fits clearshelf once on exactly the split ``clearshelf evaluate`` uses
(temporal, last 20% of time held out, seed 42, discovery), then explains a
seeded sample of the evaluated customers' top 10 for each value of
``EvidenceConfig.min_citation_share`` and runs the counterfactual check
(remove the cited history item, re-score the customer's candidates, the item
must lose score and rank) on every history-citing reason. Reports, per
threshold, the pass rate, how many reasons cite a history item, and the
reason mix. Writes JSON.

    python benchmarks/explain_faithfulness.py --dataset movielens-100k --path ../shared/data/ml-100k \
        --out benchmarks/results/explain_faithfulness_ml100k.json
    python benchmarks/explain_faithfulness.py --dataset completejourney --path ../shared/data/completejourney \
        --no-content --out benchmarks/results/explain_faithfulness_completejourney.json
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

from explain import EvidenceConfig, Explainer, ExplainerConfig
from explain.faithfulness import evaluate_explanations
from recsys.data.datasets import load_dataset
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.runner import evaluate_models
from recsys.evaluation.splits import SplitConfig, make_split, normalise_events
from recsys.recommender import RecommenderConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"], required=True)
    ap.add_argument("--path", type=Path)
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--shares", default="0,0.05,0.1,0.2", help="comma-separated min_citation_share values")
    ap.add_argument("--no-content", action="store_true", help="leave out the text-embedding source")
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = load_dataset(args.dataset, args.path)
    split = make_split(normalise_events(ds.events), SplitConfig(kind="temporal", test_fraction=0.2, seed=42))
    level2, level3 = dataset_hierarchy(args.dataset)
    config = RecommenderConfig(level2_column=level2, level3_column=level3, mode="discovery", seed=42)
    if args.no_content:
        config = replace(config, content=None)
    else:
        config = replace(config, content=replace(config.content, cache_dir=str(args.cache_dir)))  # type: ignore[arg-type]
    fitted: list[ClearshelfModel] = []

    def make() -> ClearshelfModel:
        fitted.append(ClearshelfModel(config))
        return fitted[-1]

    started = time.perf_counter()
    result = evaluate_models(split, {"clearshelf": make}, k=10, discovery=True, catalog=ds.items)
    fit_s = time.perf_counter() - started
    model = fitted[-1].model_
    runs = []
    for share in [float(s) for s in args.shares.split(",")]:
        explainer = Explainer(model, ExplainerConfig(evidence=EvidenceConfig(min_citation_share=share)))
        t = time.perf_counter()
        out = evaluate_explanations(
            model, result.customer_ids, k=10, discovery=True, max_customers=args.customers, explainer=explainer
        )
        out["min_citation_share"] = share
        out["history_citing_share"] = out["checked"] / out["explained_items"] if out["explained_items"] else None
        out["seconds"] = round(time.perf_counter() - t, 1)
        runs.append(out)
        print(
            f"min_citation_share={share}: {out['faithfulness_rate']} of {out['checked']} pass; "
            f"{out['history_citing_share']:.1%} of reasons cite a history item",
            flush=True,
        )
    doc = {
        "benchmark": "explain_faithfulness",
        "dataset": args.dataset,
        "split": {"kind": "temporal", "test_fraction": 0.2, "seed": 42, "discovery": True},
        "content_source": not args.no_content,
        "customers_evaluated": len(result.customer_ids),
        "clearshelf_ndcg@10": result.models["clearshelf"].metrics["ndcg@10"],
        "fit_and_score_seconds": round(fit_s, 1),
        "target": {"faithfulness_rate": 0.9, "max_additivity_error": 1e-6},
        "runs": runs,
        "command": " ".join(["python", "benchmarks/explain_faithfulness.py", *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
