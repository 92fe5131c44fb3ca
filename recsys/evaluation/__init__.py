"""Offline evaluation: splits, metrics, bootstrap intervals, baselines, the side-by-side report.

The data flow, one module per stage:

- :mod:`.splits`: events -> :class:`Split` (train/test) -> :class:`Truth`
  (relevant held-out items per evaluated customer).
- :mod:`.runner`: fit every model on the same training interactions, ask for
  the same customers' top k -> :class:`EvaluationResult` (per-customer
  metrics kept); :func:`compare` and :func:`tune`.
- :mod:`.metrics`: NDCG, recall, hit rate, AP, precision per customer;
  coverage and mean popularity.
- :mod:`.bootstrap`: paired ratio and mean intervals over customers.
- :mod:`.baselines`: popularity, item-kNN, ALS, BPR, EASE and their grids.
- :mod:`.report`: the results JSON, a console table, Parquet exports.
"""

from recsys.evaluation.bootstrap import MeanCI, RatioCI, mean_ci, paired_ratio_ci
from recsys.evaluation.runner import (
    Comparison,
    EvaluationResult,
    ModelResult,
    Recommender,
    RetrieverRecommender,
    TuningResult,
    compare,
    evaluate_models,
    tune,
)
from recsys.evaluation.splits import (
    Split,
    SplitConfig,
    Truth,
    make_split,
    normalise_events,
    random_split,
    temporal_split,
    test_truth,
    validation_split,
)

__all__ = [
    "Comparison",
    "EvaluationResult",
    "MeanCI",
    "ModelResult",
    "RatioCI",
    "Recommender",
    "RetrieverRecommender",
    "Split",
    "SplitConfig",
    "Truth",
    "TuningResult",
    "compare",
    "evaluate_models",
    "make_split",
    "mean_ci",
    "normalise_events",
    "paired_ratio_ci",
    "random_split",
    "temporal_split",
    "test_truth",
    "tune",
    "validation_split",
]
