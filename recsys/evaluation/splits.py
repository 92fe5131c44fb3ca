"""Train/test splits of an events frame, and the held-out truth to score against.

Events are a polars frame with ``customer_id, item_id, event_type, ts, value``
(``ts`` epoch seconds), the frame :class:`~recsys.interactions.Interactions`
reads. :func:`normalise_events` turns the generic dataset format (a
``timestamp`` column, datetime or epoch seconds) into that frame.

Two ways to split:

- :func:`temporal_split` holds out everything after a cutoff time, chosen so
  that about ``test_fraction`` of the events come after it. Nothing from the
  future leaks into training; this is the split the side-by-side report uses.
- :func:`random_split` holds out a seeded random ``test_fraction`` of each
  customer's events (at least one, never all of them).

:func:`validation_split` carves a validation split out of a split's training
part the same way (for tuning), and :func:`test_truth` turns a split's test
part into the relevant items of each evaluated customer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.errors import EvaluationError
from recsys.interactions import EVENT_COLUMNS, IdVocabulary

SplitKind = Literal["temporal", "random"]

ERR_FRACTION = "test_fraction must be strictly between 0 and 1; got {value}"
ERR_COLUMNS = "events need columns {missing}; got {columns}"
ERR_NO_TIMES = (
    "a temporal split needs a timestamp on every event, but {count} of {total} events have "
    "none; give every event a 'ts' (epoch seconds) or use random_split"
)
ERR_EMPTY = "there are no events to split; load some events first"


@dataclass(frozen=True)
class SplitConfig:
    """How to split events: the kind, the held-out fraction, and the seed (random splits)."""

    kind: SplitKind = "temporal"
    test_fraction: float = 0.2
    seed: int = 42


@dataclass(frozen=True, eq=False)
class Split:
    """Events divided into a training part and a held-out test part.

    ``train`` and ``test`` have the columns of :data:`EVENT_COLUMNS`.
    ``cutoff`` (temporal splits) is the last training time in epoch seconds:
    every training event has ``ts <= cutoff`` and every test event
    ``ts > cutoff``; random splits have ``cutoff=None``.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    cutoff: int | None
    kind: SplitKind
    test_fraction: float = 0.2
    seed: int | None = None

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary (no events)."""
        return {
            "kind": self.kind,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "cutoff": self.cutoff,
            "train_events": self.train.height,
            "test_events": self.test.height,
        }


def normalise_events(events: pl.DataFrame) -> pl.DataFrame:
    """Events with exactly the columns ``customer_id, item_id, event_type, ts, value``.

    ``ts`` is taken from ``ts`` if present, else from ``timestamp`` (a datetime,
    an ISO-8601 string or epoch seconds), as Int64 epoch seconds. A missing
    ``event_type`` means ``purchase``; a missing ``ts`` or ``value`` is null.
    """
    missing = [c for c in ("customer_id", "item_id") if c not in events.columns]
    if missing:
        raise EvaluationError(ERR_COLUMNS.format(missing=missing, columns=events.columns))
    ev = events
    if "event_type" not in ev.columns:
        ev = ev.with_columns(pl.lit("purchase").alias("event_type"))
    if "ts" not in ev.columns:
        if "timestamp" in ev.columns:
            ev = ev.with_columns(_epoch_seconds(ev["timestamp"]).alias("ts"))
        else:
            ev = ev.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts"))
    if "value" not in ev.columns:
        ev = ev.with_columns(pl.lit(None, dtype=pl.Float64).alias("value"))
    return ev.select(
        pl.col("customer_id").cast(pl.Utf8),
        pl.col("item_id").cast(pl.Utf8),
        pl.col("event_type").cast(pl.Utf8),
        pl.col("ts").cast(pl.Int64),
        pl.col("value").cast(pl.Float64),
    )


def temporal_split(events: pl.DataFrame, *, test_fraction: float = 0.2) -> Split:
    """Hold out the events after a cutoff time.

    The cutoff is the ``1 - test_fraction`` quantile of event times (lower
    value), so about ``test_fraction`` of the events are strictly after it;
    events sharing the cutoff time all stay in training, so with many ties
    the test part can be somewhat smaller than asked. Every event needs a
    ``ts``.
    """
    _check_fraction(test_fraction)
    ev = normalise_events(events)
    if ev.height == 0:
        raise EvaluationError(ERR_EMPTY)
    nulls = ev["ts"].null_count()
    if nulls:
        raise EvaluationError(ERR_NO_TIMES.format(count=nulls, total=ev.height))
    ts = np.sort(ev["ts"].to_numpy())
    position = max(math.ceil(len(ts) * (1.0 - test_fraction)) - 1, 0)
    cutoff = int(ts[position])
    after = pl.col("ts") > cutoff
    return Split(
        train=ev.filter(~after),
        test=ev.filter(after),
        cutoff=cutoff,
        kind="temporal",
        test_fraction=test_fraction,
        seed=None,
    )


def random_split(events: pl.DataFrame, *, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """Hold out a seeded random share of each customer's events.

    A customer with ``n >= 2`` events keeps ``round(test_fraction * n)`` of
    them for test, clipped to ``[1, n - 1]`` so every such customer is both
    trained on and evaluated; customers with a single event stay all-train.
    The result depends only on the events and the seed, not on row order.
    """
    _check_fraction(test_fraction)
    ev = normalise_events(events)
    if ev.height == 0:
        raise EvaluationError(ERR_EMPTY)
    # a canonical order makes the seeded draw independent of the input's row order
    ev = ev.sort(list(EVENT_COLUMNS), nulls_last=True, maintain_order=True)
    rng = np.random.default_rng(seed)
    ranked = ev.with_columns(pl.Series("_key", rng.random(ev.height))).with_columns(
        pl.col("_key").rank("ordinal").over("customer_id").alias("_rank"),
        pl.len().over("customer_id").alias("_n"),
    )
    n = pl.col("_n").cast(pl.Float64)
    n_test = (
        pl.when(pl.col("_n") < 2)
        .then(0.0)
        .otherwise((n * test_fraction).round(0).clip(1.0, n - 1.0))
    )
    is_test = pl.col("_rank").cast(pl.Float64) <= n_test
    cols = list(EVENT_COLUMNS)
    return Split(
        train=ranked.filter(~is_test).select(cols),
        test=ranked.filter(is_test).select(cols),
        cutoff=None,
        kind="random",
        test_fraction=test_fraction,
        seed=seed,
    )


def make_split(events: pl.DataFrame, config: SplitConfig = SplitConfig()) -> Split:
    """Split ``events`` as ``config`` says."""
    if config.kind == "temporal":
        return temporal_split(events, test_fraction=config.test_fraction)
    if config.kind == "random":
        return random_split(events, test_fraction=config.test_fraction, seed=config.seed)
    raise EvaluationError(f"unknown split kind '{config.kind}'; choose 'temporal' or 'random'")


def validation_split(
    split: Split, *, test_fraction: float | None = None, seed: int | None = None
) -> Split:
    """Carve a validation split out of ``split.train``, the same kind as ``split``.

    The returned split's ``train`` is the part of ``split.train`` to fit on and
    its ``test`` the validation events; ``split.test`` is never touched.
    ``test_fraction`` and ``seed`` default to the split's own.
    """
    fraction = split.test_fraction if test_fraction is None else test_fraction
    if split.kind == "temporal":
        return temporal_split(split.train, test_fraction=fraction)
    base_seed = seed if seed is not None else (split.seed if split.seed is not None else 42)
    return random_split(split.train, test_fraction=fraction, seed=base_seed)


@dataclass(frozen=True, eq=False)
class Truth:
    """The relevant held-out items of each evaluated customer.

    ``customer_ids`` are the evaluated customers, sorted; ``pairs`` has one row
    per (customer_id, item_id) relevant pair, sorted, and every customer in
    ``customer_ids`` has at least one. Item ids are the dataset's own; an item
    may be absent from the training vocabulary (then no model trained on it
    can find it, and it still counts as relevant).
    """

    customer_ids: tuple[str, ...]
    pairs: pl.DataFrame
    discovery: bool
    event_types: tuple[str, ...]
    min_rating: float | None

    def __len__(self) -> int:
        return len(self.customer_ids)

    def sample(self, n: int, *, seed: int = 42) -> Truth:
        """A seeded random ``n`` of the customers (all of them if there are fewer)."""
        if n >= len(self.customer_ids):
            return self
        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(np.asarray(self.customer_ids, dtype=object), size=n, replace=False).tolist())
        wanted = pl.DataFrame({"customer_id": keep}, schema={"customer_id": pl.Utf8})
        return Truth(
            customer_ids=tuple(keep),
            pairs=self.pairs.join(wanted, on="customer_id", how="semi", maintain_order="left"),
            discovery=self.discovery,
            event_types=self.event_types,
            min_rating=self.min_rating,
        )

    def item_sets(self) -> list[frozenset[str]]:
        """Relevant item ids per customer, aligned with ``customer_ids``."""
        grouped = dict(
            self.pairs.group_by("customer_id").agg(pl.col("item_id")).iter_rows()
        )
        return [frozenset(grouped.get(c, ())) for c in self.customer_ids]

    def relevance(self, items: IdVocabulary) -> sp.csr_matrix:
        """Binary relevance, shape (customers, len(items) + unknown), rows as ``customer_ids``.

        Columns ``0..len(items)-1`` are the vocabulary's items; each relevant
        item the vocabulary lacks gets a column of its own after those, so it
        counts in recall denominators but can never be recommended.
        """
        item_ids = self.pairs["item_id"].to_list()
        cols = items.indices(item_ids)
        unknown = cols < 0
        n_unknown = 0
        if unknown.any():
            # each relevant item the vocabulary lacks gets one column after the known ones
            names, code = np.unique(np.asarray(item_ids, dtype=object)[unknown], return_inverse=True)
            cols[unknown] = len(items) + code
            n_unknown = len(names)
        customers = pl.DataFrame(
            {"customer_id": list(self.customer_ids), "_row": np.arange(len(self.customer_ids))},
            schema={"customer_id": pl.Utf8, "_row": pl.Int64},
        )
        rows = self.pairs.select("customer_id").join(
            customers, on="customer_id", how="left", maintain_order="left"
        )["_row"].to_numpy()
        m = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.customer_ids), len(items) + n_unknown),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        m.sort_indices()
        return m


def test_truth(
    split: Split,
    *,
    discovery: bool = True,
    event_types: Sequence[str] = ("purchase", "rating"),
    min_rating: float | None = 4.0,
) -> Truth:
    """The relevant test items of each customer that can be evaluated.

    A customer is evaluated only with at least one training event (any type)
    and at least one relevant test item: cold customers are a different
    question (see the cold-start fallback), not part of this comparison.
    A test event is relevant when its ``event_type`` is in ``event_types``;
    a ``rating`` event must also have ``value >= min_rating`` (None: every
    rating counts), so on MovieLens "relevant" means rated 4 or 5.
    With ``discovery`` the items a customer had any training event with are
    removed (the question is "what new item will they take?"), and customers
    left with nothing relevant are dropped.
    """
    test = split.test.filter(pl.col("event_type").is_in(list(event_types)))
    if min_rating is not None:
        test = test.filter((pl.col("event_type") != "rating") | (pl.col("value") >= min_rating))
    pairs = test.select("customer_id", "item_id").unique()
    train_pairs = split.train.select("customer_id", "item_id").unique()
    pairs = pairs.join(train_pairs.select("customer_id").unique(), on="customer_id", how="semi")
    if discovery:
        pairs = pairs.join(train_pairs, on=["customer_id", "item_id"], how="anti")
    pairs = pairs.sort("customer_id", "item_id")
    customers = tuple(pairs["customer_id"].unique().sort().to_list())
    return Truth(
        customer_ids=customers,
        pairs=pairs,
        discovery=discovery,
        event_types=tuple(event_types),
        min_rating=min_rating,
    )


# pytest would otherwise collect ``test_truth`` from modules that import it
test_truth.__test__ = False  # type: ignore[attr-defined]


def train_history(split: Split, items: IdVocabulary, customer_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Item indices (int32, of ``items``) each customer had any training event with.

    The same definition :func:`test_truth` uses for discovery, so excluding
    these at recommendation time and removing them from the truth agree.
    Items outside ``items`` are left out.
    """
    wanted = pl.DataFrame({"customer_id": list(customer_ids)}, schema={"customer_id": pl.Utf8})
    pairs = (
        split.train.select("customer_id", "item_id")
        .unique()
        .join(wanted, on="customer_id", how="semi")
        .group_by("customer_id")
        .agg(pl.col("item_id"))
    )
    out: dict[str, np.ndarray] = {c: np.empty(0, dtype=np.int32) for c in customer_ids}
    for customer, item_list in pairs.iter_rows():
        idx = items.indices(item_list)
        out[customer] = np.sort(idx[idx >= 0]).astype(np.int32)
    return out


def _check_fraction(value: float) -> None:
    if not 0.0 < value < 1.0:
        raise EvaluationError(ERR_FRACTION.format(value=value))


def _epoch_seconds(column: pl.Series) -> pl.Series:
    dtype = column.dtype
    if dtype == pl.Utf8:
        column = column.str.to_datetime(time_zone="UTC")
        dtype = column.dtype
    if isinstance(dtype, pl.Datetime):
        return column.dt.epoch("s").cast(pl.Int64)
    if isinstance(dtype, pl.Date):
        return column.cast(pl.Datetime("us")).dt.epoch("s").cast(pl.Int64)
    return column.cast(pl.Int64)


__all__ = [
    "Split",
    "SplitConfig",
    "SplitKind",
    "Truth",
    "make_split",
    "normalise_events",
    "random_split",
    "temporal_split",
    "test_truth",
    "train_history",
    "validation_split",
]
