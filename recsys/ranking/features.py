"""The ranker's features: named, documented, grouped. Explanations depend on these names.

Every feature is computed from behaviour (events) and the catalog only.
Sensitive customer attributes are never inputs: the builder is never given
them, and :data:`FEATURES` is the complete list of what the ranker sees.

Each feature belongs to a *group* (the evidence family an explanation can cite):
``copurchase``, ``als``, ``ease``, ``content``, ``buy_again``, ``category``,
``popularity``, ``price``, ``activity``, ``sources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.compiled import lazily_compiled
from recsys.interactions import DAY, Interactions
from recsys.retrieval.popularity import PopularityRetriever

Group = Literal[
    "copurchase", "als", "ease", "content", "buy_again", "category", "popularity", "price", "activity", "sources"
]

MISSING_RANK: Final[float] = 1000.0


@dataclass(frozen=True)
class FeatureSpec:
    """One ranker input: its column name, evidence group, a human label and meaning."""

    name: str
    group: Group
    label: str
    doc: str


FEATURES: Final[tuple[FeatureSpec, ...]] = (
    FeatureSpec("als_score", "als", "taste match (ALS)", "dot product of the customer's and the item's ALS factors"),
    FeatureSpec("als_rank", "als", "taste-match rank", f"position in the ALS candidate list (1 = best; {MISSING_RANK:.0f} if not proposed)"),
    FeatureSpec("ease_score", "ease", "bought by similar baskets (EASE)", "EASE item-item regression score of the customer's history"),
    FeatureSpec("ease_rank", "ease", "EASE rank", f"position in the EASE candidate list ({MISSING_RANK:.0f} if not proposed)"),
    FeatureSpec("copurchase_score", "copurchase", "bought together with your items", "sum over history items of their co-purchase similarity to the item"),
    FeatureSpec("copurchase_rank", "copurchase", "bought-together rank", f"position in the co-purchase candidate list ({MISSING_RANK:.0f} if not proposed)"),
    FeatureSpec("copurchase_max", "copurchase", "strongest bought-together link", "largest single history item's contribution to copurchase_score"),
    FeatureSpec("content_score", "content", "similar to what you bought", "cosine similarity of the item's text embedding to the customer's profile"),
    FeatureSpec("content_rank", "content", "similarity rank", f"position in the content candidate list ({MISSING_RANK:.0f} if not proposed)"),
    FeatureSpec("buy_again_score", "buy_again", "due for a repeat purchase", "how due the item is, from the customer's own purchase interval (0 if never repeated)"),
    FeatureSpec("buy_again_interval_ratio", "buy_again", "days since last purchase / usual interval", "1 means exactly due; 0 if not a repeat item"),
    FeatureSpec("purchases_of_item", "buy_again", "times you bought this", "number of purchase events of this item by the customer"),
    FeatureSpec("in_history", "buy_again", "already in your history", "1 if the customer interacted with the item before"),
    FeatureSpec("category_share", "category", "your share of purchases in this category", "fraction of the customer's interaction weight in the item's category"),
    FeatureSpec("level2_share", "category", "your share in this department", "fraction of the customer's weight in the item's second hierarchy level (department), 0 if none"),
    FeatureSpec("level3_share", "category", "your share in this product type", "fraction of the customer's weight in the item's third hierarchy level (product type), 0 if none"),
    FeatureSpec("days_since_category", "category", "days since you last bought in this category", "days between the customer's last event in the item's category and now (365 if never)"),
    FeatureSpec("brand_share", "category", "your share of this brand", "fraction of the customer's weight on the item's brand"),
    FeatureSpec("popularity", "popularity", "customers who bought it", "log(1 + distinct customers) over the whole history"),
    FeatureSpec("recent_popularity", "popularity", "recent popularity", "log(1 + distinct customers) in the recent popularity window"),
    FeatureSpec("trend", "popularity", "trend this week", "ratio of the last week's rate to the previous weeks' rate (smoothed; 1 = flat)"),
    FeatureSpec("category_popularity_rank", "popularity", "rank within its category", "the item's recent-popularity rank inside its category (1 = top)"),
    FeatureSpec("item_age_days", "popularity", "days since first sold", "days since the item's first event (0 for items never sold: new items)"),
    FeatureSpec("price_ratio", "price", "price vs your usual", "item price / the customer's median purchased-item price (1 if unknown)"),
    FeatureSpec("customer_activity", "activity", "how much you shop", "log(1 + the customer's number of events)"),
    FeatureSpec("n_sources", "sources", "retrievers proposing it", "number of candidate sources that proposed the item"),
)
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: Final[dict[str, int]] = {n: i for i, n in enumerate(FEATURE_NAMES)}
SPECS: Final[dict[str, FeatureSpec]] = {f.name: f for f in FEATURES}
SOURCES: Final[tuple[str, ...]] = ("als", "ease", "copurchase", "content", "buy_again", "popularity")


def _codes(values: pl.Series) -> tuple[npt.NDArray[np.int32], int]:
    """Dense integer codes for a column (nulls get their own code)."""
    filled = values.cast(pl.Utf8).fill_null("\x00none")
    cat = filled.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    uniq, inv = np.unique(cat, return_inverse=True)
    return inv.astype(np.int32), len(uniq)


@dataclass
class ItemTable:
    """Per-item arrays the features need, aligned with the item vocabulary."""

    category: npt.NDArray[np.int32]
    n_category: int
    level2: npt.NDArray[np.int32]
    n_level2: int
    level3: npt.NDArray[np.int32]
    n_level3: int
    brand: npt.NDArray[np.int32]
    n_brand: int
    has_level2: bool
    has_level3: bool
    price: npt.NDArray[np.float32]  # NaN where unknown
    popularity: npt.NDArray[np.float32]
    recent_popularity: npt.NDArray[np.float32]
    trend: npt.NDArray[np.float32]
    category_rank: npt.NDArray[np.float32]
    first_seen: npt.NDArray[np.float64]  # epoch s, NaN if never

    @classmethod
    def build(
        cls,
        interactions: Interactions,
        popularity: PopularityRetriever,
        *,
        level2_column: str | None = None,
        level3_column: str | None = None,
    ) -> ItemTable:
        """Item arrays from the catalog and a fitted popularity retriever (one source of truth)."""
        cat = interactions.catalog
        n_items = len(interactions.items)
        category, n_category = _codes(cat["category"])
        has2 = level2_column is not None and level2_column in cat.columns
        has3 = level3_column is not None and level3_column in cat.columns
        level2, n_level2 = _codes(cat[level2_column]) if has2 else (np.zeros(n_items, np.int32), 1)  # type: ignore[index]
        level3, n_level3 = _codes(cat[level3_column]) if has3 else (np.zeros(n_items, np.int32), 1)  # type: ignore[index]
        brand, n_brand = _codes(cat["brand"])
        price = cat["price"].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float32)
        first_seen = np.full(n_items, np.nan)
        if interactions.now is not None:
            first = interactions.events.filter(pl.col("ts").is_not_null()).group_by("i").agg(pl.col("ts").min())
            first_seen[first["i"].to_numpy()] = first["ts"].to_numpy().astype(np.float64)
        return cls(
            category=category, n_category=n_category, level2=level2, n_level2=n_level2,
            level3=level3, n_level3=n_level3, brand=brand, n_brand=n_brand,
            has_level2=has2, has_level3=has3, price=price,
            popularity=np.log1p(np.asarray(popularity.counts_, dtype=np.float32)),
            recent_popularity=np.log1p(np.asarray(popularity.recent_, dtype=np.float32)),
            trend=np.asarray(popularity.trend_, dtype=np.float32),
            category_rank=np.asarray(popularity.category_rank_, dtype=np.float32),
            first_seen=first_seen,
        )


@dataclass(frozen=True)
class CustomerProfile:
    """What the features need to know about one customer's history.

    ``items``/``weights``: history item indices (ascending) and weights; ``last_ts``: the
    newest event time per history item (NaN unknown); ``purchases``: purchase
    counts per history item; ``n_events``: all events.
    """

    items: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]
    last_ts: npt.NDArray[np.float64]
    purchases: npt.NDArray[np.float32]
    n_events: int

    @property
    def empty(self) -> bool:
        return len(self.items) == 0


def build_features(
    table: ItemTable,
    profile: CustomerProfile,
    items: npt.NDArray[np.int32],
    *,
    source_scores: dict[str, npt.NDArray[np.float32]],
    source_ranks: dict[str, npt.NDArray[np.float32]],
    copurchase_max: npt.NDArray[np.float32],
    buy_again_ratio: npt.NDArray[np.float32],
    now: float | None,
) -> npt.NDArray[np.float32]:
    """Feature matrix for one customer's candidates, shape (len(items), len(FEATURES)), float32.

    ``source_scores[s]``/``source_ranks[s]`` are aligned with ``items``
    (rank :data:`MISSING_RANK` where source ``s`` did not propose the item).
    """
    n = len(items)
    return build_feature_stack(
        table, profile, np.ones((1, len(profile.items)), bool), np.array([profile.n_events]), items,
        source_scores={s: v.reshape(1, n) for s, v in source_scores.items()},
        source_ranks={s: v.reshape(1, n) for s, v in source_ranks.items()},
        copurchase_max=np.reshape(copurchase_max, (1, n)), buy_again_ratio=np.reshape(buy_again_ratio, (1, n)),
        now=now,
    )[0]


def build_feature_stack(
    table: ItemTable,
    profile: CustomerProfile,
    keeps: npt.NDArray[np.bool_],
    n_events: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    *,
    source_scores: dict[str, npt.NDArray[np.float32]],
    source_ranks: dict[str, npt.NDArray[np.float32]],
    copurchase_max: npt.NDArray[np.float32],
    buy_again_ratio: npt.NDArray[np.float32],
    now: float | None,
) -> npt.NDArray[np.float32]:
    """:func:`build_features` for several histories that are parts of one, in one pass.

    Row ``t`` of ``keeps`` (shape (m, len(profile.items))) selects the
    history entries that history ``t`` keeps, ``n_events[t]`` is its event
    count, and the per-source arrays have shape (m, len(items)). Returns
    (m, len(items), len(FEATURES)): row ``t`` is, bit for bit, what
    :func:`build_features` gives for the profile restricted to ``keeps[t]``
    (the same sums in the same order: the category sums are one
    ``np.bincount`` whose bins are per history, the totals and medians per
    history). The explanations' counterfactual check scores a list with each
    of several history items taken out this way.
    """
    m, n = keeps.shape[0], len(items)
    out = np.zeros((m, n, len(FEATURES)), dtype=np.float32)

    def put(name: str, values: npt.ArrayLike) -> None:
        out[:, :, FEATURE_INDEX[name]] = values

    for s in ("als", "ease", "copurchase", "content"):
        put(f"{s}_score", source_scores.get(s, 0.0))
        put(f"{s}_rank", source_ranks.get(s, MISSING_RANK))
    put("copurchase_max", copurchase_max)
    put("buy_again_score", source_scores.get("buy_again", 0.0))
    put("buy_again_interval_ratio", buy_again_ratio)

    # history items are sorted (CSR row order), so membership is a binary search
    hist = profile.items
    known = np.zeros((m, n), bool)
    purchases = np.zeros((m, n), np.float32)
    if len(hist):
        pos = np.minimum(np.searchsorted(hist, items), len(hist) - 1)
        known = (hist[pos] == items)[None, :] & keeps[:, pos]
        purchases = np.where(known, profile.purchases[pos][None, :], np.float32(0))
    put("purchases_of_item", purchases)
    put("in_history", known.astype(np.float32))

    rows, at = np.nonzero(keeps)  # row-major: each history's entries in history order
    totals = np.array([float(profile.weights[k].sum()) for k in keeps])
    some = totals > 0

    def put_some(name: str, values: npt.NDArray[np.floating], where: npt.NDArray[np.bool_]) -> None:
        if bool(where.all()):
            out[:, :, FEATURE_INDEX[name]] = values
        else:
            out[where, :, FEATURE_INDEX[name]] = values[where]

    put("days_since_category", 365.0)
    put("price_ratio", 1.0)
    if some.any():
        hist_weights, kept = np.ascontiguousarray(profile.weights), np.ascontiguousarray(keeps)
        for name, codes, size, present in (
            ("category_share", table.category, table.n_category, True),
            ("level2_share", table.level2, table.n_level2, table.has_level2),
            ("level3_share", table.level3, table.n_level3, table.has_level3),
            ("brand_share", table.brand, table.n_brand, True),
        ):
            if present:  # np.bincount(rows * size + codes[hist[at]], weights) / totals, per kept row
                _shares_kernel()(
                    np.ascontiguousarray(codes[hist], np.int64), hist_weights, kept, totals,
                    np.ascontiguousarray(codes[items], np.int64), size, out, FEATURE_INDEX[name],
                )
        last_ts = profile.last_ts[at]
        dated = np.bincount(rows, weights=np.isfinite(last_ts), minlength=m) > 0
        # the entry each row drops, when each drops at most one (a served row drops none, the check's
        # removals one each): compiled loops then, bit for bit the NumPy path (tested) at a tenth of its cost
        drop = _dropped_entry(keeps)
        if now is not None and (some & dated).any():
            last_by_cat = _kept_category_latest(table.category[hist], profile.last_ts, keeps, table.n_category, drop=drop)
            last = last_by_cat[:, table.category[items]]
            days = np.where(np.isfinite(last), (now - last) / DAY, 365.0)
            put_some("days_since_category", np.clip(days, 0, 365), some & dated)
        medians = _kept_medians(table.price[hist], keeps, drop=drop)
        priced = some & np.isfinite(medians)
        if priced.any():
            ratio = table.price[items][None, :] / medians[priced][:, None]
            out[priced, :, FEATURE_INDEX["price_ratio"]] = np.where(np.isfinite(ratio), ratio, 1.0)

    put("popularity", table.popularity[items])
    put("recent_popularity", table.recent_popularity[items])
    put("trend", table.trend[items])
    put("category_popularity_rank", table.category_rank[items])
    if now is not None:
        age = (now - table.first_seen[items]) / DAY
        put("item_age_days", np.where(np.isfinite(age), np.maximum(age, 0.0), 0.0))
    put("customer_activity", np.log1p(np.asarray(n_events))[:, None])
    put(
        "n_sources",
        sum((source_ranks[s] < MISSING_RANK).astype(np.float32) for s in source_ranks),
    )
    return out


def _kept_category_latest(
    categories: npt.NDArray[np.integer[Any]],
    last_ts: npt.NDArray[np.float64],
    keeps: npt.NDArray[np.bool_],
    n_cat: int,
    *,
    drop: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]:
    """Per row of ``keeps`` and category, the latest ``last_ts`` of the history entries it keeps
    (``-inf`` where none is dated), shape (rows, n_cat).

    A maximum is exact in any order, so the whole history's latest per
    category is taken once; a row differs from it only in a category whose
    latest entry the row drops, and only such a category is looked at again.
    With ``drop`` (:func:`_dropped_entry` of ``keeps``: each row drops at
    most that one entry), a compiled pass keeps each category's two latest
    entries and a row dropping the latest takes the other.
    """
    if drop is not None:
        out = np.empty((keeps.shape[0], n_cat), np.float64)
        _latest_kernel()(np.ascontiguousarray(categories, np.int64), np.ascontiguousarray(last_ts, np.float64), drop, out)
        return out
    ts = np.where(np.isnan(last_ts), -np.inf, last_ts)
    whole = np.full(n_cat, -np.inf)
    np.maximum.at(whole, categories, ts)
    out = np.repeat(whole[None, :], keeps.shape[0], axis=0)
    rows, entries = np.nonzero(~keeps)
    hit = ts[entries] == whole[categories[entries]]  # the row drops its category's latest (or an equal) entry
    for t, g in zip(rows[hit].tolist(), categories[entries[hit]].tolist(), strict=True):
        kept = ts[keeps[t] & (categories == g)]
        out[t, g] = kept.max() if len(kept) else -np.inf
    return out


def _kept_medians(
    prices: npt.NDArray[np.float32], keeps: npt.NDArray[np.bool_], *, drop: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.float32]:
    """Per row of ``keeps``, ``np.median`` of the known (finite, positive) ``prices`` it keeps; NaN if none.

    The prices are sorted once; a row's median is its middle kept price, or
    the float32 mean of its two middle ones (as ``np.median`` takes it), so
    the values are ``np.median``'s bit for bit without a median per row.
    With ``drop`` (:func:`_dropped_entry` of ``keeps``: each row drops at
    most that one entry), a compiled loop finds the middle places from the
    dropped entry's place instead of counting along each row.
    """
    m = keeps.shape[0]
    out = np.full(m, np.nan, np.float32)
    if drop is not None:
        _medians_kernel()(np.ascontiguousarray(prices, np.float32), drop, out)
        return out
    known = np.flatnonzero(np.isfinite(prices) & (prices > 0))
    if not len(known) or not m:
        return out
    order = known[np.argsort(prices[known], kind="stable")]
    ordered = prices[order]
    kept = keeps[:, order]
    counts = kept.sum(axis=1)
    rows = np.flatnonzero(counts > 0)
    if not len(rows):
        return out
    running = np.cumsum(kept[rows], axis=1)
    c = counts[rows]
    lower = np.argmax(running > ((c - 1) // 2)[:, None], axis=1)  # the kept price of 0-based rank (c - 1) // 2
    upper = np.argmax(running > (c // 2)[:, None], axis=1)  # ... and of rank c // 2 (the same one when c is odd)
    pair = np.stack([ordered[lower], ordered[upper]], axis=1)
    out[rows] = np.where(c % 2 == 1, ordered[lower], np.mean(pair, axis=1, dtype=np.float32))
    return out


def _medians_loop(prices: Any, drop: Any, out: Any) -> None:  # pragma: no cover -- compiled by numba
    """:func:`_kept_medians` of rows that each drop at most the entry ``drop[t]`` (-1: none), into ``out``."""
    h = len(prices)
    known = np.empty(h, np.float32)
    at = np.empty(h, np.int64)
    k = 0
    for i in range(h):
        v = prices[i]
        if np.isfinite(v) and v > 0:
            known[k] = v
            at[k] = i
            k += 1
    order = np.argsort(known[:k], kind="mergesort")
    ordered = known[:k][order]
    place = np.full(h, -1, np.int64)  # each known entry's place among the sorted known prices
    for r in range(k):
        place[at[order[r]]] = r
    for t in range(len(drop)):
        q = place[drop[t]] if drop[t] >= 0 else -1
        c = k - 1 if q >= 0 else k
        if c == 0:
            continue
        lower, upper = (c - 1) // 2, c // 2  # ranks among the kept; past the dropped one, one place further
        if q >= 0 and lower >= q:
            lower += 1
        if q >= 0 and upper >= q:
            upper += 1
        if c % 2 == 1:
            out[t] = ordered[lower]
        else:
            out[t] = (ordered[lower] + ordered[upper]) / np.float32(2.0)  # np.median's float32 mean of the two


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_medians_kernel = lazily_compiled(_medians_loop)


def _latest_loop(categories: Any, last_ts: Any, drop: Any, out: Any) -> None:  # pragma: no cover -- numba
    """:func:`_kept_category_latest` of rows that each drop at most the entry ``drop[t]`` (-1: none)."""
    n_cat = out.shape[1]
    best = np.full(n_cat, -np.inf)
    best_at = np.full(n_cat, -1, np.int64)  # the first entry holding the category's latest
    second = np.full(n_cat, -np.inf)  # the latest of the category's other entries
    for i in range(len(categories)):
        v = last_ts[i]
        if np.isnan(v):
            v = -np.inf
        g = categories[i]
        if best_at[g] < 0 or v > best[g]:
            second[g] = best[g]
            best[g] = v
            best_at[g] = i
        elif v > second[g]:
            second[g] = v
    for t in range(out.shape[0]):
        for g in range(n_cat):
            out[t, g] = best[g]
        e = drop[t]
        if e >= 0 and best_at[categories[e]] == e:
            out[t, categories[e]] = second[categories[e]]


_latest_kernel = lazily_compiled(_latest_loop)


def _shares_loop(
    hist_codes: Any, weights: Any, keeps: Any, totals: Any, item_codes: Any, size: int, out: Any, col: int
) -> None:  # pragma: no cover -- compiled by numba (the tests run it compiled)
    """``out[t, j, col]``: row ``t``'s share of its kept history weight in item ``j``'s code, for rows
    with a positive total (others are left as they are).

    Each code's weight is summed in float64 in history order, as ``np.bincount`` adds them, and
    divided by the row's total in float64, then rounded to float32: the NumPy expression's bits.
    """
    acc = np.zeros(size)
    for t in range(keeps.shape[0]):
        if not totals[t] > 0:
            continue
        acc[:] = 0.0
        for e in range(len(hist_codes)):
            if keeps[t, e]:
                acc[hist_codes[e]] += np.float64(weights[e])
        for j in range(len(item_codes)):
            out[t, j, col] = np.float32(acc[item_codes[j]] / totals[t])


_shares_kernel = lazily_compiled(_shares_loop)


def _dropped_entry(keeps: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64] | None:
    """The entry each row of ``keeps`` (rows, entries) drops (-1: none), or None if a row drops more."""
    if not keeps.shape[1]:
        return np.full(keeps.shape[0], -1, np.int64)
    missing = ~keeps
    dropped = missing.sum(axis=1)
    if not (dropped <= 1).all():
        return None
    return np.where(dropped == 1, np.argmax(missing, axis=1), -1).astype(np.int64)


def prepare() -> None:
    """Compile the stacked features' kernels now, e.g. when a model is loaded, not on the first request."""
    drop = np.array([1], np.int64)
    _kept_medians(np.ones(2, np.float32), np.array([[True, False]]), drop=drop)
    _kept_category_latest(np.zeros(2, np.int64), np.ones(2), np.array([[True, False]]), 1, drop=drop)
    _shares_kernel()(np.zeros(1, np.int64), np.ones(1, np.float32), np.ones((1, 1), bool), np.ones(1),
                     np.zeros(1, np.int64), 1, np.zeros((1, 1, 1), np.float32), 0)


def feature_table_markdown() -> str:
    """The feature documentation as a Markdown table (used by docs and `--help`)."""
    lines = ["| feature | group | label | meaning |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {f.group} | {f.label} | {f.doc} |" for f in FEATURES]
    return "\n".join(lines)
