"""History lookup: one customer's history as the serving path sees it.

The first step of serving (history lookup -> candidates -> features -> ranker)
is answered here, from one of three places:

- :func:`stored_history`: the fitted model's own matrices (the usual case);
- :func:`history_from_events`: the customer's events, for live updates
  (:meth:`~recsys.recommender.Recommender.observe`) without retraining;
- :func:`override_history`: a counterfactual weight row ("what if this
  customer had not bought X"), for explanations' faithfulness check
  (:meth:`~recsys.recommender.Recommender.score_items`).

All three give the same immutable :class:`CustomerHistory`, so candidates,
features and the ranker never know which one they were handed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from recsys.data.schema import EVENT_TYPES
from recsys.errors import InvalidEventsError, InvalidHistoryError, UnknownItemError
from recsys.interactions import DAY, EVENT_COLUMNS, _weight_expr, with_event_defaults
from recsys.ranking.features import CustomerProfile
from recsys.retrieval.buy_again import RepeatPairs, pairs_from_frame, repeat_pairs

if TYPE_CHECKING:
    from recsys.recommender import Stage


@dataclass(frozen=True)
class CustomerHistory:
    """One customer's history, everything the candidate and feature steps read.

    - ``row``: CSR (1, items) float32, the interaction weights (positive
      only, sorted indices): what co-purchase and EASE score from.
    - ``purchases``/``last_ts``: purchase events and newest event time (NaN
      if unknown) per entry of ``row.indices``.
    - ``n_events``: every event of the customer.
    - ``content_row``: CSR (1, items), the weights after the content
      source's recency decay (its profile).
    - ``als_factor``: the customer's ALS factors (None: no ALS source or
      nothing to fold in).
    - ``repeats``: the buy-again pairs.
    - ``events``: for live customers, their own events (``item_id,
      event_type, ts, value`` and index ``i``) so the next update can
      rebuild from them; None for stored and counterfactual histories.
    """

    row: sp.csr_matrix
    purchases: npt.NDArray[np.float32]
    last_ts: npt.NDArray[np.float64]
    n_events: int
    content_row: sp.csr_matrix
    als_factor: npt.NDArray[np.float32] | None
    repeats: RepeatPairs
    events: pl.DataFrame | None = None

    @property
    def items(self) -> npt.NDArray[np.int32]:
        return self.row.indices.astype(np.int32, copy=False)

    @property
    def empty(self) -> bool:
        return self.row.nnz == 0

    def profile(self) -> CustomerProfile:
        return CustomerProfile(
            self.items, self.row.data.astype(np.float32, copy=False), self.last_ts, self.purchases, self.n_events
        )


def empty_history(n_items: int) -> CustomerHistory:
    row = sp.csr_matrix((1, n_items), dtype=np.float32)
    return CustomerHistory(row, np.zeros(0, np.float32), np.zeros(0), 0, row, None, RepeatPairs.empty())


def csr_row(m: sp.csr_matrix, u: int) -> sp.csr_matrix:
    """Row ``u`` of a CSR matrix as a (1, columns) CSR sharing its arrays (no copy)."""
    lo, hi = int(m.indptr[u]), int(m.indptr[u + 1])
    return sp.csr_matrix(
        (m.data[lo:hi], m.indices[lo:hi], np.array([0, hi - lo], dtype=m.indptr.dtype)),
        shape=(1, m.shape[1]),
    )


def values_at(
    m: sp.csr_matrix, u: int, items: npt.NDArray[np.integer[Any]], fill: float
) -> npt.NDArray[np.float64]:
    """``m[u, items]`` for a CSR matrix with sorted indices, ``fill`` where absent."""
    lo, hi = int(m.indptr[u]), int(m.indptr[u + 1])
    out = np.full(len(items), fill, dtype=np.float64)
    if hi == lo or not len(items):
        return out
    idx = m.indices[lo:hi]
    pos = np.minimum(np.searchsorted(idx, items), hi - lo - 1)
    hit = idx[pos] == items
    out[hit] = m.data[lo:hi][pos[hit]]
    return out


def stored_history(stage: Stage, u: int) -> CustomerHistory:
    """Customer ``u``'s history from the stage's fitted matrices."""
    inter, r = stage.interactions, stage.retrievers
    row = csr_row(inter.matrix, u)
    items = row.indices
    purchases = values_at(inter.counts, u, items, 0.0).astype(np.float32)
    last = getattr(stage, "_last_ts", None)
    if last is None:
        last_ts = np.full(len(items), np.nan)
    else:
        last_ts = values_at(last, u, items, np.nan)
        last_ts[last_ts == 0] = np.nan
    n_events = int(stage._n_events[u]) if hasattr(stage, "_n_events") else len(items)
    content_row = csr_row(r["content"].profile_weights_, u) if "content" in r else row
    als = r.get("als")
    factor = als.user_factors_[u] if als is not None else None
    repeats = r["buy_again"].pairs_of(str(inter.customers.ids[u]))
    return CustomerHistory(row, purchases, last_ts, n_events, content_row, factor, repeats)


def stored_events(stage: Stage, u: int) -> pl.DataFrame:
    """The training events of customer ``u`` in the live-events layout."""
    return stage.interactions.events.filter(pl.col("u") == u).select(*LIVE_COLUMNS)


LIVE_COLUMNS = ("item_id", "event_type", "ts", "value", "i")


def validate_events(stage: Stage, events: pl.DataFrame) -> pl.DataFrame:
    """Live events checked and put in the live layout (``item_id, event_type, ts, value, i``).

    ``item_id`` is required; ``event_type`` defaults to ``purchase``, ``ts``
    (epoch seconds) and ``value`` to null. Raises :class:`InvalidEventsError`
    for a missing ``item_id`` column, an unknown event type or a
    non-numeric ``ts``/``value``, :class:`UnknownItemError` for items
    outside the model's catalog.
    """
    if not isinstance(events, pl.DataFrame):
        raise InvalidEventsError(f"events must be a polars DataFrame, got {type(events).__name__}")
    if "item_id" not in events.columns:
        raise InvalidEventsError(
            f"events need an item_id column (and optionally event_type, ts, value); got {events.columns}"
        )
    extra = [c for c in events.columns if c not in EVENT_COLUMNS]
    if extra:
        raise InvalidEventsError(f"unexpected event columns {extra}; use item_id, event_type, ts, value")
    ev = with_event_defaults(events)
    try:
        ev = ev.select(
            pl.col("item_id").cast(pl.Utf8),
            pl.col("event_type").cast(pl.Utf8),
            pl.col("ts").cast(pl.Int64),
            pl.col("value").cast(pl.Float64),
        )
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise InvalidEventsError(f"ts must be epoch seconds and value a number: {exc}") from exc
    if ev["item_id"].null_count():
        raise InvalidEventsError("item_id must not be null")
    bad = sorted(set(ev["event_type"].drop_nulls().to_list()) - set(EVENT_TYPES))
    if bad or ev["event_type"].null_count():
        raise InvalidEventsError(f"event_type must be one of {', '.join(EVENT_TYPES)}; got {bad or [None]}")
    idx = stage.interactions.items.indices(ev["item_id"].to_list())
    if (idx < 0).any():
        unknown = list(dict.fromkeys(np.asarray(ev["item_id"].to_list(), dtype=object)[idx < 0].tolist()))
        raise UnknownItemError(unknown)
    return ev.with_columns(pl.Series("i", idx.astype(np.int32)))


def history_from_events(
    stage: Stage,
    events: pl.DataFrame,
    *,
    trained: CustomerHistory | None = None,
) -> CustomerHistory:
    """A customer's history rebuilt from their events, as fitting would have built it.

    ``events`` is in the live layout (see :func:`validate_events`). Weights
    use the fitted interaction config (decay relative to the training data's
    newest event), buy-again pairs the fitted buy-again rules. ALS factors
    are folded in; for a customer the model was trained on (``trained``,
    their stored history) the fold-in moves their trained factors by the
    change the new events make, so unchanged events keep exactly the trained
    factors.
    """
    inter, r = stage.interactions, stage.retrievers
    n_items = len(inter.items)
    ev = events.with_columns(_weight_expr(inter.config, _int_now(inter.now)).cast(pl.Float32).alias("weight"))
    per_item = (
        ev.group_by("i")
        .agg(
            pl.col("weight").filter(pl.col("weight") > 0).sum().alias("w"),
            (pl.col("event_type") == "purchase").sum().alias("purchases"),
            pl.col("ts").max().alias("last_ts"),
            pl.col("ts").filter(pl.col("weight") > 0).max().alias("last_weighted_ts"),
        )
        .filter(pl.col("w") > 0)
        .sort("i")
    )
    items = per_item["i"].to_numpy().astype(np.int32)
    weights = per_item["w"].to_numpy().astype(np.float32)
    row = sp.csr_matrix((weights, items, np.array([0, len(items)])), shape=(1, n_items))
    purchases = per_item["purchases"].to_numpy().astype(np.float32)
    last_ts = per_item["last_ts"].cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
    content_row = row
    if "content" in r:
        half_life = r["content"].config.recency_half_life_days
        if half_life is not None and inter.now is not None:
            last_w = per_item["last_weighted_ts"].cast(pl.Float64).fill_null(np.nan).to_numpy()
            age = np.clip((inter.now - last_w) / DAY, 0.0, None)
            decay = np.where(np.isfinite(age), np.power(0.5, age / half_life), 1.0)
            content_row = sp.csr_matrix(
                ((weights * decay).astype(np.float32), items, np.array([0, len(items)])), shape=(1, n_items)
            )
    repeats = pairs_from_frame(repeat_pairs(ev.lazy(), r["buy_again"].config, by=("i",)))
    factor = _fold(stage, row, trained)
    return CustomerHistory(
        row, purchases, last_ts, int(ev.height), content_row, factor, repeats, events=events
    )


def override_history(stage: Stage, base: CustomerHistory, history: Any) -> CustomerHistory:
    """``base`` with its weight row replaced by ``history`` (a counterfactual).

    ``history`` is a (1, items) row, sparse or dense, non-negative. What only
    events can tell (purchase counts, last times, buy-again pairs, the
    content decay) is kept for items in both histories and dropped for items
    the override removes; items it adds have no recorded events (0
    purchases, unknown time, no decay). ALS factors move by the fold-in
    difference between the two rows, so ``history == base.row`` gives back
    ``base`` exactly. Raises :class:`InvalidHistoryError` for a wrong shape
    or negative weights.
    """
    n_items = len(stage.interactions.items)
    row = _check_row(history, n_items)
    items = row.indices
    old = base.items
    pos = np.searchsorted(old, items) if len(old) else np.zeros(len(items), np.int64)
    pos_c = np.minimum(pos, max(len(old) - 1, 0))
    both = (pos < len(old)) & (old[pos_c] == items) if len(old) else np.zeros(len(items), bool)
    purchases = np.where(both, base.purchases[pos_c] if len(old) else 0, 0).astype(np.float32)
    last_ts = np.where(both, base.last_ts[pos_c] if len(old) else np.nan, np.nan)
    removed = np.ones(len(old), bool)
    removed[pos_c[both]] = False
    n_events = max(int(base.n_events - base.purchases[removed].sum()), int(row.nnz))
    # the content profile: the decayed base weight scaled by the new/old weight ratio
    content_w = row.data.astype(np.float64).copy()
    if len(old):
        old_w = base.row.data.astype(np.float64)
        old_content = values_at(base.content_row, 0, old, 0.0)
        scale = np.divide(old_content, old_w, out=np.ones(len(old)), where=old_w > 0)
        content_w[both] = content_w[both] * scale[pos_c[both]]
    content_row = sp.csr_matrix(
        (content_w.astype(np.float32), items, np.array([0, len(items)])), shape=(1, n_items)
    )
    repeats = base.repeats.restrict(np.isin(base.repeats.items, items))
    factor = _fold(stage, row, base)
    return CustomerHistory(row, purchases, last_ts, n_events, content_row, factor, repeats)


def _fold(stage: Stage, row: sp.csr_matrix, trained: CustomerHistory | None) -> npt.NDArray[np.float32] | None:
    als = stage.retrievers.get("als")
    if als is None or row.nnz == 0:
        return None  # nothing to fold in: no taste to match
    if trained is not None and trained.als_factor is not None:
        if _same_row(row, trained.row):
            return trained.als_factor
        return (trained.als_factor + (als.fold_in(row) - als.fold_in(trained.row))).astype(np.float32)
    return als.fold_in(row)


def _same_row(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return a.nnz == b.nnz and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)


def _check_row(history: Any, n_items: int) -> sp.csr_matrix:
    if sp.issparse(history):
        row = sp.csr_matrix(history, dtype=np.float32, copy=True)
    else:
        try:
            dense = np.asarray(history, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidHistoryError(f"history must be a (1, {n_items}) row of weights: {exc}") from exc
        row = sp.csr_matrix(dense.reshape(1, -1) if dense.ndim == 1 else dense)
    if row.shape != (1, n_items):
        raise InvalidHistoryError(
            f"history must have shape (1, {n_items}), one column per catalog item of the model; got {row.shape}"
        )
    if row.nnz and (row.data < 0).any():
        raise InvalidHistoryError("history weights must be >= 0 (0 means 'not in the history')")
    if row.nnz and not np.isfinite(row.data).all():
        raise InvalidHistoryError("history weights must be finite")
    row.eliminate_zeros()
    row.sum_duplicates()
    row.sort_indices()
    return row


def _int_now(now: float | None) -> int | None:
    return int(now) if now is not None else None


def check_items(items: Any, n_items: int) -> npt.NDArray[np.int32]:
    """Item indices as int32, or :class:`UnknownItemError` for any outside the catalog."""
    arr = np.asarray(items)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidHistoryError(f"items must be a 1-D array of item indices; got shape {arr.shape}, dtype {arr.dtype}")
    bad = arr[(arr < 0) | (arr >= n_items)]
    if len(bad):
        raise UnknownItemError([int(b) for b in bad], n_items=n_items)
    return arr.astype(np.int32)
