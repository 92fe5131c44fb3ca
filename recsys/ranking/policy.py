"""The serving policy: a score floor and a user-oriented fairness re-rank.

Applied by :meth:`recsys.recommender.Recommender.recommend` after the ranker
has scored the candidates and before the top-k cut.

The re-rank follows the user-oriented fairness idea of Li et al. (WWW 2021,
"User-oriented Fairness in Recommendation"): the customers a recommender
serves worst are the *less active* ones, so the policy changes only their
lists. It needs no sensitive attribute at serving time: activity comes from
the customer's own history (the ``customer_activity`` feature, log(1 + events)).

For a customer whose activity is below the model's top-5% boundary, each
candidate's ordering key is a blend of two within-list percentile ranks::

    key = (1 - w) * pct(ranker score) + w * pct(signal),
    w   = rerank_strength * inactivity,   inactivity in [0, 1]

where ``inactivity`` is 1 for a customer with a single event and falls
linearly (in log activity) to 0 at the top-5% boundary, and ``signal`` is the
customer's own-history evidence for the item (:func:`fairness_signal`).
``rerank_strength = 0`` leaves the ranker's order untouched; the returned
scores stay the ranker's own (explanations add up to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recsys.ranking.features import FEATURE_INDEX

if TYPE_CHECKING:  # recsys.recommender imports this module
    from recsys.recommender import Recommender

ACTIVE_QUANTILE = 0.95  # the "active" group of Li et al.: the top 5% by activity


@dataclass(frozen=True)
class ServingPolicy:
    """How the ranker's scores become the served order.

    - ``min_score``: candidates with a ranker score below it are dropped (the
      list may then be shorter than k); ``None`` keeps all.
    - ``rerank_strength`` in [0, 1]: weight of the user-oriented re-rank for
      the least active customers (scaled down as activity rises).
    """

    min_score: float | None = None
    rerank_strength: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rerank_strength) <= 1.0:
            raise ValueError(f"rerank_strength must be within [0, 1], got {self.rerank_strength}")
        if self.min_score is not None and not np.isfinite(self.min_score):
            raise ValueError(f"min_score must be a finite number or None, got {self.min_score}")

    @property
    def is_identity(self) -> bool:
        return self.min_score is None and self.rerank_strength == 0.0


def _percentile(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Rank of each value in [0, 1] (ties share the mean rank); 1 = largest."""
    n = len(x)
    if n <= 1:
        return np.ones(n)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=float)
    # average ties so equal values get equal keys
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv] / (n - 1)


def fairness_signal(features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The signal blended in for less-active customers, one value per candidate row.

    Evidence from the customer's own history, which a sparse history still
    has: how due the item is as a repeat, how often they bought it, and the
    EASE score of their basket. (Popularity and the number of proposing
    sources were tried and widened the gaps on Complete Journey; see
    docs/fairness.md.)
    """
    f = features.astype(np.float64, copy=False)
    return (
        f[:, FEATURE_INDEX["buy_again_score"]]
        + np.log1p(f[:, FEATURE_INDEX["purchases_of_item"]])
        + f[:, FEATURE_INDEX["ease_score"]]
    )


def inactivity(activity: float, active_boundary: float) -> float:
    """1 for a single-event customer, 0 at or above the active boundary (both log1p events)."""
    low = np.log1p(1.0)
    if active_boundary <= low:
        return 0.0
    return float(np.clip((active_boundary - activity) / (active_boundary - low), 0.0, 1.0))


def active_boundary(model: Recommender) -> float:
    """log(1 + events) at the model's top-5% activity boundary (cached on the model)."""
    cached: float | None = getattr(model, "_policy_active_boundary", None)
    if cached is None:
        per_customer = model.stage_._n_events  # events per customer, as the feature counts them
        events = per_customer[per_customer > 0]
        cached = float(np.log1p(np.quantile(events, ACTIVE_QUANTILE))) if len(events) else 0.0
        # Derived from the fitted model's own data; recomputed for a new model object.
        model._policy_active_boundary = cached
    return cached


def apply_policy(
    policy: ServingPolicy,
    scores: npt.NDArray[np.floating[Any]],
    features: npt.NDArray[np.float32],
    *,
    boundary: float,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Which candidate rows survive and the key to order them by (larger first).

    ``scores`` (n,) are ranker scores of ``features`` (n, n_features) rows.
    Returns ``(keep, key)``: row indices kept and their ordering keys.
    """
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.arange(len(scores))
    if policy.min_score is not None:
        keep = np.flatnonzero(scores >= policy.min_score)
    s = scores[keep]
    if policy.rerank_strength == 0.0 or len(keep) < 2:
        return keep, s
    activity = float(features[keep[0], FEATURE_INDEX["customer_activity"]])
    w = policy.rerank_strength * inactivity(activity, boundary)
    if w == 0.0:
        return keep, s
    key = (1.0 - w) * _percentile(s) + w * _percentile(fairness_signal(features[keep]))
    return keep, key
