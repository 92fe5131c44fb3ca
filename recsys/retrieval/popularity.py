"""Popularity: what many customers bought lately, overall and per category.

The fallback for customers we know nothing about (cold start) and the source
of "Popular in Dairy" / "Trending in Dairy this week" reasons. Counts are of
distinct customers, so one customer buying an item fifty times counts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.errors import ConfigError
from recsys.interactions import DAY, Interactions
from recsys.retrieval.base import BaseRetriever, Candidates

PopularityMode = Literal["popular", "trending"]
NO_CATEGORY = "(none)"


@dataclass(frozen=True)
class PopularityConfig:
    """Settings of :class:`PopularityRetriever`.

    - ``window_days``: "recent" means within this many days before the newest
      event (``interactions.now``).
    - ``trend_window_days``: the trend compares the last ``trend_window_days``
      with the rest of the window (must be shorter than ``window_days``).
    - ``seed``: kept for the common contract; nothing here is random.
    """

    window_days: float = 28.0
    trend_window_days: float = 7.0
    seed: int = 42


class PopularityRetriever(BaseRetriever):
    """The most popular items, the same for every customer.

    Scores (``score_all``) are ``log1p(recent_[i]) + 0.001 * log1p(counts_[i]) /
    log1p(max(counts_))``: recent popularity, with all-time popularity only to
    break ties (so items with no recent buyer still rank above items nobody
    ever bought, which score 0 and are never proposed). Unknown customers get
    the same candidates as everyone (this retriever needs no history).

    Learned (arrays over items):

    - ``counts_``: distinct customers over all time (int64).
    - ``recent_``: distinct customers in the last ``window_days``.
    - ``trend_recent_``: distinct customers in the last ``trend_window_days``.
    - ``trend_previous_``: distinct customers in the window before that
      (``window_days - trend_window_days`` long).
    - ``trend_``: the smoothed rate ratio ``(trend_recent + 1) /
      (trend_previous * trend_window / (window - trend_window) + 1)``; 1 is
      steady, above 1 rising (default windows: ``(last7 + 1) / (prev21 / 3 + 1)``).
    - ``category_``: category code per item (int32) into ``categories_``
      (null categories are ``"(none)"``); ``category_rank_`` and
      ``category_trend_rank_``: 1-based rank within the item's category by
      score and by trend.
    - ``timed_``: False when no event has a time; then ``recent_`` equals
      ``counts_``, ``trend_`` is all 1 and the trend counts equal ``counts_``
      and 0.
    """

    name: ClassVar[str] = "popularity"

    def __init__(self, config: PopularityConfig = PopularityConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Count distinct customers per item over time windows ending at ``interactions.now``.

        Raises ``ValueError`` if the windows are not positive or the trend
        window is not shorter than the window.
        """
        cfg = self.config
        if not (cfg.window_days > 0 and cfg.trend_window_days > 0):
            raise ConfigError(
                f"window_days and trend_window_days must be positive; got {cfg.window_days} "
                f"and {cfg.trend_window_days}"
            )
        if cfg.trend_window_days >= cfg.window_days:
            raise ConfigError(
                f"trend_window_days ({cfg.trend_window_days}) must be shorter than "
                f"window_days ({cfg.window_days}): the trend compares the last days with the "
                "rest of the window"
            )
        n_items = len(interactions.items)
        ev = interactions.events.lazy().filter(pl.col("weight") > 0).select("u", "i", "ts")
        counts = _distinct_customers(ev, n_items)
        now = interactions.now
        if now is None:
            recent = counts.copy()
            trend_recent, trend_previous = counts.copy(), np.zeros(n_items, dtype=np.int64)
            trend = np.ones(n_items, dtype=np.float64)
        else:
            ts = pl.col("ts")
            window_start = now - cfg.window_days * DAY
            trend_start = now - cfg.trend_window_days * DAY
            recent = _distinct_customers(ev.filter(ts > window_start), n_items)
            trend_recent = _distinct_customers(ev.filter(ts > trend_start), n_items)
            trend_previous = _distinct_customers(
                ev.filter((ts > window_start) & (ts <= trend_start)), n_items
            )
            scale = cfg.trend_window_days / (cfg.window_days - cfg.trend_window_days)
            trend = (trend_recent + 1.0) / (trend_previous * scale + 1.0)

        categories, codes = _category_codes(interactions.catalog, n_items)
        scores = _popularity_scores(recent, counts)
        self.counts_ = counts
        self.recent_ = recent
        self.trend_recent_ = trend_recent
        self.trend_previous_ = trend_previous
        self.trend_ = trend.astype(np.float32)
        self.timed_ = now is not None
        self.categories_ = categories
        self.category_ = codes
        self.scores_ = scores
        self.category_rank_ = _rank_within(codes, scores)
        self.category_trend_rank_ = _rank_within(codes, self._trend_scores())
        self.interactions_ = interactions
        return self

    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Recent popularity of every item, shape (items,); the same for any customer."""
        self._check_fitted()
        return self.scores_.copy()

    def candidates(
        self,
        customer: str,
        n: int,
        *,
        exclude: npt.NDArray[np.integer[Any]] | None = None,
        category: str | None = None,
        mode: PopularityMode = "popular",
    ) -> Candidates:
        """The ``n`` most popular (or fastest rising) items, best first.

        ``customer`` only matters through ``exclude``; unknown customers get
        full lists. ``category`` restricts to one category (an unknown
        category gives empty candidates). ``mode="popular"`` scores as
        :meth:`score_all`; ``mode="trending"`` scores by ``trend_`` and
        proposes only rising items (trend above 1, so none without times).
        """
        self._check_fitted()
        if mode == "popular":
            scores, floor = self.scores_.copy(), 0.0
        elif mode == "trending":
            scores, floor = self._trend_scores(), 1.0
        else:
            raise ConfigError(f"mode must be 'popular' or 'trending', got {mode!r}")
        if category is not None:
            if category not in self.categories_:
                return Candidates.empty(self.name)
            scores[self.category_ != self.categories_.index(category)] = -np.inf
        return Candidates.from_scores(
            self.name, scores, n, self.items_, exclude=exclude, min_score=floor
        )

    def _category_sizes(self) -> npt.NDArray[np.int64]:
        """Items per category code (counted once, not per call; older bundles build it on first use)."""
        sizes = self.__dict__.get("_category_sizes_cache")
        if sizes is None:
            sizes = np.bincount(self.category_, minlength=len(self.categories_))
            self._category_sizes_cache = sizes
        return sizes

    def item_stats(self, item: int) -> dict[str, Any]:
        """Popularity figures of one item (by index), for reasons and features.

        Keys: ``count`` (all-time distinct customers), ``recent_count`` (last
        ``window_days``), ``trend_recent_count`` (last ``trend_window_days``),
        ``trend_previous_count`` (the rest of the window), ``trend_ratio``,
        ``category``, ``category_rank`` / ``category_trend_rank`` (1 = first in
        its category by popularity / by trend), ``category_size``,
        ``window_days``, ``trend_window_days``, ``timed``. Raises
        ``IndexError`` for an index outside the vocabulary.
        """
        self._check_fitted()
        n_items = len(self.counts_)
        if not 0 <= item < n_items:
            raise IndexError(f"item index {item} is outside 0..{n_items - 1}")
        code = int(self.category_[item])
        return {
            "count": int(self.counts_[item]),
            "recent_count": int(self.recent_[item]),
            "trend_recent_count": int(self.trend_recent_[item]),
            "trend_previous_count": int(self.trend_previous_[item]),
            "trend_ratio": float(self.trend_[item]),
            "category": self.categories_[code],
            "category_rank": int(self.category_rank_[item]),
            "category_trend_rank": int(self.category_trend_rank_[item]),
            "category_size": int(self._category_sizes()[code]),
            "window_days": self.config.window_days,
            "trend_window_days": self.config.trend_window_days,
            "timed": self.timed_,
        }

    def _trend_scores(self) -> npt.NDArray[np.float32]:
        """``trend_`` where someone bought the item lately, else 0."""
        return np.where(self.trend_recent_ > 0, self.trend_, 0.0).astype(np.float32)


def _distinct_customers(events: pl.LazyFrame, n_items: int) -> npt.NDArray[np.int64]:
    """Distinct customers per item index, shape (items,)."""
    per_item = events.group_by("i").agg(pl.col("u").n_unique().alias("n")).collect()
    out = np.zeros(n_items, dtype=np.int64)
    out[per_item["i"].to_numpy()] = per_item["n"].to_numpy()
    return out


def _popularity_scores(
    recent: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    top = np.log1p(counts.max()) if len(counts) and counts.max() > 0 else 1.0
    return (np.log1p(recent) + 1e-3 * np.log1p(counts) / top).astype(np.float32)


def _category_codes(catalog: pl.DataFrame, n_items: int) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Sorted category names and each item's code (null -> ``"(none)"``)."""
    if "category" in catalog.columns and catalog.height == n_items:
        names = catalog["category"].cast(pl.Utf8).fill_null(NO_CATEGORY)
    else:
        names = pl.Series("category", [NO_CATEGORY] * n_items, dtype=pl.Utf8)
    categories = sorted(names.unique().to_list())
    lookup = {c: k for k, c in enumerate(categories)}
    codes = np.fromiter((lookup[c] for c in names.to_list()), dtype=np.int32, count=n_items)
    return categories, codes


def _rank_within(
    groups: npt.NDArray[np.int32], scores: npt.NDArray[np.floating[Any]]
) -> npt.NDArray[np.int64]:
    """1-based rank of each item within its group by descending score (ties: lower index)."""
    n = len(scores)
    order = np.lexsort((np.arange(n), -scores, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1] if n else np.empty(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.empty(0, np.int64)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - first + 1
    return ranks
