"""Buy again: the customer's routine purchases that are due.

Groceries run out. An item a customer buys every week or so is due again
about a week after the last purchase; the same item bought yesterday is not.
This retriever only ever proposes items from the customer's own purchase
history, which also makes its reason easy to state truthfully ("You buy this
about every 7 days; last time was 8 days ago").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.errors import ConfigError
from recsys.interactions import DAY, Interactions
from recsys.retrieval.base import BaseRetriever, Candidates

MIN_DAYS_SINCE = 0.5  # a purchase "today" is half a day old: keeps log() finite
MIN_INTERVAL_DAYS = 1.0


@dataclass(frozen=True)
class BuyAgainConfig:
    """Settings of :class:`BuyAgainRetriever`.

    - ``min_purchases``: an item is a repeat item for a customer once bought on
      at least this many distinct days (at least 2: one gap is needed for an
      interval).
    - ``max_interval_days``: items with a longer typical interval are not
      routine and are never proposed.
    - ``seed``: kept for the common contract; nothing here is random.
    """

    min_purchases: int = 2
    max_interval_days: float = 120.0
    seed: int = 42


@dataclass(frozen=True)
class RepeatPairs:
    """One customer's repeat items (parallel arrays, sorted by item index).

    ``items`` (int32), ``purchases`` (distinct purchase days, int32),
    ``last_ts`` (epoch s of the last purchase, float64), ``interval_days``
    (typical interval, float64).
    """

    items: npt.NDArray[np.int32]
    purchases: npt.NDArray[np.int32]
    last_ts: npt.NDArray[np.float64]
    interval_days: npt.NDArray[np.float64]

    @classmethod
    def empty(cls) -> RepeatPairs:
        return cls(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0), np.empty(0))

    def __len__(self) -> int:
        return len(self.items)

    def restrict(self, keep: npt.NDArray[np.bool_]) -> RepeatPairs:
        """The pairs where ``keep`` (aligned with ``items``) is true."""
        return RepeatPairs(self.items[keep], self.purchases[keep], self.last_ts[keep], self.interval_days[keep])

    def due(self, now: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(scores, interval ratio ``days since last / typical interval``) at ``now``."""
        scores, ratio, _ = _due_figures(self.purchases, self.last_ts, self.interval_days, now)
        return scores, ratio

    def evidence(self, item: int, now: float) -> dict[str, Any] | None:
        """Why ``item`` is due at ``now`` (:meth:`BuyAgainRetriever.evidence`'s keys), or None if it is
        not one of these repeat items."""
        at = int(np.searchsorted(self.items, item))
        if at == len(self.items) or self.items[at] != item:
            return None
        score, ratio, days_since = _due_figures(self.purchases[at], self.last_ts[at], self.interval_days[at], now)
        return {
            "purchases": int(self.purchases[at]),
            "typical_interval_days": float(self.interval_days[at]),
            "days_since_last": float(days_since),
            "interval_ratio": float(ratio),
            "last_purchase_ts": float(self.last_ts[at]),
            "score": float(score),
        }


def _due_figures(purchases: Any, last_ts: Any, interval_days: Any, now: float) -> tuple[Any, Any, Any]:
    """(score, interval ratio, days since the last purchase) of repeat pairs (arrays or one pair's
    scalars) at ``now``: the one formula of the class docstring of :class:`BuyAgainRetriever`."""
    days_since = np.maximum((now - last_ts) / DAY, MIN_DAYS_SINCE)
    ratio = days_since / interval_days
    return np.log1p(purchases) * np.minimum(ratio, 1.0 / ratio), ratio, days_since


def repeat_pairs(events: pl.LazyFrame, config: BuyAgainConfig, *, by: tuple[str, ...] = ("u", "i")) -> pl.DataFrame:
    """Repeat (customer, item) pairs of an events frame with ``u``/``i``, ``event_type``, ``ts``.

    Columns ``*by, n, last_ts, interval`` sorted by ``by``: distinct purchase
    days, last purchase time and median gap in days (at least
    ``MIN_INTERVAL_DAYS``), only pairs with ``n >= min_purchases`` and
    ``interval <= max_interval_days``. ``by=("i",)`` does one customer.
    """
    keys = list(by)
    return (
        events.filter((pl.col("event_type") == "purchase") & pl.col("ts").is_not_null())
        .select(*keys, "ts", (pl.col("ts") // int(DAY)).alias("day"))
        .group_by(*keys, "day")
        .agg(pl.col("ts").max())
        .sort(*keys, "day")
        .with_columns(pl.col("day").diff().over(keys).alias("gap"))
        .group_by(*keys)
        .agg(
            pl.len().alias("n"),
            pl.col("ts").max().alias("last_ts"),
            pl.col("gap").drop_nulls().median().alias("interval"),
        )
        .filter(pl.col("n") >= config.min_purchases)
        .with_columns(pl.col("interval").cast(pl.Float64).clip(lower_bound=MIN_INTERVAL_DAYS))
        .filter(pl.col("interval") <= config.max_interval_days)
        .sort(*keys)
        .collect()
    )


def pairs_from_frame(pairs: pl.DataFrame) -> RepeatPairs:
    """:class:`RepeatPairs` from one customer's :func:`repeat_pairs` frame."""
    return RepeatPairs(
        pairs["i"].to_numpy().astype(np.int32),
        pairs["n"].to_numpy().astype(np.int32),
        pairs["last_ts"].to_numpy().astype(np.float64),
        pairs["interval"].to_numpy().astype(np.float64),
    )


class BuyAgainRetriever(BaseRetriever):
    """A customer's repeat purchases, scored by how due they are at ``now``.

    For a (customer, item) with ``n`` distinct purchase days (UTC days of
    purchase events with a timestamp), typical interval ``T`` = median gap in
    days between consecutive purchase days (at least 1), and ``d`` = days
    from the last purchase to ``now`` (at least 0.5)::

        r = d / T
        score = log1p(n) * exp(-|log r|)   # = log1p(n) * min(r, 1 / r)

    so the score peaks at ``log1p(n)`` when the usual interval has passed,
    falls as the item was bought more recently or is long overdue, and grows
    with the number of purchases. Items bought on fewer than
    ``min_purchases`` days, or with ``T > max_interval_days``, score 0 and are
    never candidates. ``now`` is ``interactions.now`` unless overridden (epoch
    seconds). Unknown customers get all-zero scores and empty candidates;
    without timestamps nothing is a repeat item.

    Learned (one entry per repeat (customer, item) pair, grouped by customer,
    ``indptr_`` (customers + 1) delimiting each customer's pairs):
    ``pair_items_`` (int32), ``purchases_`` (distinct purchase days, int32),
    ``last_ts_`` (float64 epoch s), ``interval_days_`` (float64).
    """

    name: ClassVar[str] = "buy_again"

    def __init__(self, config: BuyAgainConfig = BuyAgainConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Find every repeat (customer, item) pair and its purchase rhythm.

        Raises ``ValueError`` if ``min_purchases < 2`` or
        ``max_interval_days`` is not positive.
        """
        cfg = self.config
        if cfg.min_purchases < 2:
            raise ConfigError(
                f"min_purchases must be at least 2 (an interval needs two purchases), got {cfg.min_purchases}"
            )
        if cfg.max_interval_days <= 0:
            raise ConfigError(f"max_interval_days must be positive, got {cfg.max_interval_days}")
        pairs = repeat_pairs(interactions.events.lazy(), cfg, by=("u", "i"))
        n_customers = len(interactions.customers)
        u = pairs["u"].to_numpy().astype(np.int64)
        self.indptr_ = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_customers))])
        self.pair_items_ = pairs["i"].to_numpy().astype(np.int32)
        self.purchases_ = pairs["n"].to_numpy().astype(np.int32)
        self.last_ts_ = pairs["last_ts"].to_numpy().astype(np.float64)
        self.interval_days_ = pairs["interval"].to_numpy().astype(np.float64)
        self.interactions_ = interactions
        return self

    def _pairs(self, customer: str) -> slice:
        u = self.interactions_.customers.index(customer)
        if u < 0:
            return slice(0, 0)
        return slice(int(self.indptr_[u]), int(self.indptr_[u + 1]))

    def pairs_of(self, customer: str) -> RepeatPairs:
        """The customer's repeat pairs (empty if unknown or without repeats)."""
        self._check_fitted()
        s = self._pairs(customer)
        return RepeatPairs(
            self.pair_items_[s], self.purchases_[s], self.last_ts_[s], self.interval_days_[s]
        )

    def now_or_fitted(self, now: float | None) -> float:
        """``now``, or the newest training event time (0 without times)."""
        return self._now(now)

    def drop_customer(self, u: int) -> int:
        """Delete customer ``u``'s pairs from the learned arrays; returns how many went."""
        self._check_fitted()
        lo, hi = int(self.indptr_[u]), int(self.indptr_[u + 1])
        if hi == lo:
            return 0
        keep = np.r_[0:lo, hi : len(self.pair_items_)]
        indptr = self.indptr_.copy()
        indptr[u + 1 :] -= hi - lo
        self.pair_items_ = self.pair_items_[keep]
        self.purchases_ = self.purchases_[keep]
        self.last_ts_ = self.last_ts_[keep]
        self.interval_days_ = self.interval_days_[keep]
        self.indptr_ = indptr
        return hi - lo

    def _now(self, now: float | None) -> float:
        if now is not None:
            return float(now)
        return self.interactions_.now if self.interactions_.now is not None else 0.0

    def _due(self, s: slice, now: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(scores, days since last purchase) of the pairs in ``s``."""
        scores, _, days_since = _due_figures(self.purchases_[s], self.last_ts_[s], self.interval_days_[s], now)
        return scores, days_since

    def score_all(self, customer: str, now: float | None = None) -> npt.NDArray[np.float32]:
        """Due-ness of every item for the customer at ``now``, shape (items,).

        0 for items that are not the customer's repeat items, and for every
        item of an unknown customer.
        """
        self._check_fitted()
        out = np.zeros(len(self.interactions_.items), dtype=np.float32)
        s = self._pairs(customer)
        if s.stop > s.start:
            scores, _ = self._due(s, self._now(now))
            out[self.pair_items_[s]] = scores
        return out

    def candidates(
        self,
        customer: str,
        n: int,
        *,
        exclude: npt.NDArray[np.integer[Any]] | None = None,
        now: float | None = None,
    ) -> Candidates:
        """The customer's ``n`` most due repeat items at ``now``, best first.

        Empty for unknown customers and customers without repeat items.
        """
        self._check_fitted()
        s = self._pairs(customer)
        if s.stop == s.start:
            return Candidates.empty(self.name)
        scores = np.full(len(self.interactions_.items), -np.inf, dtype=np.float32)
        scores[self.pair_items_[s]] = self._due(s, self._now(now))[0]
        return Candidates.from_scores(self.name, scores, n, self.items_, exclude=exclude, min_score=0.0)

    def evidence(self, customer: str, item: int, *, now: float | None = None) -> dict[str, Any] | None:
        """Why ``item`` is due for ``customer``, or None if it is not their repeat item.

        Keys: ``purchases`` (distinct purchase days), ``typical_interval_days``,
        ``days_since_last`` (at least 0.5), ``interval_ratio``
        (days_since_last / typical_interval_days), ``last_purchase_ts``,
        ``score``.
        """
        self._check_fitted()
        return self.pairs_of(customer).evidence(item, self._now(now))
