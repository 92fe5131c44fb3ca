"""Customer groups of an audit: sensitive attributes, derived activity and tenure, intersections.

A :class:`GroupTable` holds one row per cohort customer and one text column
per group attribute; every value is a group label, never null: a missing
attribute is the explicit group :data:`UNKNOWN`. Derived attributes:

- ``activity``: ``top_5pct`` (the 5% of the cohort with the most training
  events, the "active" users of Li et al., WWW 2021) vs ``rest``;
- ``activity_quintile``: ``q1`` (least active) .. ``q5`` (most active), by
  training events, ties broken by customer id so the bands are reproducible;
- ``tenure``: ``q1`` (newest) .. ``q4`` (longest), days between the first
  training event and the cutoff (only when every event has a timestamp).

Cohort customers without training events (new customers) count 0 events and
a tenure of 0 days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fairness.errors import UNKNOWN_ATTRIBUTE, AuditInputError
from recsys.interactions import DAY

UNKNOWN = "unknown"
INTERSECTION_SEPARATOR = " & "


@dataclass(frozen=True)
class GroupConfig:
    """Which groups to build. ``intersections``: tuples of attribute names to cross."""

    sensitive: tuple[str, ...] = ()
    intersections: tuple[tuple[str, ...], ...] = ()
    active_share: float = 0.05
    activity_bins: int = 5
    tenure_bins: int = 4
    derived: bool = True


@dataclass(frozen=True, eq=False)
class GroupTable:
    """``frame``: ``customer_id`` + one Utf8 column per attribute in ``attributes``.

    ``definitions`` says in words how each attribute was formed (for the report).
    """

    frame: pl.DataFrame
    attributes: tuple[str, ...]
    definitions: dict[str, str] = field(default_factory=dict)

    def labels(self, attribute: str) -> np.ndarray:
        return self.frame[attribute].to_numpy().astype(object)


def _labels(values: pl.Series) -> pl.Series:
    text = values.cast(pl.Utf8).str.strip_chars()
    return pl.when(text.is_null() | (text == "")).then(pl.lit(UNKNOWN)).otherwise(text).alias(values.name)


def _rank_bins(values: np.ndarray, keys: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bins 1..bins by value (ascending), ties broken by ``keys``."""
    order = np.lexsort((keys, values))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return (rank * bins // max(len(values), 1)) + 1


def build_groups(
    customers: pl.DataFrame,
    cohort: Sequence[str],
    train_events: pl.DataFrame,
    *,
    config: GroupConfig,
    cutoff: float | None,
) -> GroupTable:
    """Groups of each ``cohort`` customer (in cohort order).

    ``customers`` has ``customer_id`` and the attribute columns (customers
    missing from it get ``unknown`` everywhere). ``train_events`` are the
    events the audit model was trained on (``customer_id``, ``ts``).
    Raises :class:`AuditInputError` naming a sensitive or intersected
    attribute that is not a column of ``customers``.
    """
    wanted = [*config.sensitive, *(a for combo in config.intersections for a in combo)]
    known = [c for c in customers.columns if c not in ("customer_id", "customer_key", "consent_personalisation")]
    for name in wanted:
        if name not in customers.columns and name not in ("activity", "activity_quintile", "tenure"):
            raise AuditInputError(UNKNOWN_ATTRIBUTE.format(name=name, known=", ".join(known) or "none"))
    base = pl.DataFrame({"customer_id": list(cohort)}, schema={"customer_id": pl.Utf8})
    attrs = [a for a in config.sensitive if a in customers.columns]
    cust = customers.select(pl.col("customer_id").cast(pl.Utf8), *[pl.col(a) for a in attrs])
    cust = cust.unique("customer_id", keep="first")
    frame = base.join(cust, on="customer_id", how="left", maintain_order="left")
    frame = frame.with_columns(*[_labels(frame[a]) for a in attrs])
    definitions = {a: "sensitive customer attribute (missing values: 'unknown')" for a in attrs}

    if config.derived and len(cohort):
        per = train_events.group_by("customer_id").agg(
            pl.len().alias("_events"), pl.col("ts").min().alias("_first")
        )
        joined = base.join(per, on="customer_id", how="left", maintain_order="left")
        events = joined["_events"].fill_null(0).to_numpy().astype(np.int64)
        ids = np.asarray(joined["customer_id"].to_list(), dtype=object)
        n = len(events)
        n_top = max(1, math.ceil(config.active_share * n))
        rank_desc = np.empty(n, dtype=np.int64)
        rank_desc[np.lexsort((ids, -events))] = np.arange(n)
        pct = f"{config.active_share * 100:g}pct"
        frame = frame.with_columns(
            pl.Series("activity", np.where(rank_desc < n_top, f"top_{pct}", "rest")),
            pl.Series("activity_quintile", [f"q{b}" for b in _rank_bins(events, ids, config.activity_bins)]),
        )
        attrs += ["activity", "activity_quintile"]
        definitions["activity"] = (
            f"top_{pct}: the {n_top} cohort customers ({config.active_share:.0%}) with the most training "
            "events; rest: everyone else"
        )
        definitions["activity_quintile"] = (
            f"{config.activity_bins} equal-count bands by training events, q1 least active"
        )
        first = joined["_first"].to_numpy()
        if cutoff is not None and train_events["ts"].null_count() == 0:
            first_f = np.where(np.isnan(first.astype(float)), float(cutoff), first.astype(float))
            tenure = np.maximum(float(cutoff) - first_f, 0.0) / DAY
            bins = _rank_bins(tenure, ids, config.tenure_bins)
            frame = frame.with_columns(pl.Series("tenure", [f"q{b}" for b in bins]))
            attrs.append("tenure")
            edges = [float(np.max(tenure[bins == b])) for b in range(1, config.tenure_bins + 1) if (bins == b).any()]
            definitions["tenure"] = (
                f"{config.tenure_bins} equal-count bands by days from the first event to the cutoff, "
                "q1 newest; upper edges (days): " + ", ".join(f"{e:.0f}" for e in edges)
            )

    for combo in config.intersections:
        missing = [a for a in combo if a not in frame.columns]
        if missing:
            raise AuditInputError(UNKNOWN_ATTRIBUTE.format(name=missing[0], known=", ".join(frame.columns[1:])))
        name = INTERSECTION_SEPARATOR.join(combo)
        any_unknown = pl.any_horizontal(*[pl.col(a) == UNKNOWN for a in combo])
        joined_label = pl.concat_str([pl.col(a) for a in combo], separator=INTERSECTION_SEPARATOR)
        frame = frame.with_columns(
            pl.when(any_unknown).then(pl.lit(UNKNOWN)).otherwise(joined_label).alias(name)
        )
        attrs.append(name)
        definitions[name] = "intersection of " + ", ".join(combo) + " ('unknown' if any part is unknown)"
    return GroupTable(frame=frame, attributes=tuple(attrs), definitions=definitions)
