"""The clearshelf recommender: retrieval from several sources, then LambdaRank.

Data flow for one customer (:meth:`Recommender.recommend`)::

    history lookup -> candidate selection (ALS, EASE, co-purchase, content,
    buy-again, popularity) -> features -> ranker score -> policy (filters) -> top-k

Training (:meth:`Recommender.fit`) learns the ranker from *label windows* at
the end of the training period: retrievers are fit on the events before a
window, candidates are generated and labelled by what the customer did in the
window. Nothing after the training data is looked at, so an evaluation's test
period never leaks in. Finally the retrievers are refit on all training
events for serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.errors import NotFittedError
from recsys.interactions import DAY, InteractionConfig, Interactions
from recsys.ranking.features import (
    FEATURE_NAMES,
    MISSING_RANK,
    CustomerProfile,
    ItemTable,
    build_features,
)
from recsys.ranking.policy import ServingPolicy, active_boundary, apply_policy
from recsys.ranking.ranker import LambdaRanker, RankerConfig
from recsys.retrieval.als import AlsConfig, AlsRetriever
from recsys.retrieval.buy_again import BuyAgainConfig, BuyAgainRetriever
from recsys.retrieval.content import ContentConfig, ContentRetriever
from recsys.retrieval.copurchase import CoPurchaseConfig, CoPurchaseRetriever
from recsys.retrieval.ease import EaseConfig, EaseRetriever
from recsys.retrieval.popularity import PopularityConfig, PopularityRetriever

Progress = Callable[[str, int, int], None]
CustomerStatus = Literal["known", "cold_start", "not_personalised"]


@dataclass(frozen=True)
class CandidateCounts:
    """How many candidates each source proposes per customer."""

    als: int = 100
    ease: int = 100
    copurchase: int = 100
    content: int = 40
    buy_again: int = 40
    popularity: int = 30


@dataclass(frozen=True)
class RecommenderConfig:
    """Everything that defines a trained clearshelf model, seeds included.

    - ``mode``: ``"repeats"`` lets the customer's repeat purchases (from the
      buy-again source) be recommended and learned; ``"discovery"`` never
      proposes items the customer already had (offline discovery evaluation).
    - ``label_windows``/``label_window_days``: the ranker learns from this many
      consecutive windows of this length at the end of the training data
      (without timestamps: one seeded random hold-out per customer).
    - ``level2_column``/``level3_column``: catalog columns of a deeper product
      hierarchy (e.g. department, product type) for the share features.
    - ``content_pool_max_customers``: on catalogs larger than
      ``content_full_scan_items``, the content source proposes only items that
      at most this many customers had (new and rare items, what it is for);
      every other candidate still gets its content score.
    - ``relevant_min_rating``: a rating counts as a positive label from this value.
    """

    interactions: InteractionConfig = field(default_factory=InteractionConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
    ease: EaseConfig | None = field(default_factory=lambda: EaseConfig(max_items=8000))
    copurchase: CoPurchaseConfig = field(default_factory=CoPurchaseConfig)
    content: ContentConfig | None = field(default_factory=ContentConfig)
    popularity: PopularityConfig = field(default_factory=PopularityConfig)
    buy_again: BuyAgainConfig = field(default_factory=BuyAgainConfig)
    candidates: CandidateCounts = field(default_factory=CandidateCounts)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    mode: Literal["repeats", "discovery"] = "repeats"
    label_windows: int = 1
    label_window_days: float = 28.0
    max_training_customers: int = 4000
    level2_column: str | None = None
    level3_column: str | None = None
    content_full_scan_items: int = 20_000
    content_pool_max_customers: int = 3
    relevant_min_rating: float = 4.0
    seed: int = 42


@dataclass(frozen=True)
class Filters:
    """Serving filters. Inactive catalog items are always removed."""

    category: str | None = None
    max_price: float | None = None
    exclude_purchased: bool = True  # except the buy-again source's repeat items
    allow_repeats: bool = True


@dataclass(frozen=True)
class RankedItem:
    """One recommended item with what it was ranked on."""

    item_id: str
    index: int
    rank: int
    score: float
    sources: tuple[str, ...]
    features: npt.NDArray[np.float32]  # aligned with FEATURE_NAMES; zeros for cold start


@dataclass(frozen=True)
class RankedList:
    """The recommendation for one customer."""

    customer: str
    status: CustomerStatus
    items: tuple[RankedItem, ...]
    model_version: str
    feature_names: tuple[str, ...] = FEATURE_NAMES

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


@dataclass
class CandidateSet:
    """Merged candidates of one customer with aligned per-source scores and ranks."""

    items: npt.NDArray[np.int32]
    source_names: tuple[str, ...]
    proposed: npt.NDArray[np.bool_]  # (items, sources): which source proposed which item
    features: npt.NDArray[np.float32]

    def sources(self, j: int) -> tuple[str, ...]:
        """Names of the sources that proposed candidate ``j``."""
        return tuple(n for n, hit in zip(self.source_names, self.proposed[j], strict=True) if hit)

    def proposed_by(self, source: str) -> npt.NDArray[np.bool_]:
        if source not in self.source_names:
            return np.zeros(len(self.items), bool)
        return self.proposed[:, self.source_names.index(source)]


class Stage:
    """Retrievers fit on one set of interactions, plus the item table for features."""

    def __init__(self, config: RecommenderConfig, interactions: Interactions) -> None:
        self.config = config
        self.interactions = interactions

    def fit(self, progress: Progress | None = None, label: str = "retrievers") -> Self:
        c, inter = self.config, self.interactions
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("popularity", lambda: PopularityRetriever(c.popularity).fit(inter)),
            ("buy_again", lambda: BuyAgainRetriever(c.buy_again).fit(inter)),
            ("copurchase", lambda: CoPurchaseRetriever(c.copurchase).fit(inter)),
            ("als", lambda: AlsRetriever(c.als).fit(inter)),
        ]
        if c.ease is not None:
            steps.append(("ease", lambda: EaseRetriever(c.ease).fit(inter)))
        if c.content is not None:
            steps.append(("content", lambda: ContentRetriever(c.content).fit(inter)))
        self.retrievers: dict[str, Any] = {}
        self.fit_seconds: dict[str, float] = {}
        for n, (name, make) in enumerate(steps):
            started = time.perf_counter()
            self.retrievers[name] = make()
            self.fit_seconds[name] = time.perf_counter() - started
            if progress:
                progress(label, n + 1, len(steps))
        self.table = ItemTable.build(
            inter, self.retrievers["popularity"],
            level2_column=c.level2_column, level3_column=c.level3_column,
        )
        n_items = len(inter.items)
        if "content" in self.retrievers and n_items > c.content_full_scan_items:
            customers_per_item = np.asarray(self.retrievers["popularity"].counts_)
            self.content_pool = np.flatnonzero(
                (customers_per_item <= c.content_pool_max_customers) & self.retrievers["content"].has_text_
            ).astype(np.int32)
        else:
            self.content_pool = None
        return self

    # -- one customer -----------------------------------------------------------------

    def profile(self, u: int) -> CustomerProfile:
        inter = self.interactions
        m = inter.matrix
        items = m.indices[m.indptr[u] : m.indptr[u + 1]].astype(np.int32)
        weights = m.data[m.indptr[u] : m.indptr[u + 1]].astype(np.float32)
        counts = inter.counts[u].toarray().ravel()[items] if len(items) else np.zeros(0, np.float32)
        last = self._last_ts[u] if hasattr(self, "_last_ts") else None
        if last is None:
            last_ts = np.full(len(items), np.nan)
        else:
            last_ts = last.toarray().ravel()[items].astype(np.float64)
            last_ts[last_ts == 0] = np.nan
        n_events = int(self._n_events[u]) if hasattr(self, "_n_events") else len(items)
        return CustomerProfile(items, weights, last_ts, counts.astype(np.float32), n_events)

    def prepare_profiles(self) -> None:
        """Per-customer lookups (last event time per item, event counts) used by features."""
        ev = self.interactions.events
        shape = self.interactions.shape
        if self.interactions.now is not None:
            last = ev.filter(pl.col("ts").is_not_null()).group_by("u", "i").agg(pl.col("ts").max())
            self._last_ts = sp.csr_matrix(
                (last["ts"].to_numpy().astype(np.float64), (last["u"].to_numpy(), last["i"].to_numpy())),
                shape=shape,
            )
        self._n_events = np.bincount(ev["u"].to_numpy(), minlength=shape[0])

    def candidates(
        self,
        customer: str,
        *,
        allow_repeats: bool,
        category: str | None = None,
        now: float | None = None,
    ) -> CandidateSet | None:
        """Merged candidates and their features; None for a customer without history."""
        inter, c, r = self.interactions, self.config, self.retrievers
        u = inter.customers.index(customer)
        if u < 0:
            return None
        profile = self.profile(u)
        if profile.empty:
            return None
        history = profile.items
        n_items = len(inter.items)
        full: dict[str, npt.NDArray[np.float32]] = {}
        proposals: dict[str, npt.NDArray[np.int32]] = {}
        counts = c.candidates
        for name in ("als", "ease", "copurchase"):
            if name not in r:
                continue
            scores = r[name].score_all(customer)
            full[name] = scores
            proposals[name] = _top(scores, getattr(counts, name), exclude=history)
        content_scores = None
        if "content" in r:
            # scored on demand: a full catalog scan is the costliest step on big catalogs
            content_scores = _content_profile_scores(r["content"], r["content"].history_row(customer))
            pool = self.content_pool
            if pool is None:
                proposals["content"] = _top(content_scores(None), counts.content, exclude=history)
            else:
                cand = pool[_top(content_scores(pool), counts.content, exclude=None)]
                proposals["content"] = cand[~np.isin(cand, history)]
        if allow_repeats:
            ba = r["buy_again"].candidates(customer, counts.buy_again, now=now)
            proposals["buy_again"] = ba.items
        pop = r["popularity"].candidates(customer, counts.popularity + len(history), category=category)
        proposals["popularity"] = pop.items[~np.isin(pop.items, history)][: counts.popularity]
        if category is not None:
            catpop = r["popularity"].candidates(customer, counts.popularity, category=category)
            proposals["popularity"] = np.union1d(proposals["popularity"], catpop.items).astype(np.int32)

        items = np.unique(np.concatenate([p for p in proposals.values() if len(p)] or [np.empty(0, np.int32)]))
        items = items.astype(np.int32)
        if len(items) == 0:
            return None
        source_scores: dict[str, npt.NDArray[np.float32]] = {}
        source_ranks: dict[str, npt.NDArray[np.float32]] = {}
        rank_of = np.full(n_items, MISSING_RANK, np.float32)
        for name, props in proposals.items():
            rank_of[props] = np.arange(1, len(props) + 1, dtype=np.float32)
            source_ranks[name] = rank_of[items].copy()
            rank_of[props] = MISSING_RANK
        for name, scores in full.items():
            source_scores[name] = scores[items]
        if content_scores is not None:
            source_scores["content"] = content_scores(items)
        ba_scores = r["buy_again"].score_all(customer, now=now)
        source_scores["buy_again"] = ba_scores[items]
        copurchase_max = _copurchase_max(r["copurchase"], inter.matrix[u], items)
        ba_ratio = _buy_again_ratio(r["buy_again"], customer, items, now)
        features = build_features(
            self.table,
            profile,
            items,
            source_scores=source_scores,
            source_ranks=source_ranks,
            copurchase_max=copurchase_max,
            buy_again_ratio=ba_ratio,
            now=now if now is not None else inter.now,
        )
        names = tuple(proposals)
        proposed = np.stack([source_ranks[n] < MISSING_RANK for n in names], axis=1)
        return CandidateSet(items, names, proposed, features)


def _top(scores: npt.NDArray[np.float32], n: int, *, exclude: npt.NDArray[np.int32] | None) -> npt.NDArray[np.int32]:
    from recsys.retrieval.base import top_k

    s = scores
    if exclude is not None and len(exclude):
        s = scores.copy()
        s[exclude] = -np.inf
    idx = top_k(s, n)
    return idx[np.isfinite(s[idx]) & (s[idx] > 0)].astype(np.int32)


def _content_profile_scores(content: ContentRetriever, row: sp.csr_matrix) -> Callable[[Any], npt.NDArray[np.float32]]:
    """Cosine to the customer's content profile for a subset of items (None = all)."""
    emb = content.embeddings_
    if row.nnz == 0:
        return lambda items: np.zeros(len(emb) if items is None else len(items), np.float32)
    profile = row.data.astype(np.float32) @ emb[row.indices]
    norm = float(np.linalg.norm(profile))
    if norm > 0:
        profile = profile / norm

    def scores(items: npt.NDArray[np.int32] | None) -> npt.NDArray[np.float32]:
        sub = emb if items is None else emb[items]
        return (sub @ profile).astype(np.float32)

    return scores


def _copurchase_max(cop: CoPurchaseRetriever, row: sp.csr_matrix, items: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """Largest single history item's contribution to each item's co-purchase score."""
    if row.nnz == 0:
        return np.zeros(len(items), np.float32)
    sim = cop.similarity_[row.indices][:, items]  # (history, items)
    contrib = sim.multiply(row.data[:, None]).tocsc()
    out = np.zeros(len(items), np.float32)
    if contrib.nnz:
        out = np.asarray(contrib.max(axis=0).toarray()).ravel().astype(np.float32)
    return out


def _buy_again_ratio(ba: BuyAgainRetriever, customer: str, items: npt.NDArray[np.int32], now: float | None) -> npt.NDArray[np.float32]:
    out = np.zeros(len(items), np.float32)
    s = ba._pairs(customer)
    if s.stop == s.start:
        return out
    pos = {int(i): j for j, i in enumerate(ba.pair_items_[s])}
    _, days_since = ba._due(s, ba._now(now))
    ratio = days_since / ba.interval_days_[s]
    for j, i in enumerate(items):
        p = pos.get(int(i))
        if p is not None:
            out[j] = ratio[p]
    return out


class Recommender:
    """Two-stage clearshelf recommender. ``fit(interactions)``, then ``recommend(customer, k)``.

    Unknown customers, customers without history and customers without
    personalisation consent get the popular (or, with a category filter,
    category-popular) items, flagged as cold start / not personalised.
    """

    def __init__(self, config: RecommenderConfig = RecommenderConfig()) -> None:
        self.config = config

    # -- training ---------------------------------------------------------------------

    def fit(self, interactions: Interactions, *, progress: Progress | None = None) -> Self:
        c = self.config
        started = time.perf_counter()
        with threadpool_limits(1, "blas"):
            blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for w, (hist, labels) in enumerate(self._label_windows(interactions)):
                stage_inter = Interactions.from_events(
                    hist,
                    item_ids=interactions.items.to_list(),
                    customer_ids=interactions.customers.to_list(),
                    catalog=interactions.catalog,
                    config=interactions.config,
                )
                stage = Stage(c, stage_inter).fit(progress, label=f"window {w + 1}")
                stage.prepare_profiles()
                blocks.append(self._training_rows(stage, labels, progress, w))
            X = np.concatenate([b[0] for b in blocks])
            y = np.concatenate([b[1] for b in blocks])
            groups = np.concatenate([b[2] for b in blocks])
            self.training_rows_ = int(X.shape[0])
            self.training_groups_ = len(groups)
            self.ranker_ = LambdaRanker(c.ranker).fit(X, y, groups)
            if progress:
                progress("ranker", 1, 1)
            self.stage_ = Stage(c, interactions).fit(progress, label="serving")
            self.stage_.prepare_profiles()
        self.interactions_ = interactions
        self.fit_seconds_ = time.perf_counter() - started
        self.version_ = "unsaved"
        return self

    def _label_windows(self, inter: Interactions) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
        c = self.config
        ev = inter.events.select("customer_id", "item_id", "event_type", "ts", "value")
        windows = []
        if inter.now is not None and ev["ts"].null_count() == 0:
            end = float(inter.now) + 1
            for _ in range(c.label_windows):
                start = end - c.label_window_days * DAY
                hist = ev.filter(pl.col("ts") < start)
                labels = ev.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
                if hist.height and labels.height:
                    windows.append((hist, labels))
                end = start
        else:
            rng = np.random.default_rng(c.seed)
            hold = rng.random(ev.height) < 0.2
            ev = ev.with_columns(pl.Series("hold", hold))
            windows.append((ev.filter(~pl.col("hold")).drop("hold"), ev.filter(pl.col("hold")).drop("hold")))
        if not windows:
            raise ValueError(
                "not enough history to train the ranker: the training data must span more than "
                f"label_window_days ({c.label_window_days:g} days) with events before and inside that window"
            )
        return windows

    def _positives(self, labels: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        return labels.filter(
            (pl.col("event_type") == "purchase")
            | ((pl.col("event_type") == "rating") & (pl.col("value") >= c.relevant_min_rating))
        ).unique(["customer_id", "item_id"])

    def _training_rows(
        self, stage: Stage, labels: pl.DataFrame, progress: Progress | None, window: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        pos = self._positives(labels)
        by_customer = pos.group_by("customer_id").agg(pl.col("item_id"))
        customers = sorted(by_customer["customer_id"].to_list())
        rng = np.random.default_rng(c.seed + window)
        if len(customers) > c.max_training_customers:
            customers = sorted(rng.choice(customers, c.max_training_customers, replace=False).tolist())
        wanted = dict(zip(by_customer["customer_id"].to_list(), by_customer["item_id"].to_list(), strict=True))
        Xs, ys, groups = [], [], []
        allow_repeats = c.mode == "repeats"
        for n, customer in enumerate(customers):
            cs = stage.candidates(customer, allow_repeats=allow_repeats)
            if cs is not None:
                targets = stage.interactions.items.indices(wanted[customer])
                label = np.isin(cs.items, targets).astype(np.float32)
                if label.any():
                    Xs.append(cs.features)
                    ys.append(label)
                    groups.append(len(label))
            if progress and (n % 200 == 0 or n == len(customers) - 1):
                progress(f"features {window + 1}", n + 1, len(customers))
        if not Xs:
            raise ValueError("no training customer had a labelled item among their candidates")
        return np.concatenate(Xs), np.concatenate(ys), np.asarray(groups)

    # -- serving ----------------------------------------------------------------------

    def _check(self) -> None:
        if not hasattr(self, "ranker_"):
            raise NotFittedError("Recommender")

    def recommend(
        self,
        customer: str,
        k: int = 10,
        *,
        filters: Filters = Filters(),
        personalise: bool = True,
        now: float | None = None,
        policy: ServingPolicy | None = None,
    ) -> RankedList:
        """Top-``k`` items for ``customer`` (the id the model knows them by).

        ``personalise=False`` (no consent) serves the non-personalised list.
        Unknown customers are not an error: they get popular items, flagged
        ``cold_start``. ``policy`` (see :mod:`recsys.ranking.policy`) drops
        candidates below its score floor and re-orders less-active customers'
        lists; item scores stay the ranker's own.
        """
        self._check()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        stage = self.stage_
        if not personalise:
            return self._popular(customer, k, filters, "not_personalised")
        allow_repeats = filters.allow_repeats and self.config.mode == "repeats"
        cs = stage.candidates(customer, allow_repeats=allow_repeats, category=filters.category, now=now)
        if cs is None:
            return self._popular(customer, k, filters, "cold_start")
        keep = self._filter_mask(cs.items, filters)
        if filters.exclude_purchased:
            history = stage.interactions.history(customer)
            repeat_ok = cs.proposed_by("buy_again") if allow_repeats else np.zeros(len(cs.items), bool)
            keep &= ~np.isin(cs.items, history) | repeat_ok
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            return self._popular(customer, k, filters, "known")
        scores = self.ranker_.predict(cs.features[idx])
        key = scores
        if policy is not None and not policy.is_identity:
            kept, key = apply_policy(policy, scores, cs.features[idx], boundary=active_boundary(self))
            idx, scores = idx[kept], scores[kept]
        order = np.lexsort((cs.items[idx], -key))[:k]
        ranked = tuple(
            RankedItem(
                item_id=str(stage.interactions.items.ids[cs.items[idx[o]]]),
                index=int(cs.items[idx[o]]),
                rank=r + 1,
                score=float(scores[o]),
                sources=cs.sources(int(idx[o])),
                features=cs.features[idx[o]],
            )
            for r, o in enumerate(order)
        )
        return RankedList(customer, "known", ranked, self.version_)

    def _filter_mask(self, items: npt.NDArray[np.int32], filters: Filters) -> npt.NDArray[np.bool_]:
        keep = self._active_mask()[items].copy()
        if filters.category is not None:
            cats = self._category_array()
            keep &= cats[items] == filters.category
        if filters.max_price is not None:
            price = self.stage_.table.price[items]
            keep &= np.isfinite(price) & (price <= filters.max_price)
        return keep

    def _active_mask(self) -> npt.NDArray[np.bool_]:
        if not hasattr(self, "_active"):
            cat = self.stage_.interactions.catalog
            if "active" in cat.columns:
                self._active = cat["active"].fill_null(True).to_numpy().astype(bool)
            else:
                self._active = np.ones(cat.height, bool)
        return self._active

    def _category_array(self) -> npt.NDArray[np.object_]:
        if not hasattr(self, "_categories"):
            self._categories = np.asarray(self.stage_.interactions.catalog["category"].to_list(), dtype=object)
        return self._categories

    def _popular(self, customer: str, k: int, filters: Filters, status: CustomerStatus) -> RankedList:
        pop = self.stage_.retrievers["popularity"]
        n = len(self.stage_.interactions.items)
        cands = pop.candidates(customer, n if (filters.max_price or filters.category) else k * 3, category=filters.category)
        keep = self._filter_mask(cands.items, replace(filters, category=None)) if len(cands) else np.zeros(0, bool)
        items, scores = cands.items[keep][:k], cands.scores[keep][:k]
        zeros = np.zeros(len(FEATURE_NAMES), np.float32)
        ranked = tuple(
            RankedItem(
                item_id=str(self.stage_.interactions.items.ids[i]),
                index=int(i),
                rank=r + 1,
                score=float(s),
                sources=("popularity",),
                features=zeros,
            )
            for r, (i, s) in enumerate(zip(items, scores, strict=True))
        )
        return RankedList(customer, status, ranked, self.version_)

    # -- evaluation -------------------------------------------------------------------

    def recommend_indices(self, customers: Sequence[str], k: int, *, discovery: bool = True) -> npt.NDArray[np.int64]:
        """Top-k item indices per customer (customers x k, -1 padded), for offline evaluation."""
        out = np.full((len(customers), k), -1, dtype=np.int64)
        filters = Filters(exclude_purchased=True, allow_repeats=not discovery)
        for row, customer in enumerate(customers):
            ranked = self.recommend(customer, k, filters=filters)
            idx = [it.index for it in ranked.items]
            out[row, : len(idx)] = idx
        return out
