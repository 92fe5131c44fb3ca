"""The LambdaRank ranker: LightGBM over the merged candidates' features.

Scores are LightGBM raw scores (higher is better; comparable within one
model). With several seeds the model is their average, and so are its
TreeSHAP contributions, which keeps the additivity ``base + sum(contrib) =
score`` exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from recsys.errors import BundleError, NotFittedError, TrainingDataError
from recsys.ranking.features import FEATURE_NAMES
from recsys.ranking.forest import Forest, build_forest
from recsys.ranking.treeshap import PathTables, build_tables

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
        for derived in ("_merged", "_shap_tables", "_forest"):  # of the previous fit, if any
            self.__dict__.pop(derived, None)
        self.booster_  # noqa: B018 -- merged now, not on the first request
        return self

    def _check(self) -> None:
        if not hasattr(self, "boosters_"):
            raise NotFittedError("LambdaRanker")

    @property
    def booster_(self) -> Any:
        """The one LightGBM booster that scores and explains: the seeds' trees in one model.

        With several seeds, every seed's trees with their leaf values divided
        by the number of seeds (:func:`merge_boosters`), so one ``predict``
        (and one TreeSHAP pass) gives the seeds' average instead of one call
        per seed. Built when the ranker is fitted, loaded or unpickled, kept
        for the ranker's life.
        """
        self._check()
        merged = self.__dict__.get("_merged")
        if merged is None:
            merged = self.__dict__["_merged"] = merge_boosters(self.boosters_)
        return merged

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Scores, shape (rows,): the seeds' average.

        By the merged booster's trees as arrays (:mod:`recsys.ranking.forest`,
        LightGBM's scores bit for bit), or by LightGBM (:meth:`lightgbm_predict`)
        for a model they do not cover.
        """
        forest = self.forest_
        if forest is None:
            return self.lightgbm_predict(features)
        return forest.predict(features)

    def lightgbm_predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """:meth:`predict` by LightGBM's own ``Booster.predict``."""
        return np.asarray(self.booster_.predict(features, num_threads=1), dtype=np.float64)

    @property
    def forest_(self) -> Forest | None:
        """The merged booster as a :class:`~recsys.ranking.forest.Forest` (None if it has categorical
        or linear trees); built on first use, kept for the ranker's life."""
        self._check()
        if "_forest" not in self.__dict__:
            self.__dict__["_forest"] = build_forest(self.booster_)
        return self.__dict__["_forest"]  # type: ignore[no-any-return]

    def contributions(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """TreeSHAP contributions, shape (rows, features + 1); the last column is the base value.

        Row sums equal :meth:`predict` (additivity): both come from
        :attr:`booster_`. Computed from the booster's path tables
        (:mod:`recsys.ranking.treeshap`, several times faster than LightGBM's
        ``pred_contrib`` and equal to it up to float64 rounding), or by
        LightGBM (:meth:`lightgbm_contributions`) for a model the tables do
        not cover.
        """
        tables = self.shap_tables_
        if tables is None:
            return self.lightgbm_contributions(features)
        return tables.contributions(features)

    def lightgbm_contributions(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """:meth:`contributions` by LightGBM's own TreeSHAP (``predict(..., pred_contrib=True)``)."""
        return np.asarray(self.booster_.predict(features, pred_contrib=True, num_threads=1), dtype=np.float64)

    @property
    def shap_tables_(self) -> PathTables | None:
        """The merged booster's TreeSHAP path tables (None if it cannot be tabulated); built on
        first use (well under a second for the default ranker), kept for the ranker's life."""
        self._check()
        if "_shap_tables" not in self.__dict__:
            self.__dict__["_shap_tables"] = build_tables(self.booster_)
        return self.__dict__["_shap_tables"]  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_merged", None)  # rebuilt from the boosters when unpickled
        state.pop("_shap_tables", None)  # rebuilt on first use
        state.pop("_forest", None)  # rebuilt on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "boosters_" in state:
            self.booster_  # noqa: B018 -- merged when the bundle loads, not on the first request

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
        obj.booster_  # noqa: B018 -- merged at load (a model swap), not on the first request
        return obj


_TREE_VALUES = re.compile(r"^(leaf_value|internal_value)=(.*)$", re.MULTILINE)


def merge_boosters(boosters: list[Any]) -> Any:
    """One LightGBM booster whose raw score is the average of ``boosters``' raw scores.

    Every booster's trees, in order, with ``leaf_value`` and ``internal_value``
    divided by ``len(boosters)`` (written with 17 significant digits, so the
    text round trip is exact). A model's raw score is the sum of its trees'
    leaf values and TreeSHAP is linear in them, so the merged model's score
    and contributions are the seeds' averages up to float64 rounding, from
    one call. One booster is returned as it is.
    """
    import lightgbm as lgb

    if len(boosters) == 1:
        return boosters[0]
    n = len(boosters)
    texts = [b.model_to_string(num_iteration=-1) for b in boosters]
    header, _, _ = texts[0].partition("\nTree=0\n")
    header = "\n".join(line for line in header.splitlines() if not line.startswith("tree_sizes="))
    trees: list[str] = []
    for text in texts:
        _, _, body = text.partition("\nTree=0\n")
        body, _, _ = ("Tree=0\n" + body).partition("end of trees")
        for block in re.split(r"^Tree=\d+\n", body, flags=re.MULTILINE)[1:]:
            scaled = _TREE_VALUES.sub(
                lambda m: m.group(1) + "=" + " ".join(repr(float(v) / n) for v in m.group(2).split()), block
            )
            trees.append(f"Tree={len(trees)}\n{scaled.strip()}\n")
    tail = texts[0].partition("end of trees")[2]
    merged = header.rstrip("\n") + "\n\n" + "\n\n".join(trees) + "\n\nend of trees" + tail
    return lgb.Booster(model_str=merged)
