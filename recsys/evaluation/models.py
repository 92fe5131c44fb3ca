"""clearshelf's own two-stage model as an evaluation :class:`~recsys.evaluation.runner.Recommender`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from recsys.evaluation.runner import Exclusions, IntArray
from recsys.interactions import Interactions
from recsys.recommender import Filters, Recommender, RecommenderConfig


class ClearshelfModel:
    """Fits :class:`~recsys.recommender.Recommender`; recommends with the runner's exclusions.

    In discovery mode the recommender itself never proposes history items;
    the runner's ``exclude`` (the training history) is applied on top, so the
    list is exactly what a shopper would see minus what they already had.
    """

    name = "clearshelf"

    def __init__(self, config: RecommenderConfig | None = None) -> None:
        self.config = config or RecommenderConfig()

    def fit(self, interactions: Interactions) -> Self:
        self.model_ = Recommender(self.config).fit(interactions)
        return self

    def recommend(self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None) -> IntArray:
        discovery = self.config.mode == "discovery"
        filters = Filters(exclude_purchased=True, allow_repeats=not discovery)
        out = np.full((len(customer_ids), k), -1, dtype=np.int64)
        for row, customer in enumerate(customer_ids):
            skip = exclude.get(customer) if exclude is not None else None
            ranked = self.model_.recommend(customer, k, filters=filters)
            idx = [it.index for it in ranked.items]
            if skip is not None and len(skip):
                banned = set(np.asarray(skip).tolist())
                idx = [i for i in idx if i not in banned]
            idx = idx[:k]
            out[row, : len(idx)] = idx
        return out
