"""The LambdaRank ranker: LightGBM over the merged candidates' features.

Scores are LightGBM raw scores (higher is better; comparable within one
model). With several seeds the model is their average, and so are its
TreeSHAP contributions, which keeps the additivity ``base + sum(contrib) =
score`` exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from recsys.errors import BundleError, NotFittedError, TrainingDataError
from recsys.ranking.features import FEATURE_NAMES

# Monotone in the retrievers: an item may only gain from a higher retriever score and
# lose from a worse (larger) retriever rank. Then "remove X from the history, the
# item's cited score falls" also makes the ranker's score fall (explanations'
# counterfactual check), instead of a tree rewarding a lower score somewhere.
MONOTONE_INCREASING = ("als_score", "ease_score", "copurchase_score", "copurchase_max", "content_score")
MONOTONE_DECREASING = ("als_rank", "ease_rank", "copurchase_rank", "content_rank")


def monotone_constraints(feature_names: tuple[str, ...]) -> list[int]:
    """LightGBM ``monotone_constraints`` for ``feature_names``: +1, -1 or 0 per feature."""
    return [1 if f in MONOTONE_INCREASING else -1 if f in MONOTONE_DECREASING else 0 for f in feature_names]


@dataclass(frozen=True)
class RankerConfig:
    """LambdaRank hyper-parameters. Small by default: explaining costs ~100x a predict.

    ``monotone``: constrain the ranker to rise with the retriever scores and
    fall with their ranks (:data:`MONOTONE_INCREASING`, :data:`MONOTONE_DECREASING`);
    ``extra["monotone_constraints"]``, if given, wins.
    """

    n_estimators: int = 80
    num_leaves: int = 15
    learning_rate: float = 0.08
    min_child_samples: int = 50
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    lambdarank_truncation_level: int = 20
    seeds: tuple[int, ...] = (42,)
    num_threads: int = 0
    monotone: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class LambdaRanker:
    """LightGBM LambdaRank; ``fit(X, y, groups)``, ``predict(X)``, ``contributions(X)``."""

    def __init__(self, config: RankerConfig = RankerConfig()) -> None:
        self.config = config

    def fit(
        self,
        features: npt.NDArray[np.float32],
        labels: npt.NDArray[np.floating[Any]],
        groups: npt.NDArray[np.integer[Any]],
        *,
        feature_names: tuple[str, ...] = FEATURE_NAMES,
    ) -> Self:
        """Train on rows grouped by customer (``groups`` = rows per customer, in order)."""
        import lightgbm as lgb

        if features.shape[0] != labels.shape[0] or int(np.sum(groups)) != features.shape[0]:
            raise TrainingDataError(
                f"features have {features.shape[0]} rows, labels {labels.shape[0]}, groups sum to "
                f"{int(np.sum(groups))}: all three must agree"
            )
        if features.shape[1] != len(feature_names):
            raise TrainingDataError(f"features have {features.shape[1]} columns but {len(feature_names)} names")
        if not np.any(labels > 0):
            raise TrainingDataError("no positive labels: the training window has no interactions to learn from")
        c = self.config
        constraints = {"monotone_constraints": monotone_constraints(feature_names)} if c.monotone else {}
        self.boosters_: list[Any] = []
        for seed in c.seeds:
            params = {
                "objective": "lambdarank",
                "metric": "ndcg",
                "ndcg_eval_at": [10],
                "num_leaves": c.num_leaves,
                "learning_rate": c.learning_rate,
                "min_child_samples": c.min_child_samples,
                "feature_fraction": c.feature_fraction,
                "bagging_fraction": c.bagging_fraction,
                "bagging_freq": 1,
                "lambdarank_truncation_level": c.lambdarank_truncation_level,
                "seed": seed,
                "deterministic": True,
                "force_row_wise": True,
                "num_threads": c.num_threads,
                "verbosity": -1,
                **constraints,
                **c.extra,
            }
            data = lgb.Dataset(
                features, label=labels, group=groups, feature_name=list(feature_names), free_raw_data=True
            )
            self.boosters_.append(lgb.train(params, data, num_boost_round=c.n_estimators))
        self.feature_names_ = tuple(feature_names)
        return self

    def _check(self) -> None:
        if not hasattr(self, "boosters_"):
            raise NotFittedError("LambdaRanker")

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Scores, shape (rows,)."""
        self._check()
        out = np.zeros(features.shape[0], dtype=np.float64)
        for b in self.boosters_:
            out += b.predict(features, num_threads=1)
        return out / len(self.boosters_)

    def contributions(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """TreeSHAP contributions, shape (rows, features + 1); the last column is the base value.

        Row sums equal :meth:`predict` (additivity).
        """
        self._check()
        out = np.zeros((features.shape[0], features.shape[1] + 1), dtype=np.float64)
        for b in self.boosters_:
            out += b.predict(features, pred_contrib=True, num_threads=1)
        return out / len(self.boosters_)

    def importance(self) -> dict[str, float]:
        """Total gain per feature, averaged over seeds."""
        self._check()
        gains = np.mean([b.feature_importance(importance_type="gain") for b in self.boosters_], axis=0)
        return dict(zip(self.feature_names_, gains.tolist(), strict=True))

    def save(self, directory: Path) -> list[str]:
        """Write one LightGBM text model per seed; returns the file names."""
        self._check()
        names = []
        for n, b in enumerate(self.boosters_):
            name = f"ranker_{n}.txt"
            b.save_model(str(Path(directory) / name))
            names.append(name)
        return names

    @classmethod
    def load(cls, directory: Path, files: list[str], config: RankerConfig, feature_names: tuple[str, ...]) -> Self:
        import lightgbm as lgb

        obj = cls(config)
        obj.boosters_ = [lgb.Booster(model_file=str(Path(directory) / f)) for f in files]
        obj.feature_names_ = tuple(feature_names)
        loaded = tuple(obj.boosters_[0].feature_name())
        if loaded != tuple(feature_names):
            raise BundleError(
                f"ranker in {directory} was trained on features {loaded}, but this version uses "
                f"{tuple(feature_names)}: retrain with `clearshelf train`"
            )
        return obj
