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

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.linalg as sla
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.errors import ConfigError, NotFittedError, TrainingDataError
from recsys.history import (
    CustomerHistory,
    check_items,
    empty_history,
    history_from_events,
    override_history,
    stored_events,
    stored_history,
    validate_events,
    values_at,
)
from recsys.interactions import DAY, InteractionConfig, Interactions
from recsys.links import gather as gather_links
from recsys.links import link_pass, subtract_owners
from recsys.ranking.features import (
    FEATURE_NAMES,
    MISSING_RANK,
    CustomerProfile,
    ItemTable,
    build_feature_stack,
    build_features,
)
from recsys.ranking.policy import ServingPolicy, active_boundary, apply_policy
from recsys.ranking.ranker import LambdaRanker, RankerConfig
from recsys.ranks import listed_ranks, ranks_at
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
      consecutive windows of this length at the end of the training data.
    - ``label_split``: ``"time"`` labels with those windows; ``"random"``
      with ``label_windows`` seeded random hold-outs of ``label_fraction`` of
      the events (what a random evaluation split asks the model to do:
      MovieLens customers rate in a few sessions, so a last-weeks window
      holds almost nobody); ``"auto"`` is time windows when every event has a
      timestamp, else random.
    - ``level2_column``/``level3_column``: catalog columns of a deeper product
      hierarchy (e.g. department, product type) for the share features.
    - ``content_pool_max_customers``: on catalogs larger than
      ``content_full_scan_items``, the content source proposes only items that
      at most this many customers had (new and rare items, what it is for);
      every other candidate still gets its content score.
    - ``relevant_min_rating``: a rating counts as a positive label from this value.
    - ``precomputed_customers``: a trained serving bundle keeps the candidate
      step's output of this many customers, the most recently active first
      (:class:`PrecomputedCandidates`; 29 KB each on Complete Journey, in
      every worker's memory); 0 turns it off. :meth:`fit` itself does not
      build it: :meth:`Recommender.precompute_candidates` does, called by
      :func:`recsys.training.train_from_store`.
    """

    interactions: InteractionConfig = field(default_factory=InteractionConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
    ease: EaseConfig | None = field(default_factory=lambda: EaseConfig(max_items=8000))
    copurchase: CoPurchaseConfig = field(default_factory=CoPurchaseConfig)
    content: ContentConfig | None = field(default_factory=ContentConfig)
    popularity: PopularityConfig = field(default_factory=PopularityConfig)
    buy_again: BuyAgainConfig = field(default_factory=BuyAgainConfig)
    candidates: CandidateCounts = field(default_factory=CandidateCounts)
    # three seeds of 33 trees, averaged: as cheap to score and explain as one 99-tree model, steadier
    ranker: RankerConfig = field(default_factory=lambda: RankerConfig(n_estimators=33, seeds=(42, 43, 44)))
    mode: Literal["repeats", "discovery"] = "repeats"
    label_windows: int = 2
    label_window_days: float = 28.0
    label_split: Literal["auto", "time", "random"] = "auto"
    label_fraction: float = 0.2
    max_training_customers: int = 4000
    level2_column: str | None = None
    level3_column: str | None = None
    content_full_scan_items: int = 20_000
    content_pool_max_customers: int = 3
    relevant_min_rating: float = 4.0
    precomputed_customers: int = 10_000
    seed: int = 42


@dataclass(frozen=True)
class Filters:
    """Serving filters. Inactive catalog items are always removed."""

    category: str | None = None
    max_price: float | None = None
    exclude_purchased: bool = True  # except the buy-again source's repeat items
    allow_repeats: bool = True


def proposal_ranks(
    proposals: dict[str, npt.NDArray[np.int32]], items: npt.NDArray[np.int32], n_items: int
) -> dict[str, npt.NDArray[np.float32]]:
    """Each source's 1-based rank of ``items`` in its proposal list (``MISSING_RANK`` if not proposed)."""
    ranks: dict[str, npt.NDArray[np.float32]] = {}
    rank_of = np.full(n_items, MISSING_RANK, np.float32)
    for name, props in proposals.items():
        rank_of[props] = np.arange(1, len(props) + 1, dtype=np.float32)
        ranks[name] = rank_of[items].copy()
        rank_of[props] = MISSING_RANK
    return ranks


def _had(n_items: int, history_items: npt.NDArray[np.int32], items: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Which of ``items`` the history has (what ``exclude_purchased`` removes), via a catalogue mask:
    cheaper than np.isin against the history."""
    mask = np.zeros(n_items, bool)
    mask[history_items] = True
    return mask[items]


def _buy_again_proposals(repeats: Any, due: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int32]:
    """The buy-again source's proposals: the ``k`` most due repeat items with a positive score."""
    if len(repeats) == 0:
        return np.empty(0, np.int32)
    order = np.lexsort((repeats.items, -due))[:k]
    order = order[due[order] > 0]
    return repeats.items[order].astype(np.int32)


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
    # what the list was made under: the explanations' counterfactual check re-scores under the same
    filters: Filters = field(default_factory=Filters)
    now: float | None = None
    # the history the list was ranked from and the work on it that does not depend on the
    # candidates (None for cold start): the explanations read the same history and reuse the work
    basis: ListBasis | None = field(default=None, compare=False, repr=False)
    # the pool's next item after the list, (item index, score), when the list is the pool's top k by
    # the ranker's score (no serving policy): the explanations' check sees whether an item falls below it
    runner_up: tuple[int, float] | None = field(default=None, compare=False, repr=False)

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


@dataclass(frozen=True, eq=False, repr=False)
class ListBasis:
    """One history and what the candidate step computed from it alone, for one list's lifetime.

    :meth:`Stage.candidates` makes it, :meth:`Recommender.recommend` hands it
    on in the :class:`RankedList`, and the explanations' counterfactual check
    (:meth:`Recommender.score_without`) starts from it instead of looking the
    history up and recomputing: the same arrays, so the same results, and
    the history is the one the list was ranked from even if an event
    arrived in between.
    """

    history: CustomerHistory
    ease_history: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None  # EASE's slots and values
    ease_modelled: npt.NDArray[np.float32] | None  # EASE scores of the modelled items
    copurchase_links: tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]  # see _copurchase_links
    # the content profile and its scores of the whole catalogue, when the candidate step scanned it
    content_scan: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # work done for the list after ranking it

    def als_system(self, als: Any) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64], Any]:
        """The history's ALS fold-in system, once per list for the evidence and the check:
        items, confidences and the Cholesky factor (None for no items)."""
        got = self.memo.get("als_system")
        if got is None:
            items, confidence = als._confidences(self.history.row)
            got = self.memo["als_system"] = (items, confidence, als._system(items, confidence) if len(items) else None)
        return got  # type: ignore[no-any-return]


@dataclass
class CandidateSet:
    """Merged candidates of one customer with aligned per-source scores and ranks."""

    items: npt.NDArray[np.int32]
    source_names: tuple[str, ...]
    proposed: npt.NDArray[np.bool_]  # (items, sources): which source proposed which item
    features: npt.NDArray[np.float32]
    basis: ListBasis | None = None

    def sources(self, j: int) -> tuple[str, ...]:
        """Names of the sources that proposed candidate ``j``."""
        return tuple(n for n, hit in zip(self.source_names, self.proposed[j], strict=True) if hit)

    def proposed_by(self, source: str) -> npt.NDArray[np.bool_]:
        if source not in self.source_names:
            return np.zeros(len(self.items), bool)
        return self.proposed[:, self.source_names.index(source)]


@dataclass(frozen=True, eq=False, repr=False)
class PrecomputedCandidates:
    """The candidate step's output for the customers likeliest to ask, computed once after training.

    For a known customer the candidate step (catalogue-wide scans per
    source, merging, features) is most of :meth:`Recommender.recommend`'s
    time (docs/performance.md). For a customer whose history has not changed
    since training its output is fixed, because serving ranks at the model's
    own ``now``: so it is computed here once, in the candidate step's own
    code, and kept as arrays: the candidates, their features, which sources
    proposed each and whether the customer had it. ``recommend`` then only
    filters, runs the ranker, applies the serving policy and picks the top
    k, with the same result as the live step (the tests compare bit for bit).

    It is used only where the live step would give the same set: no live
    events for the customer (:meth:`Recommender.observe`), no category filter
    (it changes the popularity proposals), no ``now``, the same repeats
    setting, and only for lists that will not be explained (the explanations
    reuse the live step's work, :class:`ListBasis`).
    :meth:`Recommender.forget` drops the customer's entry.
    """

    slots: dict[str, int]  # customer -> position in offsets
    offsets: npt.NDArray[np.int64]  # customer slot s owns rows offsets[s]:offsets[s + 1]
    items: npt.NDArray[np.int32]
    features: npt.NDArray[np.float32]  # (rows, len(FEATURE_NAMES))
    proposed: npt.NDArray[np.bool_]  # (rows, len(source_names))
    bought: npt.NDArray[np.bool_]  # the customer had the item (what ``exclude_purchased`` removes)
    source_names: tuple[str, ...]
    allow_repeats: bool
    seconds: float = 0.0  # how long building took

    @classmethod
    def build(
        cls, stage: Stage, customers: Sequence[str], *, allow_repeats: bool, progress: Progress | None = None
    ) -> PrecomputedCandidates:
        """Run the candidate step for each of ``customers`` (stored histories; customers without one are skipped)."""
        started = time.perf_counter()
        slots: dict[str, int] = {}
        sets: list[CandidateSet] = []
        bought: list[npt.NDArray[np.bool_]] = []
        names: tuple[str, ...] | None = None
        n_items = len(stage.interactions.items)
        for n, customer in enumerate(customers):
            h = stage.history(customer)
            cs = None if h is None else stage.candidates(customer, allow_repeats=allow_repeats, history=h)
            if cs is not None and h is not None:
                if names is None:
                    names = cs.source_names
                elif cs.source_names != names:  # the proposals' keys are fixed per model; guard anyway
                    raise RuntimeError(f"candidate sources changed between customers: {names} vs {cs.source_names}")
                bought.append(_had(n_items, h.items, cs.items))
                slots[customer] = len(sets)
                sets.append(cs)
            if progress and (n + 1) % 500 == 0:
                progress("precomputed candidates", n + 1, len(customers))
        if progress:
            progress("precomputed candidates", len(customers), len(customers))
        sizes = np.array([len(cs.items) for cs in sets], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n_features = len(FEATURE_NAMES)
        n_sources = len(names or ())
        return cls(
            slots=slots,
            offsets=offsets,
            items=np.concatenate([cs.items for cs in sets]) if sets else np.empty(0, np.int32),
            features=np.concatenate([cs.features for cs in sets]) if sets else np.empty((0, n_features), np.float32),
            proposed=np.concatenate([cs.proposed for cs in sets]) if sets else np.empty((0, n_sources), bool),
            bought=np.concatenate(bought) if sets else np.empty(0, bool),
            source_names=names or (),
            allow_repeats=allow_repeats,
            seconds=time.perf_counter() - started,
        )

    def get(self, customer: str) -> tuple[CandidateSet, npt.NDArray[np.bool_]] | None:
        """The customer's candidate set (no :class:`ListBasis`) and bought mask, or None. Copies
        (a few tens of KB), so a :meth:`drop` zeroing the rows cannot change a list being ranked."""
        s = self.slots.get(customer)
        if s is None:
            return None
        a, b = int(self.offsets[s]), int(self.offsets[s + 1])
        cs = CandidateSet(self.items[a:b].copy(), self.source_names, self.proposed[a:b].copy(),
                          self.features[a:b].copy())
        return cs, self.bought[a:b].copy()

    def drop(self, customer: str) -> int:
        """Forget ``customer``'s entry: 1 if there was one, whose rows are then zeroed, not just unlisted."""
        s = self.slots.pop(customer, None)
        if s is None:
            return 0
        a, b = int(self.offsets[s]), int(self.offsets[s + 1])
        for arr in (self.items, self.features, self.proposed, self.bought):
            arr[a:b] = 0
        return 1

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.items.nbytes + self.features.nbytes + self.proposed.nbytes
                   + self.bought.nbytes)


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

    def history(self, customer: str) -> CustomerHistory | None:
        """The customer's stored history, or None if the stage does not know them."""
        u = self.interactions.customers.index(customer)
        if u < 0:
            return None
        return stored_history(self, u)

    def prepare_profiles(self) -> None:
        """Per-customer lookups (last event time per item, event counts) used by features."""
        inter = self.interactions
        ev = inter.events
        shape = inter.shape
        for m in (inter.matrix, inter.counts):
            m.sort_indices()
        if inter.now is not None:
            last = ev.filter(pl.col("ts").is_not_null()).group_by("u", "i").agg(pl.col("ts").max())
            self._last_ts = sp.csr_matrix(
                (last["ts"].to_numpy().astype(np.float64), (last["u"].to_numpy(), last["i"].to_numpy())),
                shape=shape,
            )
            self._last_ts.sort_indices()
        self._n_events = np.bincount(ev["u"].to_numpy(), minlength=shape[0])
        if "content" in self.retrievers:
            self.retrievers["content"].profile_weights_.sort_indices()

    def pool_index(self) -> ContentPool:
        """The content pool with duplicate embeddings merged (cached; built on first use)."""
        index = self.__dict__.get("_pool_index")
        if index is None:
            index = ContentPool.build(self.retrievers["content"].embeddings_, self.content_pool)
            self._pool_index = index
        return index

    def content_norm_max(self) -> float:
        """The largest norm of a content embedding (about 1: they are normalised; cached)."""
        got = self.__dict__.get("_content_norm_max")
        if got is None:
            emb = self.retrievers["content"].embeddings_
            got = float(np.sqrt(np.einsum("ij,ij->i", emb, emb).max(initial=0.0)))
            self._content_norm_max = got
        return got

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for cache in (  # rebuilt on first use
            "_content_norm_max", "_pool_index", "_popular_order", "_popular_by_category", "_popular_position",
            "_als_index", "_als_norm_index", "_als_norm_position",
        ):
            state.pop(cache, None)
        return state

    def als_index(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Items with nonzero ALS factors (ascending) and their factors, contiguous (cached).

        Items nobody bought keep zero factors in ALS, so they score 0 for
        everyone and never become candidates: the scan skips them.
        """
        index = self.__dict__.get("_als_index")
        if index is None:
            factors = self.retrievers["als"].item_factors_
            active = np.flatnonzero(np.any(factors != 0, axis=1)).astype(np.int32)
            index = (active, np.ascontiguousarray(factors[active]))
            self._als_index = index
        return index

    def als_top(
        self, f: npt.NDArray[np.float32], n: int, n_excluded: int, excluded: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int32]:
        """The ALS source's proposals for user factor ``f``: :func:`_top` over every item's score,
        without scoring every item.

        The items are scanned in order of decreasing factor norm, in chunks
        that double, and the scan stops once the ``n + n_excluded``-th best
        score so far beats what any item left could score (``|f|`` times the
        largest norm left, Cauchy-Schwarz, with a margin far above float32
        rounding). On Complete Journey that is about a quarter of the
        catalogue for the median customer. The proposals are then picked as
        :func:`_top` picks them (best score first, ties to the lower item
        index, only positive scores, the excluded items left out).
        """
        ids, factors, norms = self.als_norm_index()
        total = len(ids)
        want = n + n_excluded
        if total == 0 or n <= 0:
            return np.empty(0, np.int32)
        bound = float(np.linalg.norm(f.astype(np.float64)))
        scores = np.empty(total, np.float32)
        end = min(total, max(4 * want, total // 4))
        np.matmul(factors[:end], f, out=scores[:end])
        while True:
            live = scores[:end]
            kth = np.partition(live, end - want)[end - want] if end >= want else -np.inf
            if end == total or float(kth) > bound * float(norms[end]) * (1 + 1e-3) + 1e-12:
                break
            grown = min(total, 2 * end)
            np.matmul(factors[end:grown], f, out=scores[end:grown])
            end = grown
        found = ids[:end]
        pos = np.flatnonzero(live >= kth)  # the best `want`, and every item tied with the last: ties go by item index
        pos = pos[np.lexsort((found[pos], -live[pos]))]
        pos = pos[np.isfinite(live[pos]) & (live[pos] > 0)]
        idx = found[pos]
        if n_excluded:
            idx = idx[~excluded[idx]]
        return idx[:n].astype(np.int32)

    def als_ranks_many(
        self,
        factors: npt.NDArray[np.float32],
        n: int,
        excluded: npt.NDArray[np.bool_],
        back: npt.NDArray[np.integer[Any]],
        items: npt.NDArray[np.int32],
    ) -> npt.NDArray[np.float32]:
        """Each of ``items``' 1-based rank in :meth:`als_top` for each row of ``factors`` (a user
        factor), ``MISSING_RANK`` if not proposed, without sorting any proposals.

        Row ``t``'s history is ``excluded`` with item ``back[t]`` taken out of
        it (-1: none). An item's rank is one plus the proposable items
        (positive, not excluded) that beat it (a higher score, or the same
        score at a lower item index), when fewer than ``n`` do
        (:func:`recsys.ranks.ranks_at`). One matrix product scans the
        catalogue by decreasing factor norm for every row, in chunks that
        double, until every listed item of every row is settled: either
        ``n`` items already beat it (more scanning only adds to them: not
        proposed), or it is not proposable, or its score is above what any
        item left could score (``|f|`` times the largest norm left,
        Cauchy-Schwarz, with the margin of :meth:`als_top`), so every item
        that beats it has been counted. A listed item is usually settled
        long before :meth:`als_top`'s stopping rule holds, which needs the
        ``n + history`` best of the whole catalogue (tested against
        :meth:`als_top`). The product's float32 rounding may differ in the
        last bits from one row's scan (another BLAS kernel), as the check's
        downdated factors already do from a from-scratch fold-in (see
        :meth:`removal_features`).
        """
        ids, by_norm, norms = self.als_norm_index()
        k, total, m = len(factors), len(ids), len(items)
        if total == 0 or n <= 0 or k == 0 or m == 0:
            return np.full((k, m), MISSING_RANK, np.float32)
        f = np.ascontiguousarray(factors, dtype=np.float32)
        limits = np.linalg.norm(f.astype(np.float64), axis=1) * (1 + 1e-3)
        position = self.als_norm_position()
        at = position[items]
        inside = at < total
        # the listed items' own scores, for those the scan has not reached (items without factors score 0)
        own = np.zeros((k, m), np.float32)
        if inside.any():
            own[:, inside] = _dot_rows(f, by_norm[at[inside]])
        back = np.asarray(back, np.int64)
        back_at = np.where(back >= 0, position[np.maximum(back, 0)], total)
        listed_back = items[None, :] == back[:, None]  # a row's removed item among the listed ones
        back_listed = listed_back.any(axis=1)
        # columns: the scanned prefix (by decreasing norm), then the listed items' own scores
        scores = np.empty((k, total + m), np.float32)
        scores[:, total:] = own
        hidden = np.concatenate([excluded[ids], excluded[items]])
        tie = np.concatenate([ids, items]).astype(np.int64)
        end = max(8 * n, 1024)
        end = total if total <= 2 * end else end  # a small catalogue in one product
        scores[:, :end] = _dot_rows(f, by_norm[:end])
        while True:
            item_pos = np.where(at < end, at, total + np.arange(m))
            removed_pos = np.where(back_at < end, back_at, -1)
            hit = back_listed & (removed_pos < 0)  # a removed item not scanned yet, but listed: its own column
            removed_pos[hit] = item_pos[np.argmax(listed_back[hit], axis=1)]
            ranks = ranks_at(scores, n, item_pos, hidden, removed_pos, tie, width=end)
            if end == total:
                return ranks
            bound = limits * float(norms[end]) + 1e-12  # what any item left could score, per row
            listed = np.take_along_axis(scores, np.broadcast_to(item_pos, (k, m)), axis=1)
            if not bool(np.any((ranks < MISSING_RANK) & (listed <= bound[:, None]))):
                return ranks
            grown = min(total, 2 * end)
            scores[:, end:grown] = _dot_rows(f, by_norm[end:grown])
            end = grown

    def als_norm_position(self) -> npt.NDArray[np.int64]:
        """Each item's position in :meth:`als_norm_index`'s order (len(ids) for items without factors; cached)."""
        at = self.__dict__.get("_als_norm_position")
        if at is None:
            ids = self.als_norm_index()[0]
            at = np.full(max(len(self.interactions.items), int(ids.max(initial=-1)) + 1), len(ids), np.int64)
            at[ids] = np.arange(len(ids))
            self._als_norm_position = at
        return at

    def als_norm_index(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """Items with nonzero ALS factors by decreasing factor norm: their indices, factors
        (contiguous) and norms (cached; see :meth:`als_top`)."""
        index = self.__dict__.get("_als_norm_index")
        if index is None:
            active, factors = self.als_index()
            norms = np.linalg.norm(factors.astype(np.float64), axis=1)
            order = np.argsort(-norms, kind="stable")
            index = (active[order], np.ascontiguousarray(factors[order]), norms[order])
            self._als_norm_index = index
        return index

    def popular_order(self, category: str | None = None) -> npt.NDArray[np.int32]:
        """Every item with a positive popularity score, most popular first (cached): the popularity
        source's own order (ties to the lower index). With ``category``, that category's items in
        the same order (cached per category; empty for a category the catalog does not have), so a
        category's head is what ``PopularityRetriever.candidates(..., category=)`` selects, without
        a selection over the whole catalogue per request."""
        order = self.__dict__.get("_popular_order")
        if order is None:
            from recsys.retrieval.base import top_k

            scores = self.retrievers["popularity"].scores_
            order = top_k(scores, len(scores))
            order = order[scores[order] > 0].astype(np.int32)
            self._popular_order = order
        if category is None:
            return order
        by_category = self.__dict__.setdefault("_popular_by_category", {})
        mine = by_category.get(category)
        if mine is None:
            pop = self.retrievers["popularity"]
            code = pop.categories_.index(category) if category in pop.categories_ else -1
            mine = by_category[category] = order[pop.category_[order] == code]
        return mine

    def candidates(
        self,
        customer: str,
        *,
        allow_repeats: bool,
        category: str | None = None,
        now: float | None = None,
        history: CustomerHistory | None = None,
        items: npt.NDArray[np.int32] | None = None,
    ) -> CandidateSet | None:
        """Merged candidates and their features; None for a customer without history.

        ``history`` replaces the stored history (live or counterfactual, see
        :mod:`recsys.history`). ``items`` asks for the features of exactly
        these items (in this order) instead of the merged candidates; each
        item's features are those it would have as a candidate (sources that
        did not propose it give it the missing rank), and an empty history
        then gives features too, never None.
        """
        inter, c, r = self.interactions, self.config, self.retrievers
        h = history if history is not None else self.history(customer)
        if h is None:
            if items is None:
                return None
            h = empty_history(len(inter.items))
        if h.empty and items is None:
            return None
        profile = h.profile()
        hist_items = profile.items
        n_hist = len(hist_items)
        in_history = np.zeros(len(inter.items), bool)  # a mask: cheaper than np.isin against the history
        in_history[hist_items] = True
        # each source: its proposals, and its scores of any items (read after merging)
        score_of: dict[str, Callable[[npt.NDArray[np.int32]], npt.NDArray[np.float32]]] = {}
        proposals: dict[str, npt.NDArray[np.int32]] = {}
        counts = c.candidates
        if "als" in r:
            factors = r["als"].item_factors_
            if h.als_factor is not None:
                f = h.als_factor
                proposals["als"] = self.als_top(f, counts.als, n_hist, in_history)
                score_of["als"] = lambda idx, f=f: _rowdot(factors[idx], f)
            else:
                proposals["als"] = np.empty(0, np.int32)
                score_of["als"] = lambda idx: np.zeros(len(idx), np.float32)
        ease_history = modelled = None
        if "ease" in r:
            ease = r["ease"]
            ease_history = ease._history(h.row)
            modelled = _ease_modelled_scores(ease, ease_history)
            proposals["ease"] = _top(modelled, counts.ease, n_hist, in_history, ids=ease.item_index_)
            score_of["ease"] = lambda idx, e=modelled: _ease_scores_of(ease, e, idx)
        sim = r["copurchase"].similarity_
        cop = gather_links(sim.indptr, sim.indices, sim.data, h.row.indices[h.row.data > 0], len(inter.items))
        links, cop_scores, linked = (cop.cols, cop.vals), cop.scores, cop.linked
        proposals["copurchase"] = _top(cop_scores[linked], counts.copurchase, n_hist, in_history, ids=linked)
        score_of["copurchase"] = lambda idx: cop_scores[idx]
        content_scores = None
        content_scan = None
        if "content" in r:
            # scored on demand: a full catalog scan is the costliest step on big catalogs
            content_scores = _content_profile_scores(r["content"], h.content_row)
            pool = self.content_pool
            if h.content_row.nnz == 0:
                proposals["content"] = np.empty(0, np.int32)
            elif pool is None:
                content_scan = (content_scores.profile, content_scores(None))
                proposals["content"] = _top(content_scan[1], counts.content, n_hist, in_history)
            else:
                cand = self.pool_index().top(content_scores.profile, counts.content)
                proposals["content"] = cand[~in_history[cand]]
        ba = r["buy_again"]
        ba_now = ba.now_or_fitted(now)
        ba_scores, ba_ratio_all = h.repeats.due(ba_now) if len(h.repeats) else (np.zeros(0), np.zeros(0))
        if allow_repeats:
            proposals["buy_again"] = _buy_again_proposals(h.repeats, ba_scores, counts.buy_again)
        proposals["popularity"] = self.popularity_proposals(
            customer, n_hist, lambda head: in_history[head], category=category
        )

        if items is None:
            merged = [p for p in proposals.values() if len(p)]
            items = np.unique(np.concatenate(merged)).astype(np.int32) if merged else np.empty(0, np.int32)
            if len(items) == 0:
                return None
        n_items = len(inter.items)
        source_scores: dict[str, npt.NDArray[np.float32]] = {}
        source_ranks = proposal_ranks(proposals, items, n_items)
        for name, scores_of in score_of.items():
            source_scores[name] = scores_of(items)
        if content_scores is not None:
            source_scores["content"] = content_scores(items)
        ba_item_scores = np.zeros(len(items), np.float32)
        ba_ratio = np.zeros(len(items), np.float32)
        if len(h.repeats):
            pos = np.minimum(np.searchsorted(h.repeats.items, items), len(h.repeats) - 1)
            hit = h.repeats.items[pos] == items
            ba_item_scores[hit] = ba_scores[pos[hit]]
            ba_ratio[hit] = ba_ratio_all[pos[hit]]
        source_scores["buy_again"] = ba_item_scores
        copurchase_max = cop.largest[items]
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
        return CandidateSet(items, names, proposed, features, ListBasis(h, ease_history, modelled, links, content_scan))

    def popularity_proposals(
        self,
        customer: str,
        n_history: int,
        in_history: Callable[[npt.NDArray[np.int32]], npt.NDArray[np.bool_]],
        *,
        category: str | None = None,
    ) -> npt.NDArray[np.int32]:
        """The popularity source's proposals: the head of the (category's) order without the
        history (``in_history`` masks it), plus the category's own head under a category filter."""
        counts = self.config.candidates
        # the (category's) order is the same for everyone: computed once, not per request
        order = self.popular_order(category)
        head = order[: counts.popularity + n_history]
        out = head[~in_history(head)][: counts.popularity]
        if category is not None:
            out = np.union1d(out, order[: counts.popularity]).astype(np.int32)
        return out

    def _popularity_ranks_without(
        self,
        in_history: npt.NDArray[np.bool_],
        n_history: int,
        items: npt.NDArray[np.int32],
        gone: npt.NDArray[np.int64],
        keeps: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float32]:
        """Each removal's ranks of ``items`` in :meth:`popularity_proposals` without a category.

        The proposals are the first ``count`` items of the popularity order
        outside the history (the head of ``count + history`` items always
        holds them), so an item's rank is one plus the items outside the
        history before it, plus one if the removed item, back outside it,
        comes before it; the same ranks as proposing per removal (tested).
        """
        count = self.config.candidates.popularity
        m, n = len(gone), len(items)
        out = np.full((m, n), MISSING_RANK, np.float32)
        if not m or not n or count <= 0:
            return out
        order = self.popular_order()
        head = order[: count + n_history]
        place = self.popular_position()
        outside = ~in_history[head]
        before = np.cumsum(outside) - outside  # items outside the history ahead of each head position
        at = place[items]  # len(order) for items with no popularity
        listed_in_head = at < len(head)
        head_at = np.where(listed_in_head, at, 0)
        was_there = ~keeps.all(axis=1)  # the removal took an item out of the history
        gone_at = np.where(was_there, place[gone], len(order))
        rank = before[head_at][None, :] + 1 + (gone_at[:, None] < at[None, :])
        eligible = listed_in_head[None, :] & (~in_history[items][None, :] | (items[None, :] == gone[:, None]) & was_there[:, None])
        ok = eligible & (rank <= count)
        out[ok] = rank[ok]
        return out

    def popular_position(self) -> npt.NDArray[np.int64]:
        """Each item's position in :meth:`popular_order` (len(order) for items not in it; cached)."""
        at = self.__dict__.get("_popular_position")
        if at is None:
            order = self.popular_order()
            at = np.full(len(self.interactions.items), len(order), np.int64)
            at[order] = np.arange(len(order))
            self._popular_position = at
        return at

    def removal_features(
        self,
        customer: str,
        base: CustomerHistory,
        removed: Sequence[int],
        items: npt.NDArray[np.int32],
        *,
        allow_repeats: bool,
        category: str | None = None,
        now: float | None = None,
        basis: ListBasis | None = None,
    ) -> npt.NDArray[np.float32]:
        """Features of ``items`` with each of ``removed`` taken out of ``base``, one at a time.

        Shape (len(removed), len(items), features). Row ``t`` is what
        :meth:`candidates` gives for ``items`` with
        ``override_history(self, base, base.row without removed[t])``, but
        the work that does not depend on the removed item is done once (the
        base ALS fold-in and confidences, the co-purchase links, the EASE
        history, the exclusion mask, the popularity head), and the two
        catalogue-wide products are shared:

        - EASE is linear in the history row, so each removal's scores are
          the base scores minus the removed item's weight row (one row
          instead of a product over the whole history);
        - each removal's folded-in ALS factor is a rank-one downdate of the
          base solve, and the listed items' ALS ranks for all removals come
          from one pruned scan (:meth:`als_ranks_many`: it stops once every
          listed item's rank is settled, in one matrix product for every
          removal).

        The listed items' ranks in each source's proposals are counted for all
        removals at once (:func:`recsys.ranks.listed_ranks`), and the features of all
        removals are built in one pass (:func:`build_feature_stack`).

        The EASE product, the ALS downdate and the content profile (the base
        sum less the removed item's vector) round differently from the
        from-scratch computation (float32, ~1e-7 relative), so the EASE, ALS
        and content scores, and with near ties their ranks, can differ in the
        last bits; everything else is the same arithmetic in the same order.
        The ranker's score, piecewise constant
        in the features, is then the same unless a feature sits within that
        rounding of a split (tested). A removed item outside the history
        leaves it unchanged (as the override with the same row does). ``basis``
        (of ``base``, from :meth:`candidates`) gives the EASE history and base
        scores and the co-purchase links instead of computing them again.
        """
        if basis is not None and basis.history is not base:
            raise ValueError("the list basis belongs to another history")
        inter, c, r = self.interactions, self.config, self.retrievers
        counts = c.candidates
        n_items = len(inter.items)
        m, n = len(removed), len(items)
        old = base.items
        in_history = np.zeros(n_items, bool)
        in_history[old] = True
        gone = np.asarray([int(x) for x in removed], np.int64)
        keeps = old[None, :] != gone[:, None]  # (m, history): what each counterfactual history keeps
        nnz = keeps.sum(axis=1)
        entry = np.full(m, -1, np.int64)  # each removal's entry in the (sorted) history, -1: removes nothing
        if len(old):
            at = np.minimum(np.searchsorted(old, gone), len(old) - 1)
            entry = np.where(old[at] == gone, at, -1)
        # ALS: the base fold-in once; confidences are per entry (not for bm25, which scales by row length)
        als = r.get("als")
        base_fold: npt.NDArray[np.float32] | None = None
        if als is not None:
            elementwise = als.config.scaling != "bm25"
            if elementwise:
                if basis is not None:
                    als_items, als_conf, als_factor = basis.als_system(als)
                else:
                    als_items, als_conf = als._confidences(base.row)
                    als_factor = None
        cop = _CopurchaseRemovals(
            _copurchase_links_by_owner(r["copurchase"], base.row, None if basis is None else basis.copurchase_links),
            items, n_items,
        )
        # EASE: the base scores once; a removal takes its item's weight row off them
        ease = r.get("ease")
        if ease is not None:
            if basis is not None and basis.ease_history is not None and basis.ease_modelled is not None:
                (ease_slots, ease_values), ease_base = basis.ease_history, basis.ease_modelled
            else:
                ease_slots, ease_values = ease._history(base.row)
                ease_base = _ease_modelled_scores(ease, (ease_slots, ease_values))
            ease_items = base.row.indices[ease.slot_[base.row.indices] >= 0]
            if len(ease_items) != len(ease_slots):  # the row had entries EASE drops: no shortcut
                raise RuntimeError("EASE history slots do not align with the history row")
        content = r.get("content")
        profiled = np.zeros(0, np.int64)  # the removals that leave a content profile (a non-empty history)
        content_profiles = np.zeros((0, 0), np.float32)  # their profiles, one row each
        content_tops: list[npt.NDArray[np.int32]] = []
        if content is not None and len(old):
            old_w = base.row.data.astype(np.float64)
            old_content = values_at(base.content_row, 0, old, 0.0)
            scale = np.divide(old_content, old_w, out=np.ones(len(old)), where=old_w > 0)
            # the profile is linear in the row: the base sum once, a removal takes its item's vector off
            content_w = (old_w * scale).astype(np.float32)
            emb = content.embeddings_
            base_sum = content_w @ emb[old]
            profiled = np.flatnonzero(nnz > 0)
            totals = np.repeat(base_sum[None, :], len(profiled), axis=0)
            off = np.flatnonzero(entry[profiled] >= 0)
            totals[off] -= content_w[entry[profiled[off]]][:, None] * emb[gone[profiled[off]]]
            norms = np.sqrt(np.einsum("ij,ij->i", totals, totals))
            content_profiles = np.divide(totals, norms[:, None], out=totals, where=norms[:, None] > 0)
            if self.content_pool is not None and len(profiled):
                content_tops = list(self.pool_index().top_many(content_profiles, counts.content))
        ba = r["buy_again"]
        ba_now = ba.now_or_fitted(now)
        source_scores: dict[str, npt.NDArray[np.float32]] = {}
        source_ranks: dict[str, npt.NDArray[np.float32]] = {}
        # ALS: every removal's factor (as recsys.history._fold: the trained factors moved by
        # the fold-in difference), then one product scans the catalogue for all of them
        if als is not None:
            als_factors: list[npt.NDArray[np.float32] | None] = []
            downdate: _AlsDowndate | None = None
            downdated: dict[int, npt.NDArray[np.float32] | None] = {}
            als_entry: dict[int, int] = {}  # each removed item's entry in the ALS system (sorted, as the row)
            if elementwise and len(als_items):
                at = np.minimum(np.searchsorted(als_items, gone), len(als_items) - 1)
                hit = als_items[at] == gone
                als_entry = dict(zip(gone[hit].tolist(), at[hit].tolist(), strict=True))
            if elementwise and len(als_items) > 1:
                # every removal's downdate in one solve: the entries of the removed items that had ALS weight
                entries = sorted({als_entry[x] for x in gone.tolist() if x in als_entry})
                if entries:
                    downdate = _AlsDowndate(als, als_items, als_conf, als_factor)
                    downdated = downdate.many(entries)
            for t, x in enumerate(gone.tolist()):
                keep = keeps[t]
                factor = None
                if nnz[t] > 0:
                    if entry[t] < 0 and base.als_factor is not None:
                        factor = base.als_factor
                    else:
                        new = None
                        if elementwise:
                            j = als_entry.get(x)
                            if j is not None and len(als_items) > 1:
                                new = downdated.get(j)
                            if new is None:  # no downdate: solved from scratch without x
                                k = als_items != x
                                its, conf = als_items[k], als_conf[k]
                        else:
                            its, conf = als._confidences(_row(base.row.data[keep], old[keep], n_items))
                        if new is None:
                            new = (
                                sla.cho_solve(als._system(its, conf), als._target(its, conf)).astype(np.float32)
                                if len(its) else np.zeros(als.item_factors_.shape[1], np.float32)
                            )
                        if base.als_factor is None:
                            factor = new
                        else:
                            if base_fold is None:  # the downdate's base solve is the same arithmetic
                                base_fold = (
                                    downdate.x0.astype(np.float32) if downdate is not None else als.fold_in(base.row)
                                )
                            factor = (base.als_factor + (new - base_fold)).astype(np.float32)
                als_factors.append(factor)
            source_scores["als"] = np.zeros((m, n), np.float32)
            source_ranks["als"] = np.full((m, n), MISSING_RANK, np.float32)
            listed = als.item_factors_[items]
            folded = [t for t, f in enumerate(als_factors) if f is not None]
            if folded:
                stacked = np.stack([als_factors[t] for t in folded])  # type: ignore[misc]
                source_scores["als"][folded] = np.einsum("ij,tj->ti", listed, stacked)
                # the proposals' ranks as candidates() makes them (the pruned scan), every removal's in one product
                back = np.where(~keeps[folded].all(axis=1), gone[folded], -1)  # back out of the history
                source_ranks["als"][folded] = self.als_ranks_many(stacked, counts.als, in_history, back, items)
        if ease is not None:
            modelled = np.repeat(ease_base[None, :], m, axis=0)
            where = np.flatnonzero(ease_items[None, :] == gone[:, None])  # flat (row, entry) of each removed EASE item
            rows_hit, entries = np.divmod(where, len(ease_items)) if len(ease_items) else (where, where)
            if len(rows_hit):
                modelled[rows_hit] = ease_base[None, :] - ease_values[entries][:, None] * ease.weights_[ease_slots[entries]]
            slot = ease.slot_[items]
            source_scores["ease"] = np.where(slot >= 0, modelled[:, np.maximum(slot, 0)], 0.0).astype(np.float32)
            source_ranks["ease"] = listed_ranks(modelled, counts.ease, items, in_history, gone, ids=ease.item_index_)
        linked, cop_scores, source_scores["copurchase"], item_max = cop.many(gone)
        source_ranks["copurchase"] = listed_ranks(cop_scores, counts.copurchase, items, in_history, gone, ids=linked)
        if content is not None:
            listed = content.embeddings_[items]
            source_scores["content"] = np.zeros((m, n), np.float32)
            source_ranks["content"] = np.full((m, n), MISSING_RANK, np.float32)
            if len(profiled):
                source_scores["content"][profiled] = np.einsum("ij,tj->ti", listed, content_profiles)
            for t, cand in zip(profiled.tolist(), content_tops, strict=False):  # with a content pool
                source_ranks["content"][t] = _ranks_in(cand[~in_history[cand] | (cand == gone[t])], items)
            if self.content_pool is None and len(profiled):
                # the whole catalogue is the pool: its items near the listed ones' scores are scanned for every removal
                source_ranks["content"][profiled] = _ContentRemovals(
                    content_profiles, source_scores["content"][profiled], counts.content, items, in_history,
                    gone[profiled],
                ).ranks(content.embeddings_, self.content_norm_max(), None if basis is None else basis.content_scan)
        # buy-again: each pair's figures are its own, so a removal only drops the removed item's pair
        repeats = base.repeats.restrict(in_history[base.repeats.items])
        due, due_ratio = repeats.due(ba_now) if len(repeats) else (np.zeros(0), np.zeros(0))
        ba_scores = np.zeros((m, n), np.float32)
        ba_ratio = np.zeros((m, n), np.float32)
        if len(repeats):
            pos = np.minimum(np.searchsorted(repeats.items, items), len(repeats) - 1)
            hit = repeats.items[pos] == items
            ba_scores[:, hit] = due[pos[hit]]
            ba_ratio[:, hit] = due_ratio[pos[hit]]
            dropped = items[None, :] == gone[:, None]
            ba_scores[dropped] = 0
            ba_ratio[dropped] = 0
        source_scores["buy_again"] = ba_scores
        if allow_repeats:
            source_ranks["buy_again"] = _buy_again_ranks_without(repeats, due, counts.buy_again, items, gone)
        if category is None:
            # the global head: each removal lets its item back in, ahead of the items after it
            source_ranks["popularity"] = self._popularity_ranks_without(in_history, len(old), items, gone, keeps)
        else:
            popularity = []
            for t, x in enumerate(gone.tolist()):
                was_there = not keeps[t].all()  # x was in the history: out of the mask for this removal only
                in_history[x] = in_history[x] and not was_there
                popularity.append(_ranks_in(
                    self.popularity_proposals(customer, int(nnz[t]), lambda head: in_history[head], category=category),
                    items,
                ))
                in_history[x] = in_history[x] or was_there
            source_ranks["popularity"] = np.stack(popularity) if m else np.zeros((0, n), np.float32)
        # each removal drops its entry's purchases from the event count (never below the entries kept)
        dropped = np.zeros(m, np.float32)
        if len(old):
            dropped = np.where(entry >= 0, base.purchases[np.maximum(entry, 0)], dropped)
        n_events = np.maximum((base.n_events - dropped).astype(np.int64), nnz)
        profile = CustomerProfile(
            old.astype(np.int32, copy=False), base.row.data.astype(np.float32, copy=False), base.last_ts,
            base.purchases.astype(np.float32), base.n_events,
        )
        return build_feature_stack(
            self.table, profile, keeps, n_events, items,
            source_scores=source_scores, source_ranks=source_ranks, copurchase_max=item_max,
            buy_again_ratio=ba_ratio, now=now if now is not None else inter.now,
        )


def _row(data: npt.NDArray[np.float32], indices: npt.NDArray[np.int32], n_items: int) -> sp.csr_matrix:
    """A (1, n_items) CSR row from sorted ``indices`` and their ``data``."""
    return sp.csr_matrix((data, indices, np.array([0, len(indices)])), shape=(1, n_items))


def _top(
    scores: npt.NDArray[np.float32],
    n: int,
    n_excluded: int,
    excluded: npt.NDArray[np.bool_],
    *,
    ids: npt.NDArray[np.integer[Any]] | None = None,
) -> npt.NDArray[np.int32]:
    """Item indices of the ``n`` best positive scores, best first, excluded items left out.

    ``excluded`` is a mask over all items with ``n_excluded`` entries set: they
    score -inf for the pick (so it is the top ``n + n_excluded`` less the
    excluded ones, tested, at the cost of a pick of ``n``). ``ids`` maps
    positions of ``scores`` to item indices (ascending, so ties still go to
    the lower item index); None: positions are item indices.
    """
    from recsys.retrieval.base import top_k

    if n_excluded:  # the excluded items out of the running first: the best n of the rest, in the same order
        scores = scores.copy()
        scores[excluded[: len(scores)] if ids is None else excluded[ids]] = -np.inf
    pos = top_k(scores, n)
    pos = pos[np.isfinite(scores[pos]) & (scores[pos] > 0)]
    idx = pos if ids is None else ids[pos]
    return idx.astype(np.int32)


def _buy_again_ranks_without(
    repeats: Any, due: npt.NDArray[np.float64], count: int, items: npt.NDArray[np.int32], gone: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Each removal's ranks of ``items`` in :func:`_buy_again_proposals` of ``repeats`` without the removed item.

    The proposals are the most due pairs in one fixed order (due, then item),
    so without item x an item's place is its place in the whole order, one
    less if x came before it; it is proposed if that place is within
    ``count`` and it is due at all. Tested against proposing per removal.
    """
    m, n = len(gone), len(items)
    out = np.full((m, n), MISSING_RANK, np.float32)
    if not m or not n or not len(repeats) or count <= 0:
        return out
    order = np.lexsort((repeats.items, -due))
    place = np.empty(len(order), np.int64)
    place[order] = np.arange(len(order))
    pos = np.minimum(np.searchsorted(repeats.items, items), len(repeats) - 1)
    listed = (repeats.items[pos] == items) & (due[pos] > 0)
    gpos = np.minimum(np.searchsorted(repeats.items, gone), len(repeats) - 1)
    gone_place = np.where(repeats.items[gpos] == gone, place[gpos], len(order))
    at = place[pos][None, :] - (gone_place[:, None] < place[pos][None, :])
    ok = listed[None, :] & (at < count) & (items[None, :] != gone[:, None])
    out[ok] = at[ok] + 1
    return out


def _ranks_in(proposals: npt.NDArray[np.int32], items: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """1-based rank of each of ``items`` in ``proposals`` (distinct items), ``MISSING_RANK`` if absent."""
    out = np.full(len(items), MISSING_RANK, np.float32)
    if len(proposals) and len(items):
        order = np.argsort(proposals, kind="stable")
        ordered = proposals[order]
        pos = np.minimum(np.searchsorted(ordered, items), len(proposals) - 1)
        hit = ordered[pos] == items
        out[hit] = order[pos[hit]] + 1
    return out


def _ease_modelled_scores(
    ease: EaseRetriever, history: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32]:
    """EASE scores of the modelled items only (aligned with ``ease.item_index_``), from the
    history's slots and values (``ease._history(row)``)."""
    return ease.modelled_scores(*history)


def _ease_scores_of(
    ease: EaseRetriever, modelled: npt.NDArray[np.float32], items: npt.NDArray[np.int32]
) -> npt.NDArray[np.float32]:
    slot = ease.slot_[items]
    return np.where(slot >= 0, modelled[np.maximum(slot, 0)], 0.0).astype(np.float32)


def _without_row(m: sp.csr_matrix, u: int) -> tuple[sp.csr_matrix, int]:
    """A copy of CSR ``m`` with row ``u`` emptied (its entries deleted), and how many went."""
    lo, hi = int(m.indptr[u]), int(m.indptr[u + 1])
    indptr = m.indptr.copy()
    indptr[u + 1 :] -= hi - lo
    out = sp.csr_matrix(
        (np.delete(m.data, np.s_[lo:hi]), np.delete(m.indices, np.s_[lo:hi]), indptr), shape=m.shape
    )
    out.has_sorted_indices = m.has_sorted_indices
    return out, hi - lo


@dataclass(frozen=True)
class ContentPool:
    """The content source's proposal pool with identical embeddings merged.

    Catalogs repeat texts (Complete Journey's 63k pool items have 17k
    distinct vectors), so the per-request scan runs over the distinct
    vectors only; the result is the same as scanning every pool item.
    ``vectors`` (distinct, float32), ``members`` (pool item indices grouped
    by vector, ascending within a group) and ``starts`` (group offsets).
    """

    vectors: npt.NDArray[np.float32]
    members: npt.NDArray[np.int32]
    starts: npt.NDArray[np.int64]
    basis: npt.NDArray[np.float32] | None = None  # (dim, r): leading right singular vectors
    reduced: npt.NDArray[np.float32] | None = None  # vectors @ basis

    @classmethod
    def build(
        cls, embeddings: npt.NDArray[np.float32], pool: npt.NDArray[np.int32], *, rank: int = 64, min_size: int = 4096
    ) -> ContentPool:
        """Merge duplicates; above ``min_size`` distinct vectors also keep a rank-``rank`` projection."""
        vectors, inverse = np.unique(embeddings[pool], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.lexsort((pool, inverse))
        starts = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(vectors)))])
        vectors = np.ascontiguousarray(vectors, np.float32)
        basis = reduced = None
        if len(vectors) > min_size and vectors.shape[1] > rank:
            gram = vectors.T.astype(np.float64) @ vectors.astype(np.float64)
            _, eigvecs = np.linalg.eigh(gram)  # ascending eigenvalues
            basis = np.ascontiguousarray(eigvecs[:, ::-1][:, :rank], np.float32)
            reduced = np.ascontiguousarray(vectors @ basis)
        return cls(vectors, pool[order].astype(np.int32), starts, basis, reduced)

    def top(self, profile: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int32]:
        """The ``n`` pool items scoring highest (> 0) against ``profile``; ties: lower index.

        With a projection, the distinct vectors are first screened in the
        reduced space (the best ``4 n``), then scored exactly: cosine
        ranking within the shortlist is exact, the shortlist itself nearly so.
        """
        screen = self.reduced @ (profile @ self.basis) if self.reduced is not None and self.basis is not None else None
        return self._pick(profile, n, screen)

    def top_many(self, profiles: npt.NDArray[np.float32], n: int) -> list[npt.NDArray[np.int32]]:
        """:meth:`top` for each row of ``profiles``, the screening of all of them in one matrix product
        (which may round the screen scores differently from one :meth:`top` in the last bits)."""
        if self.reduced is None or self.basis is None:
            return [self._pick(p, n, None) for p in profiles]
        screens = _dot_rows(profiles @ self.basis, self.reduced)  # one row per profile
        return [self._pick(p, n, screens[j]) for j, p in enumerate(profiles)]

    def _pick(
        self, profile: npt.NDArray[np.float32], n: int, screen: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.int32]:
        from recsys.retrieval.base import top_k

        if screen is not None:
            shortlist = top_k(screen, 4 * n)
            exact = self.vectors[shortlist] @ profile
            best = top_k(exact, n)
            groups, group_scores = shortlist[best], exact[best]
            keep = np.lexsort((groups, -group_scores))
            groups, group_scores = groups[keep], group_scores[keep]
            scores = np.zeros(len(self.vectors), np.float32)
            scores[groups] = group_scores
        else:
            scores = self.vectors @ profile
            groups = top_k(scores, n)
        groups = groups[scores[groups] > 0]
        if not len(groups):
            return np.empty(0, np.int32)
        sizes = self.starts[groups + 1] - self.starts[groups]
        offsets = np.repeat(self.starts[groups] - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
        items = self.members[offsets]
        item_scores = np.repeat(scores[groups], sizes)
        return items[np.lexsort((items, -item_scores))][:n]


def _dot_rows(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``a @ b.T`` (a few vectors against many rows), computed as ``(b @ a.T).T``.

    With C-ordered ``b`` of many rows, OpenBLAS's sgemm runs much faster this
    way round (about half the time for the check's scans on this project's
    machines). The result is a transposed view.
    """
    return (b @ a.T).T


# how far a float32 computation of a cosine of d-dimensional unit vectors (its |terms| sum to at most
# 1) can round: below d * 2**-24 (2.3e-5 for all-MiniLM-L6-v2's 384); at least this, with a wide margin
_COSINE_ROUNDING = 1e-4


@dataclass(frozen=True)
class _ContentRemovals:
    """The content ranks of a list's items without each of its removals, when the whole
    catalogue is the content source's pool.

    ``profiles`` are the removals' content profiles (one row each),
    ``listed_scores`` the listed ``items``' scores under each (any float32
    computation), ``removed`` each row's removed item (back out of
    ``in_history``, the excluded items), ``count`` the source's proposals.
    """

    profiles: npt.NDArray[np.float32]
    listed_scores: npt.NDArray[np.float32]
    count: int
    items: npt.NDArray[np.int32]
    in_history: npt.NDArray[np.bool_]
    removed: npt.NDArray[np.int64]

    def ranks(
        self,
        emb: npt.NDArray[np.float32],
        norm_max: float,
        scan: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None,
        *,
        min_items: int = 1000,
    ) -> npt.NDArray[np.float32]:
        """``listed_ranks(_dot_rows(profiles, emb), count, items, in_history, removed)`` without scoring
        the whole catalogue for every profile (:meth:`near` says which items need it).

        A catalogue of fewer than ``min_items`` items is scanned whole: there
        the bounds cost about as much as the scan they save (the demo's 500
        items); on MovieLens' 1,682 they pay. ``scan`` is a nearby profile
        and its scores of every item (the base history's, from the candidate
        step; None: made here from the first profile).
        """
        profiles, count, items, in_history, removed = self.profiles, self.count, self.items, self.in_history, self.removed
        if len(emb) < min_items:
            return listed_ranks(_dot_rows(profiles, emb).astype(np.float32, copy=False), count, items, in_history, removed)
        if scan is None:
            scan = (profiles[0], (emb @ profiles[0]).astype(np.float32))
        sure_missing, pruned, ids = self.near(norm_max, scan)
        ranks = np.full(self.listed_scores.shape, MISSING_RANK, np.float32)
        if pruned.any():
            ranks[pruned] = listed_ranks(
                _dot_rows(profiles[pruned], emb[ids]).astype(np.float32, copy=False), count, items, in_history,
                removed[pruned], ids=ids,
            )
        if not pruned.all():
            rest = ~pruned
            ranks[rest] = listed_ranks(
                _dot_rows(profiles[rest], emb).astype(np.float32, copy=False), count, items, in_history, removed[rest]
            )
        ranks[sure_missing] = MISSING_RANK
        return ranks

    def near(
        self, norm_max: float, scan: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Which listed items each profile surely leaves out of the content proposals, which profiles
        are ranked on a few items only, and those items (ascending); the other profiles scan the catalogue.

        A profile ``p`` moves an item's score from the ``scan``'s by at most
        ``norm_max * |p - scan profile|``; widened by the rounding of the three
        computations of a score (the scan's, the row's, ``listed_scores``') that
        is each row's reach. Per row:

        - a listed item below the ``count``-th best open score minus the reach
          has ``count`` items surely ahead of it: not proposed;
        - an item whose scan score plus the reach is below every other listed
          score cannot be ahead of any of them and need not be scored.

        A row that would still score more than a quarter of the catalogue (a
        removal that moves the profile far) scans it all instead.
        """
        base, base_scores = scan
        profiles, count, items, in_history, removed = self.profiles, self.count, self.items, self.in_history, self.removed
        diff = profiles.astype(np.float64) - base.astype(np.float64)
        eps = max(_COSINE_ROUNDING, 4 * profiles.shape[1] * 2.0**-24)  # one computation's rounding, and more
        reach = norm_max * np.sqrt(np.einsum("ij,ij->i", diff, diff)) + 4 * eps
        open_scores = base_scores[~in_history]
        kth = -np.inf
        if len(open_scores) >= count:
            kth = float(np.partition(open_scores, len(open_scores) - count)[len(open_scores) - count])
        listed = self.listed_scores.astype(np.float64)
        sure_missing = listed < (kth - reach)[:, None]
        # the listed items each row may still rank: positive (within rounding), proposable, not surely missing
        proposable = ~in_history[items][None, :] | (items[None, :] == removed[:, None])
        maybe = ~sure_missing & proposable & (listed > -eps)
        # each row's lowest score that can matter: below it nothing is ahead of a listed item it ranks
        floor = np.where(maybe, listed, np.inf).min(axis=1) - eps - reach
        sizes = (base_scores[None, :] >= floor[:, None]).sum(axis=1)
        pruned = 4 * sizes <= len(base_scores)
        # (a listed item a row may rank is among them: its own scan score is above its row's floor)
        near = base_scores >= float(floor[pruned].min()) if pruned.any() else np.zeros(0, bool)
        return sure_missing, pruned, np.flatnonzero(near)


def _rowdot(rows: npt.NDArray[np.float32], v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Row-wise dot products whose values do not depend on how many rows are asked for.

    A BLAS matrix-vector product may round differently for different row
    counts; features must not (score_items equals recommend bit for bit).
    """
    return np.einsum("ij,j->i", rows, v, optimize=False).astype(np.float32)


class _ProfileScores:
    """Cosine of items to one customer's content profile (``profile``: unit vector or zeros)."""

    def __init__(self, embeddings: npt.NDArray[np.float32], profile: npt.NDArray[np.float32]) -> None:
        self.embeddings = embeddings
        self.profile = profile

    def __call__(self, items: npt.NDArray[np.int32] | None) -> npt.NDArray[np.float32]:
        if items is None:
            return (self.embeddings @ self.profile).astype(np.float32)
        return _rowdot(self.embeddings[items], self.profile)


def _content_profile_scores(content: ContentRetriever, row: sp.csr_matrix) -> _ProfileScores:
    """Cosine to the customer's content profile for a subset of items (None = all)."""
    emb = content.embeddings_
    if row.nnz == 0:
        return _ProfileScores(emb, np.zeros(emb.shape[1], np.float32))
    profile = row.data.astype(np.float32) @ emb[row.indices]
    norm = float(np.linalg.norm(profile))
    if norm > 0:
        profile = profile / norm
    return _ProfileScores(emb, profile.astype(np.float32))


def _copurchase_links(
    cop: CoPurchaseRetriever, row: sp.csr_matrix
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """(item, similarity) of every neighbour link out of the history's items.

    The co-purchase score of an item is the sum of its links' similarities
    (``CoPurchaseRetriever.score_history``: binarised history times the
    pruned similarity), gathered here without a sparse product.
    """
    sim = cop.similarity_
    found = gather_links(sim.indptr, sim.indices, sim.data, row.indices[row.data > 0], sim.shape[1])
    return found.cols, found.vals


def _copurchase_links_by_owner(
    cop: CoPurchaseRetriever,
    row: sp.csr_matrix,
    links: tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """:func:`_copurchase_links` (or ``links``, what it gave for ``row``) with where each history item's
    links are: ``(owners, offsets, cols, vals)``, history item ``owners[e]``'s links at
    ``offsets[e]:offsets[e + 1]``.

    Dropping one owner's links leaves the others in the same order, so the
    co-purchase sums without that item are the ones recomputed from scratch.
    """
    sim = cop.similarity_
    hist = row.indices[row.data > 0].astype(np.int64)
    sizes = sim.indptr[hist + 1] - sim.indptr[hist]
    offsets = np.zeros(len(hist) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    cols, vals = _copurchase_links(cop, row) if links is None else links
    return hist, offsets, cols, vals


class _AlsDowndate:
    """ALS fold-ins of a history with one entry taken out, by a rank-one downdate of the base solve.

    The fold-in solves ``A f = b`` with ``A = YᵀY + reg I + Yᵀ(C - I)Y`` and
    ``b = YᵀCp`` over the history (:meth:`AlsRetriever.fold_in`). Taking
    entry ``j`` (factor ``y``, confidence ``c``) out gives ``A - (c - 1) y yᵀ``
    and ``b - c y``, solved from the base Cholesky factor with the
    Sherman-Morrison formula in O(factors²) instead of a new Gram matrix and
    factorisation, O(history x factors²). Float64 throughout: the factors
    agree with the from-scratch solve to float64 rounding, then are cast to
    float32 like it. A near-singular downdate returns None (the caller solves
    from scratch).
    """

    def __init__(
        self, als: Any, items: npt.NDArray[np.int32], confidence: npt.NDArray[np.float64], factor: Any = None
    ) -> None:
        self.als = als
        self.items = items
        self.confidence = confidence
        self.factor = als._system(items, confidence) if factor is None else factor
        self.b = als._target(items, confidence)
        self.x0 = sla.cho_solve(self.factor, self.b, check_finite=False)  # the model's own factors: finite

    def many(self, js: Sequence[int]) -> dict[int, npt.NDArray[np.float32] | None]:
        """The fold-in without entry ``j``, for each ``j`` of ``js`` (None where near-singular or not
        finite); the base factor solves for all of them at once (their columns side by side)."""
        at = np.asarray(list(js), np.int64)
        if not len(at):
            return {}
        y = self.als.item_factors_[self.items[at]].astype(np.float64)  # (m, factors)
        c = self.confidence[at]
        z = sla.cho_solve(self.factor, y.T, check_finite=False)  # (factors, m)
        s = np.einsum("mf,fm->m", y, z)
        denominator = 1.0 - (c - 1.0) * s
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f = self.x0[:, None] - c * z + z * ((c - 1.0) * (z.T @ self.b - c * s) / denominator)
        ok = (np.abs(denominator) >= 1e-9) & np.isfinite(f).all(axis=0)
        return {int(j): (f[:, t].astype(np.float32) if ok[t] else None) for t, j in enumerate(at.tolist())}


class _CopurchaseRemovals:
    """Co-purchase scores with one history item's links taken out, exactly as from scratch.

    From scratch (:meth:`Stage.candidates`), an item's score is the float64
    ``np.bincount`` of its links in link order, cast to float32. Taking out
    the links of history item ``x`` changes only the items ``x`` links to.
    When every partial sum is exact in float64 (the links are float32; it
    holds when the bits from the largest column sum down to the smallest
    link's last bit fit in float64's 53, checked once per history), the sum
    without ``x`` is the base sum minus ``x``'s links, in any order: the
    same bits. Otherwise those items' sums are recomputed from their
    remaining links in link order. Either way bit for bit the from-scratch
    sums (tested). Only items with a link are scored (the rest are 0).
    """

    def __init__(
        self,
        links: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]],
        items: npt.NDArray[np.int32],
        n_items: int,
    ) -> None:
        # links of history item owners[e] at offsets[e]:offsets[e + 1] (:func:`_copurchase_links_by_owner`)
        self.owners, self.offsets, self.cols, self.vals = links
        self.by_owner = np.argsort(self.owners, kind="stable")
        self.sorted_owners = self.owners[self.by_owner]
        n = len(items)
        item_slot = np.full(n_items, -1, np.int64)
        item_slot[items] = np.arange(n)
        # one compiled pass: the base sums, the linked items and the asked-for items' largest links
        found = link_pass(self.cols, self.vals, n_items, item_slot)
        base = found.sums
        self.linked = np.flatnonzero(found.present).astype(np.int32)
        self.slot = np.full(n_items, -1, np.int64)
        self.slot[self.linked] = np.arange(len(self.linked))
        self.base_linked = base[self.linked]
        self.mark = np.zeros(n_items, bool)
        self.items = items
        self.exact = True
        if found.min_abs > 0:
            # the smallest link has the lowest exponent
            lowest = int(np.frexp(found.min_abs)[1]) - 24  # a float32 has 24 significant bits
            # the widest column sum of |links|: the base sums themselves when no link is negative
            wide = np.bincount(self.cols, weights=np.abs(self.vals), minlength=n_items) if found.negative else base
            self.exact = int(np.frexp(float(wide.max()))[1]) - lowest <= 53
        # each asked-for item's largest link (floored at 0), its owner, and the largest from another
        # owner: without one history item the largest single link is one of the two (one link per
        # (owner, item): a history item's row of the similarity has each item once)
        zero = np.float32(0)
        linked = found.seen > 0
        self.best = np.where(linked, np.maximum(found.best, zero), zero)
        self.best_owner = np.full(n, -1, np.int64)
        self.best_owner[linked] = self.owners[np.searchsorted(self.offsets, found.best_link[linked], side="right") - 1]
        self.runner = np.where(found.seen > 1, np.maximum(found.runner, zero), zero)

    def _ranges(self, removed: npt.NDArray[np.int64]) -> list[list[tuple[int, int]]]:
        """Where each removed history item's links are (none for an item not in the history)."""
        lows = np.searchsorted(self.sorted_owners, removed).tolist()
        highs = np.searchsorted(self.sorted_owners, removed, side="right").tolist()
        out = []
        for lo, hi in zip(lows, highs, strict=True):
            at = self.by_owner[lo:hi]
            out.append(list(zip(self.offsets[at].tolist(), self.offsets[at + 1].tolist(), strict=True)))
        return out

    def many(
        self, removed: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """:meth:`without` for each of ``removed`` (distinct), one row each: (linked items, their
        scores (rows, linked), the asked-for items' scores and largest single links (rows, items))."""
        m, n = len(removed), len(self.items)
        sums = np.repeat(self.base_linked[None, :], m, axis=0)
        if self.exact:  # one link per (owner, item): each range takes an item's link off once
            subtract_owners(sums, removed, self.sorted_owners, self.by_owner, self.offsets, self.cols, self.vals,
                            self.slot)
        else:
            for t, ranges in enumerate(self._ranges(removed)):
                if ranges:
                    sums[t] = self._sums_without(ranges)
        scores = sums.astype(np.float32)
        at = self.slot[self.items]
        item_scores = np.zeros((m, n), np.float32)
        item_scores[:, at >= 0] = scores[:, at[at >= 0]]
        item_max = np.where(self.best_owner[None, :] == removed[:, None], self.runner[None, :], self.best[None, :])
        return self.linked, scores, item_scores, item_max.astype(np.float32, copy=False)

    def _sums_without(self, ranges: list[tuple[int, int]]) -> npt.NDArray[np.float64]:
        """The linked items' float64 sums without the links in ``ranges`` (one history item's), recounted in link order."""
        mine = np.zeros(len(self.cols), bool)
        for lo, hi in ranges:
            mine[lo:hi] = True
        sums = self.base_linked.copy()
        affected = self.cols[mine]
        pos = self.slot[affected]
        self.mark[affected] = True
        rest = self.mark[self.cols] & ~mine
        self.mark[affected] = False
        again = np.bincount(self.slot[self.cols[rest]], weights=self.vals[rest], minlength=len(self.linked))
        sums[pos] = again[pos]
        return sums


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
        timed = inter.now is not None and ev["ts"].null_count() == 0
        if c.label_split == "time" and not timed:
            raise TrainingDataError(
                "label_split='time' needs a timestamp on every event; use label_split='random' (or 'auto')"
            )
        if timed and c.label_split != "random":
            end = float(inter.now) + 1
            for _ in range(c.label_windows):
                start = end - c.label_window_days * DAY
                hist = ev.filter(pl.col("ts") < start)
                labels = ev.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
                if hist.height and labels.height:
                    windows.append((hist, labels))
                end = start
        else:
            for w in range(c.label_windows):
                hold = pl.Series("hold", np.random.default_rng(c.seed + w).random(ev.height) < c.label_fraction)
                marked = ev.with_columns(hold)
                windows.append((marked.filter(~pl.col("hold")).drop("hold"), marked.filter(pl.col("hold")).drop("hold")))
        if not windows:
            raise TrainingDataError(
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
            raise TrainingDataError("no training customer had a labelled item among their candidates")
        return np.concatenate(Xs), np.concatenate(ys), np.asarray(groups)

    # -- serving ----------------------------------------------------------------------

    def _check(self) -> None:
        if not hasattr(self, "ranker_"):
            raise NotFittedError("Recommender")

    # -- live state: history lookup, counterfactuals, updates, erasure ---------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)  # locks do not pickle; a loaded model gets a fresh one
        return state

    @property
    def _mutex(self) -> threading.RLock:
        lock = self.__dict__.get("_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_lock", threading.RLock())
        return lock

    @property
    def _live_histories(self) -> dict[str, CustomerHistory]:
        return self.__dict__.setdefault("_live", {})

    def _history(self, customer: str) -> CustomerHistory | None:
        """The live history if :meth:`observe` updated the customer, else the stored one."""
        with self._mutex:
            live = self._live_histories.get(customer)
            if live is not None:
                return live
            return self.stage_.history(customer)

    def history_row(self, customer: str) -> sp.csr_matrix:
        """The customer's interaction weights as the model sees them now, CSR (1, items) float32.

        Includes events added by :meth:`observe`; all zeros for unknown (or
        forgotten) customers. A copy: edit it freely and pass it to
        :meth:`score_items` as a counterfactual history.
        """
        self._check()
        h = self._history(customer)
        if h is None:
            return sp.csr_matrix((1, len(self.stage_.interactions.items)), dtype=np.float32)
        return sp.csr_matrix(h.row, dtype=np.float32, copy=True)

    def item_features(
        self,
        customer: str,
        items: npt.ArrayLike,
        *,
        history: sp.spmatrix | npt.NDArray[np.floating[Any]] | None = None,
        filters: Filters = Filters(),
        now: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Ranker features of ``items`` for ``customer``, shape (len(items), len(FEATURE_NAMES)).

        As :meth:`score_items`, before the ranker.
        """
        self._check()
        stage = self.stage_
        idx = check_items(items, len(stage.interactions.items))
        base = self._history(customer) or empty_history(len(stage.interactions.items))
        h = base if history is None else override_history(stage, base, history)
        allow_repeats = filters.allow_repeats and self.config.mode == "repeats"
        cs = stage.candidates(
            customer, allow_repeats=allow_repeats, category=filters.category, now=now, history=h, items=idx
        )
        if cs is None:  # cannot happen: with items given, candidates always returns a set
            raise RuntimeError("candidate step returned nothing for explicit items")
        return cs.features

    def score_items(
        self,
        customer: str,
        items: npt.ArrayLike,
        *,
        history: sp.spmatrix | npt.NDArray[np.floating[Any]] | None = None,
        filters: Filters = Filters(),
        now: float | None = None,
    ) -> npt.NDArray[np.float64]:
        """Ranker scores of item indices ``items`` for ``customer``, shape (len(items),), float64.

        With ``history=None`` these are exactly the scores :meth:`recommend`
        (same ``filters`` and ``now``) gives those items. ``history`` (a
        (1, items) weight row, e.g. :meth:`history_row` with an item
        removed) scores them as if that were the customer's history: ALS
        factors folded in, co-purchase, EASE and content recomputed from the
        row, purchase counts and buy-again pairs kept only for the items the
        row still has, features rebuilt, ranker re-run
        (:func:`recsys.history.override_history`). Unknown customers score
        with an empty history (where :meth:`recommend` serves popular items
        instead). Raises :class:`~recsys.errors.UnknownItemError` for an
        index outside the catalog and :class:`~recsys.errors.InvalidHistoryError`
        for a malformed row.
        """
        features = self.item_features(customer, items, history=history, filters=filters, now=now)
        if len(features) == 0:
            return np.zeros(0, np.float64)
        return self.ranker_.predict(features)

    def score_without(
        self,
        customer: str,
        items: npt.ArrayLike,
        removed: npt.ArrayLike,
        *,
        filters: Filters = Filters(),
        now: float | None = None,
        basis: ListBasis | None = None,
    ) -> npt.NDArray[np.float64]:
        """Ranker scores of ``items`` with each of ``removed`` taken out of the customer's history.

        Shape (len(removed), len(items)), float64. Row ``t`` equals
        ``score_items(customer, items, history=row)`` where ``row`` is
        :meth:`history_row` with item ``removed[t]`` deleted, but all rows
        come from one pass: the work that does not depend on the removed item
        is done once, the EASE and ALS scores are updated, not recomputed (see
        :meth:`Stage.removal_features`: they round differently in the last
        float32 bits, which moves a score only if a feature lies within that
        rounding of one of the ranker's splits; the tests compare the scores
        bit for bit) and the ranker runs once on the stacked features. This is the batched counterfactual of the
        explanations' faithfulness check. A ``removed`` item the customer
        never had leaves the history as it is. Unknown customers score with
        an empty history, as in :meth:`score_items`. ``basis`` (a
        :class:`RankedList`'s, from :meth:`recommend`) re-scores from the
        history the list was ranked from, reusing its work, instead of the
        customer's current history. Raises
        :class:`~recsys.errors.UnknownItemError` for an index outside the catalog.
        """
        self._check()
        stage = self.stage_
        n_items = len(stage.interactions.items)
        idx = check_items(items, n_items)
        gone = check_items(removed, n_items)
        if len(gone) == 0 or len(idx) == 0:
            return np.zeros((len(gone), len(idx)), np.float64)
        base = basis.history if basis is not None else self._history(customer) or empty_history(n_items)
        allow_repeats = filters.allow_repeats and self.config.mode == "repeats"
        features = stage.removal_features(
            customer, base, gone.tolist(), idx, allow_repeats=allow_repeats, category=filters.category, now=now,
            basis=basis,
        )
        return self.ranker_.predict(features.reshape(-1, features.shape[2])).reshape(len(gone), len(idx))

    def observe(self, customer: str, events: pl.DataFrame) -> None:
        """Add live events of ``customer`` without retraining; the next :meth:`recommend` reflects them.

        ``events`` has ``item_id`` and optionally ``event_type`` (view, cart,
        purchase, rating; default purchase), ``ts`` (epoch seconds) and
        ``value``. The customer's history (weights, purchase counts, last
        times, buy-again pairs, content profile) is rebuilt from their
        training events plus every observed event, and their ALS factors are
        folded in (moved by the change, for customers the model was trained
        on). Unknown customers become known. Nothing about other customers
        or the item side changes. Raises
        :class:`~recsys.errors.UnknownItemError` for items outside the
        catalog and :class:`~recsys.errors.InvalidEventsError` for malformed
        events; nothing is applied then.
        """
        self._check()
        stage = self.stage_
        new = validate_events(stage, events)
        if new.height == 0:
            return
        with self._mutex:
            live = self._live_histories.get(customer)
            u = stage.interactions.customers.index(customer)
            trained = stored_history(stage, u) if u >= 0 else None
            if live is not None and live.events is not None:
                prior = live.events
            elif u >= 0:
                prior = stored_events(stage, u)
            else:
                prior = new.clear()
            events_all = pl.concat([prior, new], how="vertical_relaxed")
            self._live_histories[customer] = history_from_events(stage, events_all, trained=trained)

    def forget(self, customer: str) -> dict[str, int]:
        """Remove ``customer`` from the live model; afterwards they are unknown (cold start).

        Deletes their events, matrix rows (weights, purchase counts, last
        times, content profile), ALS factors (zeroed in the trained model
        too), buy-again pairs, their vocabulary entry (the index stays taken
        by a tombstone), any live history and their precomputed candidates
        (zeroed). Returns how many of each were
        removed (0s for a customer the model never knew). Item-side
        aggregates learned from everyone (popularity counts, co-purchase and
        EASE similarities, the ranker) keep their contribution until the
        next training run, which no longer sees their events.
        """
        self._check()
        stage = self.stage_
        inter = stage.interactions
        removed = {
            "live_history": 0, "events": 0, "matrix_entries": 0, "purchase_entries": 0,
            "last_time_entries": 0, "content_entries": 0, "als_factors": 0, "buy_again_pairs": 0,
            "vocabulary": 0, "precomputed_candidates": 0,
        }
        with self._mutex:
            removed["live_history"] = int(self._live_histories.pop(customer, None) is not None)
            pre = self.precomputed
            removed["precomputed_candidates"] = 0 if pre is None else pre.drop(customer)
            u = inter.customers.index(customer)
            if u < 0:
                return removed
            events = inter.events
            mask = events["u"] == u
            removed["events"] = int(mask.sum())
            # frozen record, shared by every retriever: swap its fields in place
            object.__setattr__(inter, "events", events.filter(~mask))
            for field_name, key in (("matrix", "matrix_entries"), ("counts", "purchase_entries")):
                new_m, n = _without_row(getattr(inter, field_name), u)
                object.__setattr__(inter, field_name, new_m)
                removed[key] = n
            if getattr(stage, "_last_ts", None) is not None:
                stage._last_ts, removed["last_time_entries"] = _without_row(stage._last_ts, u)
            if hasattr(stage, "_n_events"):
                n_events = stage._n_events.copy()
                n_events[u] = 0
                stage._n_events = n_events
            r = stage.retrievers
            if "content" in r:
                r["content"].profile_weights_, removed["content_entries"] = _without_row(
                    r["content"].profile_weights_, u
                )
            if "als" in r:
                factors = r["als"].user_factors_
                removed["als_factors"] = int(np.any(factors[u] != 0))
                factors[u] = 0  # the same array as the implicit model's user_factors
            removed["buy_again_pairs"] = r["buy_again"].drop_customer(u)
            removed["vocabulary"] = int(inter.customers.forget(customer) >= 0)
        return removed

    def recommend(
        self,
        customer: str,
        k: int = 10,
        *,
        filters: Filters = Filters(),
        personalise: bool = True,
        now: float | None = None,
        policy: ServingPolicy | None = None,
        explainable: bool = True,
    ) -> RankedList:
        """Top-``k`` items for ``customer`` (the id the model knows them by).

        ``personalise=False`` (no consent) serves the non-personalised list.
        Unknown customers are not an error: they get popular items, flagged
        ``cold_start``. ``policy`` (see :mod:`recsys.ranking.policy`) drops
        candidates below its score floor and re-orders less-active customers'
        lists; item scores stay the ranker's own. ``explainable=False`` (a
        list that will not be explained) may read the customer's
        :class:`PrecomputedCandidates` instead of running the candidate
        step: the same list, without the :class:`ListBasis` the
        explanations reuse.
        """
        self._check()
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        stage = self.stage_
        if not personalise:
            return self._popular(customer, k, filters, "not_personalised", now)
        allow_repeats = filters.allow_repeats and self.config.mode == "repeats"
        stored = None
        if not explainable and now is None and filters.category is None:
            stored = self._precomputed(customer, allow_repeats)
        if stored is not None:
            cs, had = stored
        else:
            h = self._history(customer)
            got = None if h is None else stage.candidates(
                customer, allow_repeats=allow_repeats, category=filters.category, now=now, history=h
            )
            if got is None or h is None:
                return self._popular(customer, k, filters, "cold_start", now)
            cs, had = got, None
            if filters.exclude_purchased:
                had = _had(len(stage.interactions.items), h.items, cs.items)
        keep = self._filter_mask(cs.items, filters)
        if filters.exclude_purchased and had is not None:
            repeat_ok = cs.proposed_by("buy_again") if allow_repeats else np.zeros(len(cs.items), bool)
            keep &= ~had | repeat_ok
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            return self._popular(customer, k, filters, "known", now)
        scores = self.ranker_.predict(cs.features[idx])
        key = scores
        reordered = policy is not None and not policy.is_identity
        if reordered:
            kept, key = apply_policy(policy, scores, cs.features[idx], boundary=active_boundary(self))
            idx, scores = idx[kept], scores[kept]
        order = np.lexsort((cs.items[idx], -key))[: k + 1]
        runner_up = None
        if len(order) > k:
            if not reordered:
                runner_up = (int(cs.items[idx[order[k]]]), float(scores[order[k]]))
            order = order[:k]
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
        return RankedList(
            customer, "known", ranked, self.version_, filters=filters, now=now, basis=cs.basis, runner_up=runner_up
        )

    def precompute_candidates(self, max_customers: int, *, progress: Progress | None = None) -> int:
        """Keep the candidate step's output for up to ``max_customers`` customers, the most recently
        active first (see :class:`PrecomputedCandidates`); 0 removes it. Returns how many were kept."""
        self._check()
        if max_customers <= 0:
            self.__dict__.pop("precomputed_", None)
            return 0
        inter = self.stage_.interactions
        last = (
            inter.events.group_by("u").agg(pl.col("ts").max())
            .sort(["ts", "u"], descending=[True, False], nulls_last=True)
            .head(max_customers)
        )
        ids = inter.customers.ids
        customers = [str(ids[u]) for u in last["u"].to_list()]
        with threadpool_limits(1, "blas"):
            self.precomputed_ = PrecomputedCandidates.build(
                self.stage_, customers, allow_repeats=self.config.mode == "repeats", progress=progress
            )
        return len(self.precomputed_.slots)

    @property
    def precomputed(self) -> PrecomputedCandidates | None:
        """The precomputed candidates (:meth:`precompute_candidates`), or None."""
        return self.__dict__.get("precomputed_")

    def _precomputed(
        self, customer: str, allow_repeats: bool
    ) -> tuple[CandidateSet, npt.NDArray[np.bool_]] | None:
        pre = self.precomputed
        if pre is None or pre.allow_repeats != allow_repeats:
            return None
        with self._mutex:  # observe and forget change the customer under it
            return None if customer in self._live_histories else pre.get(customer)

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

    def _popular(
        self, customer: str, k: int, filters: Filters, status: CustomerStatus, now: float | None = None
    ) -> RankedList:
        """The ``k`` most popular items that pass the filters, read off the stage's cached
        popularity order (the popularity source's own order: positive scores, best first, ties to
        the lower index) instead of a selection over the whole catalogue per request."""
        stage = self.stage_
        pop = stage.retrievers["popularity"]
        order = stage.popular_order(filters.category)
        others = replace(filters, category=None)
        head = order[: 3 * k]
        keep = self._filter_mask(head, others)
        if np.count_nonzero(keep) < k and len(head) < len(order):  # inactive or too dear at the head
            head = order
            keep = self._filter_mask(head, others)
        items = head[keep][:k]
        scores = pop.scores_[items].astype(np.float32)
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
        return RankedList(customer, status, ranked, self.version_, filters=filters, now=now)

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
