"""SHAP attributions of the ranker for the returned rows (TreeSHAP via LightGBM ``pred_contrib``).

One call per ranked list: the k returned rows are stacked and explained in a
single :meth:`~recsys.ranking.ranker.LambdaRanker.contributions` call. Every
row is checked for additivity (base value + sum of contributions = the score
the ranker gave); a violation is logged and counted by the caller, never
hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recsys.ranking.features import FEATURE_NAMES, SPECS

logger = logging.getLogger("explain.attributions")

ADDITIVITY_TOLERANCE: Final[float] = 1e-6


@dataclass(frozen=True)
class Contribution:
    """One feature's share of one item's score: its value and its SHAP value (raw-score units)."""

    feature: str
    label: str
    group: str
    value: float
    shap: float

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "label": self.label, "value": self.value, "shap": self.shap}


_LABELS: Final[dict[str, str]] = {n: s.label for n, s in SPECS.items()}
_GROUPS: Final[dict[str, str]] = {n: s.group for n, s in SPECS.items()}


@dataclass(frozen=True, eq=False)
class Attribution:
    """The ranker's score of one item split into feature contributions.

    ``contributions`` hold every feature with a nonzero SHAP value, largest
    ``|shap|`` first (ties: feature order), so ``base_value + sum(shap)`` is
    ``score`` up to ``additivity_error`` (absolute). Built from the raw
    TreeSHAP row; the per-feature records are made only when asked for.
    """

    base_value: float
    score: float
    additivity_error: float
    feature_names: tuple[str, ...]
    order: npt.NDArray[np.int64]  # feature positions with nonzero SHAP, largest |shap| first
    shap_values: npt.NDArray[np.float64]  # (features,)
    values: npt.NDArray[np.float32]  # (features,) the feature values
    group_sums: dict[str, float] | None = None  # :meth:`by_group`, when the caller summed it already

    @cached_property
    def contributions(self) -> tuple[Contribution, ...]:
        names = self.feature_names
        return tuple(
            Contribution(
                feature=names[j], label=_LABELS.get(names[j], names[j]), group=_GROUPS.get(names[j], "other"),
                value=float(self.values[j]), shap=float(self.shap_values[j]),
            )
            for j in self.order.tolist()
        )

    def by_group(self) -> dict[str, float]:
        """Summed SHAP per feature group (groups without a nonzero contribution are absent)."""
        return dict(self._by_group)

    def feature_shap(self) -> dict[str, float]:
        """SHAP value per feature name (every feature, zeros included)."""
        return dict(self._feature_shap)

    # computed once: the explainer reads both for every candidate reason of the item, in two passes

    @cached_property
    def _by_group(self) -> dict[str, float]:
        if self.group_sums is not None:
            return self.group_sums
        return _group_sums(self.feature_names, self.shap_values[None, :])[0]

    @cached_property
    def _feature_shap(self) -> dict[str, float]:
        return dict(zip(self.feature_names, self.shap_values.tolist(), strict=True))

    def top(self, n: int) -> tuple[Contribution, ...]:
        return self.contributions[:n]

    def as_dict(self) -> dict[str, Any]:
        names = self.feature_names
        idx = self.order.tolist()
        return {
            "base_value": self.base_value,
            "score": self.score,
            "contributions": [
                {"feature": names[j], "label": _LABELS.get(names[j], names[j]), "value": v, "shap": s}
                for j, v, s in zip(
                    idx, self.values[self.order].tolist(), self.shap_values[self.order].tolist(), strict=True
                )
            ],
        }


def _group_sums(names: tuple[str, ...], shap_values: npt.NDArray[np.float64]) -> list[dict[str, float]]:
    """Per row of ``shap_values`` (rows, features): the summed SHAP of each group with a nonzero
    contribution. One ``np.bincount`` for all rows, whose bins (row, group) each add their row's
    values in feature order: the same sums as one bincount per row."""
    groups, codes = _group_codes(names)
    rows = shap_values.shape[0]
    bins = (np.arange(rows)[:, None] * len(groups) + codes[None, :]).ravel()
    sums = np.bincount(bins, weights=shap_values.ravel(), minlength=rows * len(groups)).reshape(rows, len(groups))
    present = np.bincount(bins, weights=(shap_values != 0).ravel(), minlength=rows * len(groups)).reshape(rows, -1) > 0
    return [
        {g: v for g, v, p in zip(groups, s, q, strict=True) if p} for s, q in zip(sums.tolist(), present.tolist(), strict=True)
    ]


@lru_cache(maxsize=8)
def _group_codes(names: tuple[str, ...]) -> tuple[tuple[str, ...], npt.NDArray[np.int64]]:
    """(group names, group code per feature) for a feature-name tuple."""
    groups = tuple(dict.fromkeys(_GROUPS.get(n, "other") for n in names))
    codes = np.asarray([groups.index(_GROUPS.get(n, "other")) for n in names], dtype=np.int64)
    return groups, codes


def attribute_rows(
    ranker: Any,
    features: npt.NDArray[np.float32],
    scores: Sequence[float] | npt.NDArray[np.float64],
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> list[Attribution]:
    """Attributions of ``features`` (rows, len(feature_names)) scored ``scores`` by ``ranker``.

    ``scores`` are what the ranker returned for these rows when they were
    ranked; the additivity error of each row is measured against them.
    """
    feats = np.ascontiguousarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != len(feature_names):
        raise ValueError(
            f"features must have shape (rows, {len(feature_names)}); got {feats.shape}"
        )
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(feats):
        raise ValueError(f"{len(feats)} feature rows but {len(scores)} scores: pass one score per row")
    if len(feats) == 0:
        return []
    contrib = ranker.contributions(feats)  # (rows, features + 1), last column the base value
    shap_values, base = contrib[:, :-1], contrib[:, -1]
    errors = np.abs(base + shap_values.sum(axis=1) - scores)
    names = tuple(feature_names)
    group_sums = _group_sums(names, shap_values)
    # every row's nonzero contributions, largest |shap| first (ties: lower column), in one sort
    rows, columns = np.nonzero(shap_values)
    by = np.lexsort((columns, -np.abs(shap_values[rows, columns]), rows))
    orders = np.split(columns[by].astype(np.int64), np.cumsum(np.bincount(rows, minlength=len(feats)))[:-1])
    return [
        Attribution(
            float(base[r]), float(scores[r]), float(errors[r]), names, orders[r], shap_values[r], feats[r], group_sums[r]
        )
        for r in range(len(feats))
    ]
