"""Interactions: events as a weighted customer x item matrix with one id vocabulary.

Everything that learns from behaviour starts here. Events arrive as a polars
frame with columns ``customer_id, item_id, event_type, ts, value`` (``ts`` epoch
seconds or null; ``value`` the quantity or rating, or null). ``customer_id`` is
whatever id the caller knows customers by: the pseudonym for data from the
store, the dataset's own id in offline evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

EVENT_COLUMNS = ("customer_id", "item_id", "event_type", "ts", "value")
DAY = 86_400.0
TOMBSTONE = "\x00forgotten:"  # ids of removed vocabulary entries start with this


def with_event_defaults(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with the optional columns filled in: ``event_type`` purchase, ``ts`` and ``value`` null."""
    ev = events
    if "event_type" not in ev.columns:
        ev = ev.with_columns(pl.lit("purchase").alias("event_type"))
    if "ts" not in ev.columns:
        ev = ev.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts"))
    if "value" not in ev.columns:
        ev = ev.with_columns(pl.lit(None, dtype=pl.Float64).alias("value"))
    return ev


@dataclass(frozen=True)
class InteractionConfig:
    """How events become matrix weights.

    Each event adds ``event_weights[event_type]``; a rating adds its value
    scaled by ``rating_scale`` instead (ratings at or below ``rating_floor`` add
    nothing: a 1-star rating is not a vote for the item). With
    ``half_life_days`` set, an event ``d`` days before the newest one counts
    ``0.5 ** (d / half_life_days)``.
    """

    event_weights: tuple[tuple[str, float], ...] = (
        ("purchase", 1.0),
        ("cart", 0.5),
        ("view", 0.1),
    )
    rating_scale: float = 0.2
    rating_floor: float = 0.0
    half_life_days: float | None = None

    def weight_of(self, event_type: str) -> float:
        return dict(self.event_weights).get(event_type, 0.0)


class IdVocabulary:
    """A fixed, ordered set of external ids and their row/column indices.

    Unknown ids map to -1; nothing is added after construction, and
    :meth:`forget` removes an id (erasure) without shifting the others.
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids: npt.NDArray[np.object_] = np.asarray(list(ids), dtype=object)
        self._index = {v: i for i, v in enumerate(self.ids.tolist())}
        if len(self._index) != len(self.ids):
            raise ValueError("vocabulary ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def index(self, key: str) -> int:
        """Index of ``key``, or -1 if unknown."""
        return self._index.get(key, -1)

    def indices(self, keys: Iterable[str]) -> npt.NDArray[np.int64]:
        """Indices of ``keys`` (-1 for each unknown one)."""
        get = self._index.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64)

    def forget(self, key: str) -> int:
        """Remove ``key``: its index stays taken (by a tombstone id) but ``key`` is unknown from now on.

        Returns the freed index, or -1 if ``key`` was not in the vocabulary.
        """
        i = self._index.pop(key, -1)
        if i >= 0:
            self.ids[i] = f"{TOMBSTONE}{i}"
            self._index[self.ids[i]] = i
        return i

    def series(self) -> pl.Series:
        return pl.Series("id", self.ids.tolist(), dtype=pl.Utf8)

    def to_list(self) -> list[str]:
        return self.ids.tolist()


@dataclass(frozen=True)
class Interactions:
    """Events with vocabulary indices, and the aggregated weight matrix.

    - ``events``: the input columns plus ``u`` and ``i`` (Int32 indices) and
      ``weight`` (Float32, after event-type weights and decay).
    - ``matrix``: CSR, shape (customers, items), float32, the summed weights
      of each (customer, item) pair; only positive weights are kept.
    - ``counts``: CSR, same shape, the number of purchase events of each pair.
    - ``items``/``customers``: the vocabularies (items include catalog items
      with no events when a catalog was given).
    - ``now``: the newest event time (epoch seconds) or None without times.
    - ``catalog``: item attributes aligned with ``items`` (row i is item i):
      at least ``item_id``, and ``title, description, category, brand, price``
      when a catalog was given (null where unknown).
    """

    events: pl.DataFrame
    customers: IdVocabulary
    items: IdVocabulary
    matrix: sp.csr_matrix
    counts: sp.csr_matrix
    config: InteractionConfig = field(default_factory=InteractionConfig)
    now: float | None = None
    catalog: pl.DataFrame = field(default_factory=pl.DataFrame)

    @classmethod
    def from_events(
        cls,
        events: pl.DataFrame,
        *,
        item_ids: Sequence[str] | None = None,
        customer_ids: Sequence[str] | None = None,
        catalog: pl.DataFrame | None = None,
        config: InteractionConfig | None = None,
    ) -> Self:
        """Build from an events frame.

        ``item_ids``/``customer_ids`` fix the vocabularies; events naming ids
        outside them are dropped. ``catalog`` (an items frame) fixes the item
        vocabulary to its ``item_id`` column when ``item_ids`` is not given.
        By default the vocabularies are the ids seen in ``events``, sorted.
        """
        config = config or InteractionConfig()
        missing = [c for c in ("customer_id", "item_id") if c not in events.columns]
        if missing:
            raise ValueError(f"events need columns {missing}; got {events.columns}")
        ev = with_event_defaults(events)
        ev = ev.select(
            pl.col("customer_id").cast(pl.Utf8),
            pl.col("item_id").cast(pl.Utf8),
            pl.col("event_type").cast(pl.Utf8),
            pl.col("ts").cast(pl.Int64),
            pl.col("value").cast(pl.Float64),
        )
        customers = IdVocabulary(
            customer_ids if customer_ids is not None else sorted(ev["customer_id"].unique().to_list())
        )
        if item_ids is None and catalog is not None:
            item_ids = catalog["item_id"].cast(pl.Utf8).to_list()
        items = IdVocabulary(item_ids if item_ids is not None else sorted(ev["item_id"].unique().to_list()))
        cmap = pl.DataFrame({"customer_id": customers.to_list(), "u": np.arange(len(customers), dtype=np.int32)},
                            schema={"customer_id": pl.Utf8, "u": pl.Int32})
        imap = pl.DataFrame({"item_id": items.to_list(), "i": np.arange(len(items), dtype=np.int32)},
                            schema={"item_id": pl.Utf8, "i": pl.Int32})
        ev = ev.join(cmap, on="customer_id", how="inner", maintain_order="left").join(
            imap, on="item_id", how="inner", maintain_order="left"
        )
        now = ev["ts"].max() if ev.height else None
        ev = ev.with_columns(_weight_expr(config, now).cast(pl.Float32).alias("weight"))
        shape = (len(customers), len(items))
        pos = ev.filter(pl.col("weight") > 0)
        matrix = sp.csr_matrix(
            (pos["weight"].to_numpy(), (pos["u"].to_numpy(), pos["i"].to_numpy())),
            shape=shape,
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        buys = ev.filter(pl.col("event_type") == "purchase")
        counts = sp.csr_matrix(
            (np.ones(buys.height, dtype=np.float32), (buys["u"].to_numpy(), buys["i"].to_numpy())),
            shape=shape,
            dtype=np.float32,
        )
        counts.sum_duplicates()
        return cls(
            events=ev,
            customers=customers,
            items=items,
            matrix=matrix,
            counts=counts,
            config=config,
            now=float(now) if now is not None else None,
            catalog=_align_catalog(catalog, items),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def history(self, customer: str) -> npt.NDArray[np.int32]:
        """Item indices the customer interacted with (empty if unknown)."""
        u = self.customers.index(customer)
        if u < 0:
            return np.empty(0, dtype=np.int32)
        return self.matrix.indices[self.matrix.indptr[u] : self.matrix.indptr[u + 1]].astype(np.int32)

    def row(self, customer: str) -> sp.csr_matrix:
        """The customer's weight row, shape (1, items); all zeros if unknown."""
        u = self.customers.index(customer)
        if u < 0:
            return sp.csr_matrix((1, len(self.items)), dtype=np.float32)
        return self.matrix[u]

    def item_popularity(self) -> npt.NDArray[np.float32]:
        """Distinct customers per item, shape (items,)."""
        return np.asarray((self.matrix > 0).sum(axis=0)).ravel().astype(np.float32)

    def fingerprint(self) -> str:
        """A short hash of the matrix: equal data gives an equal fingerprint."""
        import hashlib

        h = hashlib.sha256()
        m = self.matrix
        for part in (m.indptr, m.indices, m.data):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update("\x00".join(self.items.to_list()).encode())
        h.update("\x00".join(self.customers.to_list()).encode())
        return h.hexdigest()[:16]


CATALOG_COLUMNS: dict[str, pl.DataType] = {
    "title": pl.Utf8(),
    "description": pl.Utf8(),
    "category": pl.Utf8(),
    "brand": pl.Utf8(),
    "price": pl.Float64(),
}


def _align_catalog(catalog: pl.DataFrame | None, items: IdVocabulary) -> pl.DataFrame:
    """Catalog rows in vocabulary order, with the standard columns present."""
    base = pl.DataFrame({"item_id": items.to_list()}, schema={"item_id": pl.Utf8})
    if catalog is None:
        return base.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in CATALOG_COLUMNS.items()])
    cat = catalog.with_columns(pl.col("item_id").cast(pl.Utf8)).unique("item_id", keep="first")
    out = base.join(cat, on="item_id", how="left", maintain_order="left")
    return out.with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in CATALOG_COLUMNS.items() if c not in out.columns]
    )


def _weight_expr(config: InteractionConfig, now: int | None) -> pl.Expr:
    weights = dict(config.event_weights)
    base = pl.col("event_type").replace_strict(weights, default=0.0, return_dtype=pl.Float64)
    rating = (pl.col("value") - config.rating_floor).clip(lower_bound=0.0) * config.rating_scale
    w = pl.when(pl.col("event_type") == "rating").then(rating.fill_null(0.0)).otherwise(base)
    if config.half_life_days and now is not None:
        age_days = ((pl.lit(now) - pl.col("ts")).cast(pl.Float64) / DAY).fill_null(0.0)
        w = w * (0.5 ** (age_days / config.half_life_days))
    return w
