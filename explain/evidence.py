"""Evidence: the facts behind a recommended item, per feature group.

For one (customer, item) and one feature group, :class:`EvidenceFinder`
returns the candidate reasons that group can support, most specific first,
each with its evidence (:class:`Evidence`):

- ``copurchase``: the history items whose co-purchase similarity adds most to
  the item's co-purchase score (``CoPurchaseRetriever.contributions``);
- ``als``: the history items with the largest share of the item's folded-in
  ALS score (``AlsRetriever.explain``, Hu et al. section 5);
- ``ease``: the history items with the largest ``x_j * B_ji``;
- ``content``: the history items whose text is most similar to the item's;
- ``buy_again``: the customer's own purchase interval of the item;
- ``category``: the customer's share of the item's category (and whether the
  item is new), with the history items in that category;
- ``popularity``: the item's trend and popularity figures.

History items are only ever cited with a positive contribution; nothing here
reads customer attributes. Unknown customers get no evidence.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.linalg as sla
import scipy.sparse as sp

from recsys.compiled import lazily_compiled
from recsys.ranking.features import FEATURE_INDEX
from recsys.retrieval.base import top_k
from recsys.retrieval.copurchase import sorted_contributions

Role = Literal["history", "recommended"]
Interaction = Literal["purchase", "rating", "cart", "view"]

# strongest kind of interaction first; the code is stored per (customer, item)
_KIND_CODES: Final[dict[str, int]] = {"view": 1, "cart": 2, "rating": 3, "purchase": 4}
_KIND_NAMES: Final[dict[int, Interaction]] = {1: "view", 2: "cart", 3: "rating", 4: "purchase"}

# reason types whose text cites one history item (the counterfactual check applies)
HISTORY_CITING: Final[frozenset[str]] = frozenset({"bought_together", "because_you_bought", "goes_with", "similar_to"})
# which retriever's score each history-citing reason's contributions refer to
SOURCE_OF: Final[dict[str, str]] = {
    "bought_together": "copurchase", "because_you_bought": "als", "goes_with": "ease", "similar_to": "content",
}


# The ranker features each reason's claim rests on: every tuple's summed SHAP
# must be positive for the reason to be shown ("Trending" needs the trend to
# raise the score, not just the popularity group as a whole).
BACKING: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "bought_together": (("copurchase_score", "copurchase_rank", "copurchase_max"),),
    "because_you_bought": (("als_score", "als_rank"),),
    "goes_with": (("ease_score", "ease_rank"),),
    "similar_to": (("content_score", "content_rank"),),
    "buy_again": (("buy_again_score", "buy_again_interval_ratio", "purchases_of_item", "in_history"),),
    "new_in_category": (("item_age_days",), ("category_share", "level2_share", "level3_share")),
    "category_affinity": (("category_share", "level2_share", "level3_share"),),
    "trending": (("trend",),),
    "popular_in_category": (("category_popularity_rank", "recent_popularity"),),
    "popular": (("recent_popularity", "popularity"),),
}


@dataclass(frozen=True)
class EvidenceItem:
    """One item a reason rests on.

    ``role="history"``: an item the customer interacted with (``interaction``
    is the strongest kind seen, None if unknown) and ``contribution`` its
    share of the cited score; ``role="recommended"``: the recommended item
    itself, with its figures.
    """

    item: int
    item_id: str
    title: str | None
    role: Role
    interaction: Interaction | None = None
    contribution: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> frozenset[str]:
        """The keys :meth:`as_dict` gives, without building it (the rules check them on every candidate;
        made once per item: the alternatives of a reason share their items)."""
        keys = self.__dict__.get("_keys")
        if keys is None:
            out = {"item_id", "title", "role", *self.figures}
            if self.interaction is not None:
                out.add("interaction")
            if self.contribution is not None:
                out.add("contribution")
            keys = self.__dict__["_keys"] = frozenset(out)  # a frozen dataclass: not through setattr
        return keys

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id, "title": self.title, "role": self.role}
        if self.interaction is not None:
            out["interaction"] = self.interaction
        if self.contribution is not None:
            out["contribution"] = self.contribution
        out.update(self.figures)
        return out


@dataclass(frozen=True)
class Evidence:
    """A candidate reason: its type, the group backing it, its evidence and template values."""

    reason_type: str
    group: str
    items: tuple[EvidenceItem, ...]
    values: dict[str, Any] = field(default_factory=dict)
    # the candidate this one names another of the items of (the same items in another order): the
    # truthfulness rules judge the items as a set, so the two share their rule check
    variant_of: Evidence | None = field(default=None, compare=False, repr=False)

    @property
    def cites_history(self) -> bool:
        return self.reason_type in HISTORY_CITING

    @property
    def cited(self) -> EvidenceItem | None:
        """The history item named in the text (the first), if the reason cites one."""
        return self.items[0] if self.cites_history and self.items else None


@dataclass(frozen=True)
class EvidenceConfig:
    """Thresholds for the reasons that are not about a single history item.

    - ``max_items``: history items listed as evidence per reason.
    - ``min_citation_share``: a history item is named in a reason only if its
      contribution is at least this share of the retriever score's positive
      contributions (0: the largest positive contributor is always named).
    - ``min_category_share``: "which you often buy" needs at least this share
      of the customer's interaction weight in the category.
    - ``new_item_days``: "New in ..." for items first sold at most this long ago.
    - ``trend_min``: "Trending ..." needs the trend ratio at least this high
      and ``trend_min_customers`` buyers in the trend window.
    - ``popular_top``: "Popular in {category}" / "Popular right now" need the
      item in the top this many of its category / of the whole catalog.
    """

    max_items: int = 3
    min_citation_share: float = 0.0
    min_category_share: float = 0.15
    new_item_days: float = 30.0
    trend_min: float = 1.25
    trend_min_customers: int = 3
    popular_top: int = 20


def _top_loop(values: Any, history: Any, item: int, out: Any) -> int:  # pragma: no cover -- compiled by numba
    """The positions of the ``len(out)`` largest positive ``values`` whose ``history`` item is not
    ``item``, largest first, ties to the lower history item (then the lower position), as
    ``sorted_contributions`` orders them: written to ``out``, their number returned. Comparisons only."""
    n = len(out)
    k = 0
    for p in range(len(values)):
        v = values[p]
        h = history[p]
        if not v > 0 or h == item:
            continue
        j = k  # where p goes among the k kept: after every kept one it does not beat
        while j > 0 and (v > values[out[j - 1]] or (v == values[out[j - 1]] and h < history[out[j - 1]])):
            j -= 1
        if j >= n:
            continue
        for s in range(min(k, n - 1), j, -1):
            out[s] = out[s - 1]
        out[j] = p
        if k < n:
            k += 1
    return k


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_top_kernel = lazily_compiled(_top_loop)


def prepare() -> None:
    """Compile the evidence's kernel now, e.g. when a model is loaded, not on the first request."""
    _top_kernel()(np.ones(1), np.zeros(1, np.int64), -1, np.empty(1, np.int64))


class HistoryContext:
    """One customer's history row and what the history-item contributions need, computed once per list.

    The contributions equal the retrievers' own ``contributions``/``explain``
    (``tests/test_explain.py`` checks this); they are computed here for all
    of a list's items at the cost of one: the co-purchase column comes from a
    cached CSC copy, ALS's Cholesky factor and the content profile are
    built once per customer.
    """

    def __init__(
        self,
        finder: EvidenceFinder,
        row: sp.csr_matrix,
        customer: str | None = None,
        basis: Any = None,
        listed: Sequence[int] = (),
    ) -> None:
        self.finder = finder
        self.customer = customer
        self.basis = basis  # the ranked list's ListBasis (row is its history's): shares the ALS system
        if not (sp.isspmatrix_csr(row) and row.dtype == np.float32 and row.has_sorted_indices):
            row = sp.csr_matrix(row, dtype=np.float32)  # a copy: the caller's row is left as it is
            row.sort_indices()
        self.row = row  # read, never written
        keep = self.row.data > 0
        self.items = self.row.indices[keep].astype(np.int64)
        self.weights = self.row.data[keep]
        self._als: Any = None
        self._als_solved: dict[int, npt.NDArray[np.float64]] = {}
        self.listed = tuple(int(i) for i in listed)  # the list's items: their ALS solves are made together
        self._categories: tuple[Any, dict[Any, npt.NDArray[np.int64]]] | None = None
        self._content: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float] | None = None
        self._in_history: npt.NDArray[np.bool_] | None = None  # over all items, for the co-purchase columns
        self._ease: tuple[Any, Any, Any, Any] | None = None
        self._repeats: Any = None
        # per category, the history items a category reason lists (EvidenceItems are immutable: shared)
        self.category_items: dict[Any, tuple[EvidenceItem, ...]] = {}

    # Each source's contributions come as arrays (history items, values; unsorted, zeros
    # included) for the evidence finder, which keeps the few it cites, and as sorted
    # (item, value) lists, the retrievers' own format.

    def copurchase(self, item: int) -> list[tuple[int, float]]:
        return sorted_contributions(*self.copurchase_arrays(item))

    def copurchase_arrays(self, item: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        sim = self.finder.similarity_csc()
        lo, hi = sim.indptr[item], sim.indptr[item + 1]
        rows, vals = sim.indices[lo:hi], sim.data[lo:hi]
        if self._in_history is None or len(self._in_history) != sim.shape[0]:  # once per list
            self._in_history = np.zeros(sim.shape[0], bool)
            self._in_history[self.items] = True
        hit = self._in_history[rows]
        return rows[hit].astype(np.int64), vals[hit].astype(np.float64)

    def ease(self, item: int) -> list[tuple[int, float]]:
        return sorted_contributions(*self.ease_arrays(item))

    def ease_arrays(self, item: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        r = self.finder.stage.retrievers["ease"]
        target = r.slot_[item]
        if target < 0 or not len(self.items):
            return np.zeros(0, np.int64), np.zeros(0)
        if self._ease is None or self._ease[0] is not r:  # the history's EASE rows, once per list
            slots = r.slot_[self.items]
            used = slots >= 0
            values = np.ones(int(used.sum()), np.float64) if r.config.binarize else self.weights[used].astype(np.float64)
            self._ease = (r, self.items[used], slots[used], values)
        _, items, slots, values = self._ease
        return items, values * r.weights_[slots, target]

    def content(self, item: int) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """(history item, share of the content score) largest first, and each one's cosine to ``item``.

        The content score is the cosine of the item with the weighted mean
        profile, so history item j adds ``w_j cos(j, item) / |profile|``
        (``w`` the recency-decayed weights the content source uses).
        """
        idx, values, sims = self._content_all(item)
        mine = idx != item
        return sorted_contributions(idx[mine], values[mine]), dict(zip(idx.tolist(), sims.tolist(), strict=True))

    def content_arrays(
        self, item: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """:meth:`content` as arrays: history items (``item`` itself left out), shares, cosines."""
        idx, values, sims = self._content_all(item)
        mine = idx != item
        return idx[mine], values[mine], sims[mine]

    def _content_all(
        self, item: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        r = self.finder.stage.retrievers["content"]
        empty = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        if not r.has_text_[item]:
            return empty
        if self._content is None:
            self._content = self._content_profile(r)
        idx, w, norm = self._content
        if not len(idx) or norm == 0:
            return empty
        emb = r.embeddings_
        sims = (emb[idx] @ emb[item]).astype(np.float64)
        return idx, w * sims / norm, sims

    def _content_profile(self, r: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
        """The content profile's history items with text, their weights and the profile's norm (once per list).

        The profile is the ranked list's own (its history's content weights, live events included) when
        the list's basis is known, else the customer's stored one."""
        if self.basis is not None:
            crow = self.basis.history.content_row
        else:
            crow = r.history_row(self.customer) if self.customer is not None else None
        if crow is None or crow.nnz == 0:
            crow = self.row
        idx, w = crow.indices.astype(np.int64), crow.data.astype(np.float64)
        keep = (w > 0) & r.has_text_[idx]
        idx, w = idx[keep], w[keep]
        norm = float(np.linalg.norm(w.astype(np.float32) @ r.embeddings_[idx])) if len(idx) else 0.0
        return idx, w, norm

    def als(self, item: int) -> list[tuple[int, float]]:
        return sorted_contributions(*self.als_arrays(item))

    def als_arrays(self, item: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        r = self.finder.stage.retrievers["als"]
        if self._als is None:  # once per list: the fold-in system and the history's factors
            if self.basis is not None:
                items, confidence, system = self.basis.als_system(r)
            else:
                items, confidence = r._confidences(self.row)
                system = r._system(items, confidence) if len(items) else None
            self._als = (items, confidence, system, r.item_factors_[items].astype(np.float64))
        items, confidence, system, factors = self._als
        if system is None:
            return np.zeros(0, np.int64), np.zeros(0)
        weighted = self._als_solved.get(item)
        if weighted is None:  # the list's items solved side by side, once (each column as if alone)
            wanted = list(dict.fromkeys([item, *self.listed]))
            solved = sla.cho_solve(system, r.item_factors_[wanted].astype(np.float64).T, check_finite=False)
            self._als_solved.update(zip(wanted, solved.T, strict=True))
            weighted = self._als_solved[item]
        return items.astype(np.int64), confidence * (factors @ weighted)

    def repeats(self, retriever: Any) -> Any:
        """The buy-again pairs the list was ranked with (its history's, live events included), else the
        customer's stored ones (a :class:`~recsys.retrieval.buy_again.RepeatPairs`)."""
        if self.basis is not None:
            return self.basis.history.repeats
        if self._repeats is None:
            self._repeats = retriever.pairs_of(self.customer if self.customer is not None else "")
        return self._repeats

    def in_category(self, categories: npt.NDArray[np.object_], name: Any) -> npt.NDArray[np.int64]:
        """Positions (in :attr:`items`) of the history items of category ``name`` (grouped once per list)."""
        if self._categories is None or self._categories[0] is not categories:
            groups: dict[Any, list[int]] = {}
            for at, c in enumerate(categories[self.items].tolist()):
                groups.setdefault(c, []).append(at)
            self._categories = (categories, {c: np.asarray(v, np.int64) for c, v in groups.items()})
        return self._categories[1].get(name, np.zeros(0, np.int64))


class _CustomerKinds(NamedTuple):
    """One customer's strongest interaction kinds (the ``kinds`` matrix's row ``u``) as sorted item
    indices and their codes, and what :meth:`EvidenceFinder._history_item` looked up for the items
    cited for them: (item id, title, interaction kind) per item."""

    kinds: Any
    u: int
    items: list[int]
    codes: list[int]
    cited: dict[int, tuple[str, str | None, Interaction | None]]


class EvidenceFinder:
    """Looks up evidence in a fitted recommender's serving stage (read at call time)."""

    def __init__(self, model: Any, config: EvidenceConfig = EvidenceConfig()) -> None:
        self.model = model
        self.config = config
        self._kinds_for: Any = None
        self._kinds: sp.csr_matrix | None = None
        self._catalog_for: Any = None
        self._sim_for: Any = None
        self._sim_csc: sp.csc_matrix | None = None
        self._kind_row: _CustomerKinds | None = None  # see _customer_row()
        # the groups that can back a reason, each with its evidence lookup
        self._groups = {
            "copurchase": self._copurchase, "als": self._als, "ease": self._ease, "content": self._content,
            "buy_again": self._buy_again, "category": self._category, "popularity": self._popularity,
        }

    # -- lookups cached per serving stage --

    @property
    def stage(self) -> Any:
        return self.model.stage_

    def _catalog(self) -> None:
        inter = self.stage.interactions
        if self._catalog_for is inter:
            return
        cat = inter.catalog
        self._titles = np.asarray(cat["title"].to_list() if "title" in cat.columns else [None] * cat.height, dtype=object)
        cats = cat["category"].to_list() if "category" in cat.columns else [None] * cat.height
        self._categories = np.asarray(cats, dtype=object)
        self._ids = inter.items.ids
        scores = np.asarray(self.stage.retrievers["popularity"].scores_)
        order = top_k(scores, len(scores))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        self._pop_rank = rank
        self._catalog_for = inter

    def similarity_csc(self) -> sp.csc_matrix:
        """The co-purchase similarity as CSC (column i: which items point to i), cached."""
        sim = self.stage.retrievers["copurchase"].similarity_
        if self._sim_for is not sim or self._sim_csc is None:
            csc = sp.csc_matrix(sim)
            csc.sort_indices()
            self._sim_csc, self._sim_for = csc, sim
        return self._sim_csc

    def context(
        self, row: sp.csr_matrix, customer: str | None = None, basis: Any = None, listed: Sequence[int] = ()
    ) -> HistoryContext:
        """The per-list context of history ``row``; ``basis``: the ranked list's, whose history ``row`` is;
        ``listed``: the list's items (their ALS evidence is solved together)."""
        return HistoryContext(self, row, customer, basis, listed)

    def kinds(self) -> sp.csr_matrix:
        """Strongest interaction code per (customer, item): 4 purchase, 3 rating, 2 cart, 1 view."""
        inter = self.stage.interactions
        if self._kinds_for is not inter or self._kinds is None:
            ev = inter.events.select(
                "u", "i", pl.col("event_type").replace_strict(_KIND_CODES, default=0, return_dtype=pl.Int8).alias("k")
            )
            agg = ev.group_by("u", "i").agg(pl.col("k").max()).filter(pl.col("k") > 0)
            self._kinds = sp.csr_matrix(
                (agg["k"].to_numpy().astype(np.int8), (agg["u"].to_numpy(), agg["i"].to_numpy())),
                shape=inter.shape,
            )
            self._kinds_for = inter
        return self._kinds

    def interaction(self, u: int, item: int) -> Interaction | None:
        row = self._customer_row(u)
        return None if row is None else self._kind_in(row, item)

    def _customer_row(self, u: int) -> _CustomerKinds | None:
        """Customer ``u``'s strongest interaction kinds as lists (None for a customer the stage does not
        know), and a memo of what :meth:`_history_item` looked up for them. The last customer's is kept:
        a list's evidence asks about the same customer tens of times."""
        kinds = self.kinds()
        if u < 0 or u >= kinds.shape[0]:
            return None
        row = self._kind_row
        if row is None or row.kinds is not kinds or row.u != u:
            lo, hi = kinds.indptr[u], kinds.indptr[u + 1]
            row = self._kind_row = _CustomerKinds(kinds, u, kinds.indices[lo:hi].tolist(), kinds.data[lo:hi].tolist(), {})
        return row

    @staticmethod
    def _kind_in(row: _CustomerKinds, item: int) -> Interaction | None:
        indices = row.items
        pos = bisect_left(indices, item)
        if pos < len(indices) and indices[pos] == item:
            return _KIND_NAMES.get(row.codes[pos])
        return None

    def title(self, item: int) -> str | None:
        self._catalog()
        t = self._titles[item]
        return None if t is None else str(t)

    def item_id(self, item: int) -> str:
        self._catalog()
        return str(self._ids[item])

    def category(self, item: int) -> str | None:
        self._catalog()
        c = self._categories[item]
        return None if c is None else str(c)

    def _history_item(self, u: int, item: int, contribution: float | None, **figures: Any) -> EvidenceItem:
        item = int(item)
        row = self._customer_row(u)
        known = None if row is None else row.cited.get(item)
        if known is None:  # the item's id, title and interaction kind: a list cites the same items many times
            self._catalog()
            title = self._titles[item]
            known = (str(self._ids[item]), None if title is None else str(title), None if row is None else self._kind_in(row, item))
            if row is not None:
                row.cited[item] = known
        return EvidenceItem(
            item=item, item_id=known[0], title=known[1], role="history",
            interaction=known[2], contribution=contribution, figures=figures,
        )

    def _recommended(self, item: int, **figures: Any) -> EvidenceItem:
        return EvidenceItem(item=int(item), item_id=self.item_id(item), title=self.title(item), role="recommended", figures=figures)

    # -- per group --

    def candidates(
        self,
        group: str,
        customer: str,
        item: int,
        features: npt.NDArray[np.float32],
        *,
        row: sp.csr_matrix | HistoryContext | None = None,
        now: float | None = None,
    ) -> list[Evidence]:
        """Candidate reasons group ``group`` supports for ``item``, most specific first ([] if none).

        ``row`` is the customer's history row as the model serves it
        (``Recommender.history_row``, live events included; default: the
        stored one). ``features`` is the item's ranker feature row.
        """
        finder = self._groups.get(group)
        if finder is None:
            return []
        u = self.stage.interactions.customers.index(customer)
        ctx = row if isinstance(row, HistoryContext) else self.context(
            self.model.history_row(customer) if row is None else row, customer
        )
        if not len(ctx.items) and group != "popularity":
            return []
        return finder(customer, u, ctx, int(item), features, now)

    def _history_citing(
        self,
        reason: str,
        history: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        u: int,
        item: int,
        *,
        similarity: npt.NDArray[np.float64] | None = None,
    ) -> list[Evidence]:
        """The reason citing the history items with the largest positive contributions (ties: lower item)."""
        n, share = self.config.max_items, self.config.min_citation_share
        if share <= 0:  # only the n largest are listed: one compiled pass picks them
            history = np.ascontiguousarray(history, np.int64)
            values = np.ascontiguousarray(values, np.float64)
            keep = np.empty(n, np.int64)
            keep = keep[: _top_kernel()(values, history, item, keep)]
        else:
            keep = np.flatnonzero((values > 0) & (history != item))
            keep = keep[np.lexsort((history[keep], -values[keep]))]  # as sorted_contributions orders them
            if len(keep) and values[keep[0]] < share * sum(values[keep].tolist()):
                return []
            keep = keep[:n]
        if not len(keep):
            return []
        source = SOURCE_OF[reason]
        items = tuple(
            self._history_item(
                u, j, v, **({"similarity": float(similarity[at])} if similarity is not None else {}), source=source
            )
            for at, j, v in zip(keep.tolist(), history[keep].tolist(), values[keep].tolist(), strict=True)
        )
        return [Evidence(reason, source, items)]

    # the history-citing groups: each needs its retriever in the serving stage

    def _copurchase(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        if "copurchase" not in self.stage.retrievers:
            return []
        return self._history_citing("bought_together", *row.copurchase_arrays(item), u, item)

    def _als(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        if "als" not in self.stage.retrievers:
            return []
        return self._history_citing("because_you_bought", *row.als_arrays(item), u, item)

    def _ease(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        if "ease" not in self.stage.retrievers:
            return []
        return self._history_citing("goes_with", *row.ease_arrays(item), u, item)

    def _content(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        if "content" not in self.stage.retrievers:
            return []
        history, values, sims = row.content_arrays(item)
        return self._history_citing("similar_to", history, values, u, item, similarity=sims)

    def _buy_again(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        r = self.stage.retrievers.get("buy_again")
        if r is None:
            return []
        ev = row.repeats(r).evidence(item, r.now_or_fitted(now))
        if ev is None:
            return []
        n = max(1, round(float(ev["typical_interval_days"])))
        figures = {
            "purchases": int(ev["purchases"]),
            "typical_interval_days": float(ev["typical_interval_days"]),
            "days_since_last": float(ev["days_since_last"]),
            "interval_ratio": float(ev["interval_ratio"]),
            "due_score": float(ev["score"]),
        }
        return [Evidence("buy_again", "buy_again", (self._history_item(u, item, None, **figures),), {"n": n})]

    def _category(
        self, customer: str, u: int, row: Any, item: int, features: npt.NDArray[np.float32], now: Any
    ) -> list[Evidence]:
        name = self.category(item)
        if name is None:
            return []
        share = float(features[FEATURE_INDEX["category_share"]])
        if not share >= self.config.min_category_share:
            return []
        inter = self.stage.interactions
        hist, w = row.items, row.weights
        items = row.category_items.get(name)
        if items is None:  # the same for every listed item of the category: once per list
            self._catalog()
            same = row.in_category(self._categories, name)
            same = same[np.lexsort((hist[same], -w[same]))][: self.config.max_items]
            items = row.category_items[name] = tuple(
                self._history_item(u, int(hist[j]), None, weight=float(w[j])) for j in same
            )
        if not items:
            return []
        values = {"category": name}
        age = float(features[FEATURE_INDEX["item_age_days"]])
        out = []
        if inter.now is not None and age <= self.config.new_item_days:
            rec = self._recommended(item, category=name, category_share=share, item_age_days=age)
            out.append(Evidence("new_in_category", "category", (rec, *items), values))
        rec = self._recommended(item, category=name, category_share=share)
        out.append(Evidence("category_affinity", "category", (rec, *items), values))
        return out

    def _popularity(self, customer: str, u: int, row: Any, item: int, features: Any, now: Any) -> list[Evidence]:
        pop = self.stage.retrievers["popularity"]
        s = pop.item_stats(item)
        self._catalog()
        rank = int(self._pop_rank[item])
        cat = self.category(item)
        figures = {
            "recent_customers": s["recent_count"], "customers_all_time": s["count"],
            "trend_ratio": s["trend_ratio"], "trend_window_days": s["trend_window_days"],
            "category_rank": s["category_rank"], "popularity_rank": rank,
        }
        rec = (self._recommended(item, **figures),)
        c = self.config
        out = []
        if (
            cat is not None and s["timed"] and s["trend_ratio"] >= c.trend_min
            and s["trend_recent_count"] >= c.trend_min_customers
        ):
            out.append(Evidence("trending", "popularity", rec, {"category": cat}))
        if cat is not None and s["category_rank"] <= c.popular_top and s["recent_count"] > 0:
            out.append(Evidence("popular_in_category", "popularity", rec, {"category": cat}))
        if rank <= c.popular_top and s["recent_count"] > 0:
            out.append(Evidence("popular", "popularity", rec))
        return out

    def popular(self, item: int) -> Evidence:
        """Evidence of a cold-start / not-personalised item: it was chosen for its popularity."""
        pop = self.stage.retrievers["popularity"]
        s = pop.item_stats(item)
        self._catalog()
        figures = {
            "recent_customers": s["recent_count"], "customers_all_time": s["count"],
            "popularity_rank": int(self._pop_rank[item]), "category_rank": s["category_rank"],
        }
        return Evidence("popular", "popularity", (self._recommended(item, **figures),))
