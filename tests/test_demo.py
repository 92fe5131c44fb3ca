"""The demo world: deterministic, well-formed, and believable enough to learn from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from recsys.data.demo import (
    AGE_BANDS,
    GENDERS,
    PRIVATE_LABEL,
    REGIONS,
    DemoConfig,
    DemoData,
    generate_demo,
    write_demo,
)

SMALL = DemoConfig(customers=200, items=80, categories=6, days=60, seed=7)
DEFAULT = DemoConfig()

ITEM_SCHEMA = {
    "item_id": pl.String,
    "title": pl.String,
    "description": pl.String,
    "category": pl.String,
    "brand": pl.String,
    "price": pl.Float64,
    "price_tier": pl.String,
    "private_label": pl.Boolean,
    "launch_day": pl.Int64,
}
CUSTOMER_SCHEMA = {
    "customer_id": pl.String,
    "age_band": pl.String,
    "region": pl.String,
    "gender": pl.String,
    "segment": pl.String,
}
EVENT_SCHEMA = {
    "event_id": pl.String,
    "customer_id": pl.String,
    "item_id": pl.String,
    "event_type": pl.String,
    "timestamp": pl.String,
    "value": pl.Float64,
}


@pytest.fixture(scope="module")
def small() -> DemoData:
    return generate_demo(SMALL)


@pytest.fixture(scope="module")
def default() -> DemoData:
    return generate_demo(DEFAULT)


def purchases(data: DemoData) -> pl.DataFrame:
    return data.events.filter(pl.col("event_type") == "purchase")


def event_days(data: DemoData, config: DemoConfig) -> pl.DataFrame:
    """Events with ``at`` (datetime, UTC) and ``day`` (whole days since ``start``)."""
    start = datetime.fromisoformat(config.start).replace(tzinfo=UTC)
    return data.events.with_columns(
        at=pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
    ).with_columns(day=(pl.col("at") - pl.lit(start)).dt.total_days())


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames(small: DemoData) -> None:
    again = generate_demo(SMALL)
    assert again.items.equals(small.items)
    assert again.customers.equals(small.customers)
    assert again.events.equals(small.events)


def test_different_seed_gives_a_different_world(small: DemoData) -> None:
    other = generate_demo(DemoConfig(customers=200, items=80, categories=6, days=60, seed=8))
    assert not other.events.equals(small.events)
    assert not other.items.equals(small.items)


# --------------------------------------------------------------------------- shape


def test_columns_dtypes_and_counts(small: DemoData) -> None:
    assert dict(small.items.schema) == ITEM_SCHEMA
    assert dict(small.customers.schema) == CUSTOMER_SCHEMA
    assert dict(small.events.schema) == EVENT_SCHEMA
    assert small.sensitive == ("age_band", "region", "gender")
    assert small.items.height == SMALL.items
    assert small.customers.height == SMALL.customers
    assert small.items["category"].n_unique() == SMALL.categories
    assert small.items["item_id"].is_unique().all()
    assert small.customers["customer_id"].is_unique().all()
    assert small.customers["customer_id"][0] == "C00001"
    assert small.customers["customer_id"].str.contains(r"^C\d{5}$").all()


def test_events_are_well_formed(small: DemoData) -> None:
    events = small.events
    assert events["event_id"].is_unique().all()
    assert events["event_id"].str.contains(r"^E\d{8}$").all()
    assert set(events["event_type"].unique()) == {"view", "cart", "purchase"}
    assert events.null_count().sum_horizontal().item() == 0
    bought = purchases(small)["value"]
    assert (bought >= 1).all() and (bought == bought.round()).all()
    assert (events.filter(pl.col("event_type") != "purchase")["value"] == 1.0).all()
    assert events["timestamp"].is_sorted()


def test_every_event_refers_to_a_known_item_and_customer(small: DemoData) -> None:
    events = small.events
    assert events.join(small.items, on="item_id", how="anti").height == 0
    assert events.join(small.customers, on="customer_id", how="anti").height == 0


def test_every_customer_has_at_least_three_events(small: DemoData) -> None:
    per_customer = small.events.group_by("customer_id").len()
    assert per_customer.height == SMALL.customers
    assert per_customer["len"].min() >= 3


def test_timestamps_are_iso_utc_within_the_window(small: DemoData) -> None:
    timed = event_days(small, SMALL)
    assert timed["at"].null_count() == 0
    start = datetime.fromisoformat(SMALL.start).replace(tzinfo=UTC)
    assert timed["at"].min() >= start
    assert timed["at"].max() < start + timedelta(days=SMALL.days)
    assert timed["timestamp"].str.ends_with("Z").all()


def test_no_event_before_its_item_launches(small: DemoData, default: DemoData) -> None:
    for data, config in ((small, SMALL), (default, DEFAULT)):
        timed = event_days(data, config).join(
            data.items.select("item_id", "launch_day"), on="item_id")
        assert timed.filter(pl.col("day") < pl.col("launch_day")).height == 0


def test_catalog_has_brands_tiers_and_a_private_label(default: DemoData) -> None:
    items = default.items
    assert items.height == 500 and items["category"].n_unique() == 12
    brands = items.group_by("category").agg(pl.col("brand").n_unique())["brand"]
    assert brands.min() >= 3 and brands.max() <= 6
    assert set(items["price_tier"].unique()) == {"value", "standard", "premium"}
    assert items.filter(pl.col("private_label"))["brand"].unique().to_list() == [PRIVATE_LABEL]
    assert (items["price"] > 0).all()
    # Premium is dearer than value within a category on average.
    tier_price = items.group_by("price_tier").agg(pl.col("price").median())
    median = dict(zip(tier_price["price_tier"], tier_price["price"], strict=True))
    assert median["premium"] > median["value"]
    assert items["title"].is_unique().all()
    assert all(b in d for b, d in zip(items["brand"], items["description"], strict=True))


def test_some_items_launch_late_and_a_few_arrive_cold(default: DemoData) -> None:
    items = default.items
    late = items.filter(pl.col("launch_day") > 0).height / items.height
    cold = items.filter(pl.col("launch_day") >= DEFAULT.days - 14)
    assert 0.1 < late < 0.3
    assert 0.02 <= cold.height / items.height <= 0.04
    counts = purchases(default).group_by("item_id").len()
    cold_counts = cold.join(counts, on="item_id", how="left").fill_null(0)["len"]
    established = items.filter(pl.col("launch_day") == 0).join(counts, on="item_id")["len"]
    assert cold_counts.max() < established.median()


# --------------------------------------------------------------------------- behaviour


def test_scale_and_event_mix_at_default_size(default: DemoData) -> None:
    counts = dict(default.events.group_by("event_type").len().iter_rows())
    assert 150_000 <= default.events.height <= 400_000
    assert 2.0 <= counts["view"] / counts["purchase"] <= 3.0
    assert 1.1 <= counts["cart"] / counts["purchase"] <= 1.5


def test_views_and_carts_exist_without_a_purchase(small: DemoData) -> None:
    bought = purchases(small).select("customer_id", "item_id").unique()
    browsed = small.events.filter(pl.col("event_type") != "purchase")
    assert browsed.join(bought, on=["customer_id", "item_id"], how="anti").height > 0


def test_staples_are_bought_again_and_again(small: DemoData) -> None:
    repeats = purchases(small).group_by("customer_id", "item_id").len()
    assert repeats["len"].max() >= 4
    assert repeats.filter(pl.col("len") >= 4).height >= 20


def test_activity_is_long_tailed(default: DemoData) -> None:
    per_customer = default.events.group_by("customer_id").len()["len"]
    assert per_customer.max() > 5 * per_customer.median()
    assert per_customer.quantile(0.9) > 2 * per_customer.quantile(0.25)


def test_segments_differ_in_what_they_buy(default: DemoData) -> None:
    shares = (
        purchases(default)
        .join(default.customers.select("customer_id", "segment"), on="customer_id")
        .join(default.items.select("item_id", "category"), on="item_id")
        .group_by("segment", "category")
        .len()
        .with_columns(share=pl.col("len") / pl.col("len").sum().over("segment"))
    )
    assert shares["segment"].n_unique() == 8
    spread = shares.group_by("category").agg(
        (pl.col("share").max() - pl.col("share").min()).alias("gap"))
    # Several categories separate the segments clearly, not just one.
    assert spread.filter(pl.col("gap") > 0.1).height >= 3


def test_complementary_items_are_bought_together(default: DemoData) -> None:
    baskets = purchases(default).join(default.items.select("item_id", "title"), on="item_id")
    baskets = baskets.select(pl.concat_str("customer_id", "timestamp").alias("basket"), "title")
    total = baskets["basket"].n_unique()

    def holding(pattern: str) -> set[str]:
        return set(baskets.filter(pl.col("title").str.contains(pattern))["basket"])

    pasta, sauce = holding(r"Pasta \d"), holding("Pasta Sauce")
    lift = (len(pasta & sauce) / len(pasta)) / (len(sauce) / total)
    assert lift > 2.0


def test_beverages_rise_into_summer(default: DemoData) -> None:
    bought = purchases(default).join(
        default.items.select("item_id", "category"), on="item_id"
    ).with_columns(month=pl.col("timestamp").str.slice(0, 7))
    share = bought.group_by("month").agg(
        (pl.col("category") == "Beverages").mean().alias("share"))
    by_month = dict(share.iter_rows())
    assert by_month["2026-07"] > 1.1 * by_month["2026-05"]
    assert by_month["2026-07"] > 1.1 * by_month["2026-10"]


def test_sensitive_groups_are_large_enough_and_sometimes_missing(default: DemoData) -> None:
    customers = default.customers
    for column, values in (("age_band", AGE_BANDS), ("region", REGIONS), ("gender", GENDERS)):
        sizes = dict(customers.group_by(column).len().drop_nulls().iter_rows())
        assert set(sizes) == set(values)
        assert min(sizes.values()) >= 30, (column, sizes)
        assert 0.04 <= customers[column].null_count() / customers.height <= 0.06
    assert customers["segment"].null_count() == 0
    nonbinary = customers.filter(pl.col("gender") == "nonbinary").height / customers.height
    assert 0.015 < nonbinary < 0.05


def test_every_age_band_is_served_by_structured_taste(default: DemoData) -> None:
    # Each age band repeats purchases about as often as the others: no group is noise.
    bought = purchases(default).join(
        default.customers.select("customer_id", "age_band"), on="customer_id")
    repeat_share = (
        bought.group_by("age_band", "customer_id", "item_id").len()
        .group_by("age_band")
        .agg(((pl.col("len") - 1).sum() / pl.col("len").sum()).alias("repeat"))
        .drop_nulls()
    )
    assert repeat_share["repeat"].min() > 0.3


# --------------------------------------------------------------------------- I/O and config


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_demo_round_trip(small: DemoData, tmp_path: Path, fmt: str) -> None:
    paths = write_demo(small, tmp_path / "demo", fmt=fmt)  # type: ignore[arg-type]
    assert set(paths) == {"items", "customers", "events"}
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted(
        f"{name}.{fmt}" for name in paths)
    for name, frame in (("items", small.items), ("customers", small.customers),
                        ("events", small.events)):
        path = paths[name]
        back = pl.read_csv(path, infer_schema_length=None) if fmt == "csv" else pl.read_parquet(path)
        assert back.equals(frame), name


def test_write_demo_rejects_an_unknown_format(small: DemoData, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        write_demo(small, tmp_path, fmt="xlsx")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"categories": 0}, "categories"),
        ({"categories": 99}, "categories"),
        ({"items": 3}, "items"),
        ({"customers": 0}, "customers"),
        ({"days": 7}, "days"),
        ({"start": "first of May"}, "start"),
    ],
)
def test_invalid_config_is_rejected(changes: dict[str, object], field: str) -> None:
    config = DemoConfig(**{**SMALL.__dict__, **changes})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"DemoConfig.{field}"):
        generate_demo(config)
