"""Validation of the generic dataset format (items, customers, events).

Each ``validate_*`` function takes a :class:`Table` (a polars frame plus where it
came from), checks it completely and returns the normalised, typed frame and
every :class:`~recsys.errors.Problem` found. Nothing here touches the store:
references to ids already in the store are passed in as sets.

Normalised frames:

- items: ``item_id, title, description, category, brand`` (Utf8), ``price``
  (Float64, null if unknown), ``active`` (Boolean), ``attributes`` (Utf8 JSON of
  the remaining columns, as strings).
- customers: ``customer_id`` (Utf8, still the raw id: the importer
  pseudonymises), ``attributes`` (Utf8 JSON).
- events: ``event_id`` (Utf8 or null), ``customer_id``, ``item_id``,
  ``event_type`` (one of :data:`~recsys.data.schema.EVENT_TYPES`), ``ts``
  (Int64 epoch seconds UTC, or null), ``value`` (Float64 or null).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.data.schema import EVENT_TYPES
from recsys.errors import InputFileError, Problem

ROW = "__row"
MAX_PROBLEMS_PER_CHECK = 20
# epoch seconds above this are almost certainly milliseconds (year 5138)
MAX_EPOCH_SECONDS = 100_000_000_000

ITEM_CORE = ("item_id", "title", "description", "category", "brand", "price", "active")
EVENT_CORE = ("event_id", "customer_id", "item_id", "event_type", "timestamp", "value")
TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%z",
)
NAIVE_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


@dataclass(frozen=True)
class Table:
    """A frame to validate and the name to use for it in messages.

    ``line_offset`` is set for text files: data row r sits on line r + offset.
    """

    frame: pl.DataFrame
    label: str
    line_offset: int | None = None


def read_table(path: Path, *, kind: str) -> Table:
    """Read a CSV or Parquet file as a :class:`Table` (CSV columns stay text)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{kind} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            frame = pl.read_csv(
                path,
                infer_schema=False,
                separator="\t" if suffix == ".tsv" else ",",
            )
            return Table(frame, path.name, line_offset=1)
        if suffix in (".parquet", ".pq"):
            return Table(pl.read_parquet(path), path.name)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"cannot read {kind} file {path}: {exc}") from exc
    raise InputFileError(
        f"{kind} file {path} has an unknown format '{suffix}': use .csv or .parquet"
    )


class _Collector:
    """Gathers problems for one table, capped per check, with a running total."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.problems: list[Problem] = []
        self.total = 0

    def whole(self, column: str | None, message: str) -> None:
        self.total += 1
        self.problems.append(Problem(self.table.label, None, column, message))

    def rows(self, bad: pl.DataFrame, column: str, message: pl.Expr | str) -> None:
        """``bad`` holds the offending rows (with ``__row``); message may be an expression."""
        if bad.height == 0:
            return
        self.total += bad.height
        msg_expr = pl.lit(message) if isinstance(message, str) else message
        shown = bad.head(MAX_PROBLEMS_PER_CHECK).select(ROW, msg_expr.alias("__msg"))
        offset = self.table.line_offset
        for row, msg in shown.iter_rows():
            line = row + offset if offset is not None else None
            self.problems.append(Problem(self.table.label, int(row), column, msg, line))
        if bad.height > MAX_PROBLEMS_PER_CHECK:
            self.problems.append(
                Problem(
                    self.table.label,
                    None,
                    column,
                    f"{bad.height - MAX_PROBLEMS_PER_CHECK} more rows with the same problem",
                )
            )


def _text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A column as stripped text, empty strings as null."""
    dtype = frame.schema[column]
    expr = pl.col(column)
    if dtype != pl.Utf8:
        expr = expr.cast(pl.Utf8)
    expr = expr.str.strip_chars()
    return pl.when(expr == "").then(None).otherwise(expr)


def _with_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(ROW, offset=1)


def _require(frame: pl.DataFrame, columns: Iterable[str], out: _Collector) -> bool:
    missing = [c for c in columns if c not in frame.columns]
    for c in missing:
        have = ", ".join(frame.columns) or "none"
        out.whole(c, f"required column '{c}' is missing (columns found: {have})")
    return not missing


def _check_ids(df: pl.DataFrame, column: str, out: _Collector, *, unique: bool) -> None:
    out.rows(df.filter(pl.col(column).is_null()), column, f"'{column}' is empty: every row needs one")
    if unique:
        first = (
            df.filter(pl.col(column).is_not_null())
            .group_by(column)
            .agg(pl.col(ROW).min().alias("__first"))
        )
        dup = (
            df.join(first, on=column)
            .filter(pl.col(ROW) != pl.col("__first"))
            .sort(ROW)
        )
        out.rows(
            dup,
            column,
            pl.format(
                "duplicate {} '{}' (first seen in row {}): ids must be unique",
                pl.lit(column),
                pl.col(column),
                pl.col("__first"),
            ),
        )


def _number(df: pl.DataFrame, column: str, out: _Collector, *, what: str) -> pl.Series:
    """Parse a numeric column; report text that is not a number, NaN and negatives."""
    dtype = df.schema[column]
    if dtype.is_numeric():
        raw_text = pl.col(column).cast(pl.Utf8)
        parsed = df.select(pl.col(column).cast(pl.Float64)).to_series()
    else:
        raw_text = pl.col(column).str.strip_chars()
        parsed = df.select(
            pl.when(raw_text == "").then(None).otherwise(raw_text).cast(pl.Float64, strict=False)
        ).to_series()
    checked = df.select(ROW, raw_text.alias("__raw")).with_columns(parsed.alias("__num"))
    not_number = checked.filter(
        pl.col("__raw").is_not_null() & (pl.col("__raw") != "") & pl.col("__num").is_null()
    )
    out.rows(
        not_number,
        column,
        pl.format("'{}' is not a number: give the {} as a plain number such as 2.49", pl.col("__raw"), pl.lit(what)),
    )
    out.rows(checked.filter(pl.col("__num").is_nan()), column, f"{what} is NaN: give a real number or leave it empty")
    out.rows(
        checked.filter(pl.col("__num") < 0),
        column,
        pl.format("{} {} is negative: it must be 0 or more", pl.lit(what), pl.col("__raw")),
    )
    return parsed.fill_nan(None)


def _attributes_json(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    if not columns:
        return pl.Series("attributes", ["{}"] * df.height, dtype=pl.Utf8)
    texts = df.select([_text(df, c).alias(c) for c in columns]).to_dicts()
    return pl.Series(
        "attributes",
        [json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True) for row in texts],
        dtype=pl.Utf8,
    )


def validate_items(table: Table) -> tuple[pl.DataFrame, list[Problem], int]:
    """Check an items table; returns (normalised frame, problems, total problem count)."""
    out = _Collector(table)
    frame = table.frame
    if not _require(frame, ["item_id"], out):
        return pl.DataFrame(), out.problems, out.total
    df = _with_rows(frame)
    df = df.with_columns(_text(df, "item_id").alias("item_id"))
    _check_ids(df, "item_id", out, unique=True)
    texts = {c: (df.select(_text(df, c)).to_series() if c in df.columns else None) for c in ("title", "description", "category", "brand")}
    price = _number(df, "price", out, what="price") if "price" in df.columns else None
    active = pl.Series("active", [True] * df.height, dtype=pl.Boolean)
    if "active" in df.columns:
        raw = df.select(_text(df, "active").str.to_lowercase().alias("a"), ROW)
        truthy, falsy = ("1", "true", "yes", "y", "t"), ("0", "false", "no", "n", "f")
        bad = raw.filter(pl.col("a").is_not_null() & ~pl.col("a").is_in(truthy + falsy))
        out.rows(bad, "active", pl.format("'{}' is not a yes/no value: use true or false", pl.col("a")))
        active = raw.select(pl.col("a").is_in(truthy) | pl.col("a").is_null()).to_series()
    extra = [c for c in frame.columns if c not in ITEM_CORE]
    result = pl.DataFrame(
        {
            "item_id": df["item_id"],
            **{c: (s if s is not None else pl.Series(c, [None] * df.height, dtype=pl.Utf8)) for c, s in texts.items()},
            "price": price if price is not None else pl.Series("price", [None] * df.height, dtype=pl.Float64),
            "active": active,
            "attributes": _attributes_json(df, extra),
        },
        schema={
            "item_id": pl.Utf8, "title": pl.Utf8, "description": pl.Utf8, "category": pl.Utf8,
            "brand": pl.Utf8, "price": pl.Float64, "active": pl.Boolean, "attributes": pl.Utf8,
        },
    )
    return result, out.problems, out.total


def validate_customers(
    table: Table, *, sensitive: Iterable[str] = (), known_attributes: Iterable[str] = ()
) -> tuple[pl.DataFrame, list[Problem], int]:
    """Check a customers table; ``sensitive`` names must be columns of it (or known already)."""
    out = _Collector(table)
    frame = table.frame
    if not _require(frame, ["customer_id"], out):
        return pl.DataFrame(), out.problems, out.total
    df = _with_rows(frame)
    df = df.with_columns(_text(df, "customer_id").alias("customer_id"))
    _check_ids(df, "customer_id", out, unique=True)
    attrs = [c for c in frame.columns if c != "customer_id"]
    known = set(attrs) | set(known_attributes)
    for name in sensitive:
        if name not in known:
            out.whole(
                name,
                f"--sensitive names '{name}', which is not a column of this file "
                f"(attribute columns: {', '.join(attrs) or 'none'})",
            )
    result = pl.DataFrame(
        {"customer_id": df["customer_id"], "attributes": _attributes_json(df, attrs)},
        schema={"customer_id": pl.Utf8, "attributes": pl.Utf8},
    )
    return result, out.problems, out.total


def _timestamps(df: pl.DataFrame, out: _Collector) -> pl.Series:
    """Epoch seconds (UTC) from datetimes, epoch numbers or ISO-8601 text."""
    dtype = df.schema["timestamp"]
    if isinstance(dtype, pl.Datetime):
        col = pl.col("timestamp")
        if dtype.time_zone is None:
            col = col.dt.replace_time_zone("UTC")
        return df.select(col.dt.epoch("s").alias("ts")).to_series()
    if dtype == pl.Date:
        return df.select(pl.col("timestamp").cast(pl.Datetime("us", "UTC")).dt.epoch("s").alias("ts")).to_series()
    if dtype.is_numeric():
        text = pl.col("timestamp").cast(pl.Utf8)
    else:
        text = pl.col("timestamp").str.strip_chars()
    text = pl.when(text == "").then(None).otherwise(text)
    parsed = df.select(ROW, text.alias("raw")).with_columns(
        pl.when(pl.col("raw").str.contains(r"^\d+(\.\d+)?$"))
        .then(pl.col("raw").cast(pl.Float64, strict=False).floor().cast(pl.Int64))
        .otherwise(None)
        .alias("epoch"),
        pl.coalesce(
            *[
                pl.col("raw").str.replace(r"Z$", "+00:00").str.to_datetime(fmt, strict=False, time_zone="UTC")
                for fmt in TIMESTAMP_FORMATS
            ],
            *[
                pl.col("raw").str.to_datetime(fmt, strict=False).dt.replace_time_zone("UTC")
                for fmt in NAIVE_TIMESTAMP_FORMATS
            ],
            pl.col("raw").str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        )
        .dt.epoch("s")
        .alias("iso"),
    )
    parsed = parsed.with_columns(pl.coalesce("epoch", "iso").alias("ts"))
    out.rows(
        parsed.filter(pl.col("raw").is_not_null() & pl.col("ts").is_null()),
        "timestamp",
        pl.format(
            "cannot read '{}' as a time: use ISO-8601 such as 2024-03-01T14:30:00Z, or epoch seconds",
            pl.col("raw"),
        ),
    )
    out.rows(
        parsed.filter(pl.col("epoch") > MAX_EPOCH_SECONDS),
        "timestamp",
        pl.format("{} looks like epoch milliseconds: give epoch seconds", pl.col("raw")),
    )
    return parsed["ts"]


def validate_events(
    table: Table,
    *,
    item_ids: Iterable[str],
    customer_keys: Iterable[str],
    to_key: Callable[[pl.Series], pl.Series] | None = None,
    customer_label: str = "customers",
) -> tuple[pl.DataFrame, list[Problem], int]:
    """Check an events table against the items and customers known (file or store).

    ``to_key`` maps raw customer ids to the keys in ``customer_keys`` (the
    pseudonymiser; identity when ``None``). The normalised frame carries both
    ``customer_id`` (raw) and ``customer_key``. Unknown customers are reported
    by row only: raw customer ids never appear in messages.
    """
    out = _Collector(table)
    frame = table.frame
    if not _require(frame, ["customer_id", "item_id"], out):
        return pl.DataFrame(), out.problems, out.total
    df = _with_rows(frame)
    df = df.with_columns(
        _text(df, "customer_id").alias("customer_id"), _text(df, "item_id").alias("item_id")
    )
    _check_ids(df, "customer_id", out, unique=False)
    _check_ids(df, "item_id", out, unique=False)
    if "event_id" in df.columns:
        df = df.with_columns(_text(df, "event_id").alias("event_id"))
        first = (
            df.filter(pl.col("event_id").is_not_null())
            .group_by("event_id")
            .agg(pl.col(ROW).min().alias("__first"))
        )
        dup = df.join(first, on="event_id").filter(pl.col(ROW) != pl.col("__first")).sort(ROW)
        out.rows(
            dup,
            "event_id",
            pl.format("duplicate event_id '{}' (first seen in row {})", pl.col("event_id"), pl.col("__first")),
        )
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("event_id"))
    if "event_type" in df.columns:
        etype = _text(df, "event_type").str.to_lowercase().fill_null("purchase")
        df = df.with_columns(etype.alias("event_type"))
        out.rows(
            df.filter(~pl.col("event_type").is_in(EVENT_TYPES)),
            "event_type",
            pl.format(
                "unknown event type '{}': use one of {}", pl.col("event_type"), pl.lit(", ".join(EVENT_TYPES))
            ),
        )
    else:
        df = df.with_columns(pl.lit("purchase").alias("event_type"))
    ts = _timestamps(df, out) if "timestamp" in df.columns else pl.Series("ts", [None] * df.height, dtype=pl.Int64)
    value = (
        _number(df, "value", out, what="value")
        if "value" in df.columns
        else pl.Series("value", [None] * df.height, dtype=pl.Float64)
    )
    df = df.with_columns(ts.alias("ts"), value.alias("value"))
    out.rows(
        df.filter((pl.col("event_type") == "rating") & pl.col("value").is_null()),
        "value",
        "a rating event needs a value (the rating)",
    )
    items_known = pl.Series("item_id", list(item_ids), dtype=pl.Utf8)
    unknown_items = df.filter(pl.col("item_id").is_not_null() & ~pl.col("item_id").is_in(items_known.implode()))
    out.rows(
        unknown_items,
        "item_id",
        pl.format("unknown item '{}': add it to the items file first", pl.col("item_id")),
    )
    keys = to_key(df["customer_id"]) if to_key is not None else df["customer_id"]
    df = df.with_columns(keys.alias("customer_key"))
    cust_known = pl.Series("customer_key", list(customer_keys), dtype=pl.Utf8)
    unknown_customers = df.filter(
        pl.col("customer_key").is_not_null() & ~pl.col("customer_key").is_in(cust_known.implode())
    )
    out.rows(
        unknown_customers,
        "customer_id",
        f"unknown customer: add this customer to the {customer_label} file first",
    )
    result = df.select(
        pl.col("event_id").cast(pl.Utf8),
        "customer_id",
        pl.col("customer_key").cast(pl.Utf8),
        "item_id",
        pl.col("event_type").cast(pl.Utf8),
        pl.col("ts").cast(pl.Int64),
        pl.col("value").cast(pl.Float64),
    )
    return result, out.problems, out.total
