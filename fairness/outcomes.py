"""Per-customer outcomes of an audit cohort: quality against later purchases, and
properties of what each customer is served that need no ground truth.

Data flow: events -> :func:`audit_split` (train up to a cutoff; without
timestamps a seeded random hold-out per customer) -> :func:`audit_truth`
(each customer's relevant held-out items) -> a model fit on the training part
-> :func:`recommend_cohort` (each customer's served list) -> :func:`outcomes_from_recs`
(one row per cohort customer).

Metric columns (all in [0, 1], NaN where a customer's value is undefined):

- ``ndcg@k``, ``recall@k``, ``hr@k``: against the held-out relevant items
  (:mod:`recsys.evaluation.metrics`).
- ``popularity``: mean share of training customers who had each served item.
- ``private_label_share``: share of served items that are private label
  (only when the catalog says so: a ``private_label`` column, or a ``brand``
  column whose values are just "Private"/"National").
- ``price_level``: mean within-category price percentile of the served items
  (0 = the cheapest in its category, 1 = the dearest); NaN without prices.
- ``category_diversity``: distinct categories / items served.
- ``cold_start_share``: 1 when the customer got the popularity fallback
  (``cold_start``/``not_personalised``), else 0; its group mean is the share
  of the group served the fallback.
- ``reason:<type>``: share of served items whose explanation has that reason
  type (only when a ``reason_types`` callable is given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.evaluation.metrics import Relevance, ranking_metrics
from recsys.evaluation.splits import Split, Truth, normalise_events, random_split
from recsys.interactions import DAY, IdVocabulary
from recsys.ranking.policy import ServingPolicy
from recsys.recommender import Filters, RankedList, Recommender

Progress = Callable[[str, int, int], None]
ReasonTypes = Callable[[RankedList], Sequence[str]]

QUALITY = ("ndcg", "recall", "hr")
PROPERTIES = ("popularity", "private_label_share", "price_level", "category_diversity", "cold_start_share")


def audit_split(
    events: pl.DataFrame,
    *,
    cutoff_days: float = 28.0,
    test_fraction: float = 0.2,
    seed: int = 42,
    kind: Literal["temporal", "random"] = "temporal",
) -> Split:
    """Train on events up to ``cutoff_days`` before the newest one, hold out the rest.

    With ``kind="random"``, or without a timestamp on every event: a seeded
    random ``test_fraction`` of each customer's events
    (:func:`recsys.evaluation.splits.random_split`).
    """
    ev = normalise_events(events)
    if kind == "temporal" and ev.height and ev["ts"].null_count() == 0:
        if cutoff_days <= 0:
            raise ValueError(f"cutoff_days must be positive, got {cutoff_days}")
        cutoff = int(ev["ts"].max() - cutoff_days * DAY)
        after = pl.col("ts") > cutoff
        return Split(train=ev.filter(~after), test=ev.filter(after), cutoff=cutoff, kind="temporal")
    return random_split(ev, test_fraction=test_fraction, seed=seed)


def audit_truth(split: Split, *, discovery: bool, min_rating: float = 4.0) -> Truth:
    """Relevant held-out items of every customer with at least one.

    Unlike the offline comparison's truth, customers without training events
    stay in (they are served the cold-start fallback, and that is audited
    too). A purchase is relevant; a rating from ``min_rating``. With
    ``discovery`` items the customer had in training are not relevant.
    """
    test = split.test.filter(
        (pl.col("event_type") == "purchase")
        | ((pl.col("event_type") == "rating") & (pl.col("value") >= min_rating))
    )
    pairs = test.select("customer_id", "item_id").unique()
    if discovery:
        pairs = pairs.join(split.train.select("customer_id", "item_id").unique(), on=["customer_id", "item_id"], how="anti")
    pairs = pairs.sort("customer_id", "item_id")
    return Truth(
        customer_ids=tuple(pairs["customer_id"].unique().sort().to_list()),
        pairs=pairs,
        discovery=discovery,
        event_types=("purchase", "rating"),
        min_rating=min_rating,
    )


@dataclass(frozen=True, eq=False)
class ItemInfo:
    """Per-item arrays aligned with a model's item vocabulary."""

    popularity: npt.NDArray[np.float64]  # share of training customers who had the item
    price_level: npt.NDArray[np.float64]  # within-category price percentile, NaN if no price
    category: npt.NDArray[np.int64]  # category code (-1 unknown)
    private_label: npt.NDArray[np.bool_] | None  # None: the catalog cannot tell
    provider: npt.NDArray[np.object_]  # brand/provider group label for item-side exposure
    provider_column: str | None

    @classmethod
    def build(cls, vocab: IdVocabulary, catalog: pl.DataFrame, train: pl.DataFrame, *, max_providers: int = 10) -> ItemInfo:
        n = len(vocab)
        cat = pl.DataFrame({"item_id": vocab.to_list()}, schema={"item_id": pl.Utf8}).join(
            catalog.with_columns(pl.col("item_id").cast(pl.Utf8)).unique("item_id", keep="first"),
            on="item_id", how="left", maintain_order="left",
        )
        buyers = train.group_by("item_id").agg(pl.col("customer_id").n_unique().alias("n"))
        n_customers = max(train["customer_id"].n_unique(), 1)
        counts = np.zeros(n)
        idx = vocab.indices(buyers["item_id"].to_list())
        ok = idx >= 0
        counts[idx[ok]] = buyers["n"].to_numpy()[ok]
        popularity = counts / n_customers

        category = np.full(n, -1, dtype=np.int64)
        price_level = np.full(n, np.nan)
        if "category" in cat.columns:
            codes = cat["category"].cast(pl.Utf8).fill_null("\x00unknown").cast(pl.Categorical).to_physical()
            category = codes.to_numpy().astype(np.int64)
        if "price" in cat.columns:
            price = cat["price"].cast(pl.Float64, strict=False).to_numpy()
            frame = pl.DataFrame({"c": category, "p": price}).with_row_index("row")
            has = frame.filter(pl.col("p").is_not_nan() & pl.col("p").is_not_null())
            if has.height:
                ranked = has.with_columns(
                    ((pl.col("p").rank("average").over("c") - 1) / (pl.len().over("c") - 1).clip(1, None)).alias("lvl"),
                    (pl.len().over("c") == 1).alias("single"),
                ).with_columns(pl.when(pl.col("single")).then(0.5).otherwise(pl.col("lvl")).alias("lvl"))
                price_level[ranked["row"].to_numpy()] = ranked["lvl"].to_numpy()

        private: npt.NDArray[np.bool_] | None = None
        if "private_label" in cat.columns:
            text = cat["private_label"].cast(pl.Utf8).str.to_lowercase()
            if text.null_count() < len(text):
                private = text.is_in(["true", "1", "yes", "t"]).fill_null(False).to_numpy()
        if private is None and "brand" in cat.columns:
            values = set(cat["brand"].drop_nulls().cast(pl.Utf8).str.to_lowercase().unique().to_list())
            if values and values <= {"private", "national", "private label", "national brand"}:
                private = cat["brand"].cast(pl.Utf8).str.to_lowercase().str.starts_with("private").fill_null(False).to_numpy()

        provider = np.full(n, "all", dtype=object)
        provider_column: str | None = None
        if private is not None:
            provider = np.where(private, "private label", "national brand").astype(object)
            provider_column = "private_label"
        elif "brand" in cat.columns and cat["brand"].null_count() < cat.height:
            brands = cat["brand"].cast(pl.Utf8).fill_null(UNKNOWN_PROVIDER)
            top = brands.value_counts(sort=True).head(max_providers)["brand"].to_list()
            provider = np.where(brands.is_in(top).to_numpy(), brands.to_numpy(), "other").astype(object)
            provider_column = "brand"
        return cls(popularity, price_level, category, private, provider, provider_column)


UNKNOWN_PROVIDER = "unknown"


@dataclass(frozen=True, eq=False)
class Outcomes:
    """``frame``: ``customer_id`` + one float column per metric, rows as ``truth.customer_ids``.

    ``recs``: served item indices (customers x k, -1 padded); ``metrics``:
    the metric column names in report order.
    """

    frame: pl.DataFrame
    recs: npt.NDArray[np.int64]
    metrics: tuple[str, ...]
    k: int


def recommend_cohort(
    model: Recommender,
    customers: Sequence[str],
    *,
    k: int,
    policy: ServingPolicy | None = None,
    reason_types: ReasonTypes | None = None,
    progress: Progress | None = None,
    label: str = "recommend",
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], list[list[str]] | None]:
    """(item indices customers x k, fell-back-to-popular flags, reason types per item or None)."""
    discovery = model.config.mode == "discovery"
    filters = Filters(exclude_purchased=True, allow_repeats=not discovery)
    recs = np.full((len(customers), k), -1, dtype=np.int64)
    fallback = np.zeros(len(customers), dtype=bool)
    reasons: list[list[str]] | None = [] if reason_types is not None else None
    step = max(1, len(customers) // 100)
    for row, customer in enumerate(customers):
        ranked = model.recommend(customer, k, filters=filters, policy=policy)
        idx = [it.index for it in ranked.items]
        recs[row, : len(idx)] = idx
        fallback[row] = ranked.status != "known"
        if reasons is not None:
            reasons.append([str(t) for t in reason_types(ranked)])  # type: ignore[misc]
        if progress and (row % step == 0 or row == len(customers) - 1):
            progress(label, row + 1, len(customers))
    return recs, fallback, reasons


def outcomes_from_recs(
    customers: Sequence[str],
    recs: npt.NDArray[np.int64],
    fallback: npt.NDArray[np.bool_],
    relevance: Relevance,
    items: ItemInfo,
    *,
    k: int,
    reasons: list[list[str]] | None = None,
) -> Outcomes:
    """Per-customer metrics from served lists (pure; the benchmark uses it directly)."""
    quality = ranking_metrics(recs, relevance, k=k, recall_ks=())
    shown = recs >= 0
    n_shown = shown.sum(axis=1).astype(np.float64)
    safe = np.where(shown, recs, 0)

    def mean_of(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        v = values[safe]
        ok = shown & np.isfinite(v)
        total = np.where(ok, v, 0.0).sum(axis=1)
        cnt = ok.sum(axis=1)
        return np.divide(total, cnt, out=np.full(len(recs), np.nan), where=cnt > 0)

    data: dict[str, object] = {"customer_id": list(customers)}
    data[f"ndcg@{k}"] = quality[f"ndcg@{k}"]
    data[f"recall@{k}"] = quality[f"recall@{k}"]
    data[f"hr@{k}"] = quality[f"hr@{k}"]
    data["popularity"] = mean_of(items.popularity)
    if items.private_label is not None:
        data["private_label_share"] = mean_of(items.private_label.astype(np.float64))
    if np.isfinite(items.price_level).any():
        data["price_level"] = mean_of(items.price_level)
    if (items.category >= 0).any():
        s = np.sort(np.where(shown, items.category[safe], -2), axis=1)
        new = np.ones(s.shape, dtype=bool)
        new[:, 1:] = s[:, 1:] != s[:, :-1]
        distinct = ((s >= 0) & new).sum(axis=1).astype(np.float64)
        data["category_diversity"] = np.divide(distinct, n_shown, out=np.full(len(recs), np.nan), where=n_shown > 0)
    data["cold_start_share"] = fallback.astype(np.float64)
    if reasons is not None:
        types = sorted({t for row in reasons for t in row})
        for t in types:
            share = np.array([(sum(1 for x in row if x == t) / len(row)) if row else np.nan for row in reasons])
            data[f"reason:{t}"] = share
    frame = pl.DataFrame(data, schema_overrides={"customer_id": pl.Utf8}, strict=False)
    metrics = tuple(c for c in frame.columns if c != "customer_id")
    return Outcomes(frame=frame, recs=recs, metrics=metrics, k=k)
