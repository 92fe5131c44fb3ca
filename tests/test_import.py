"""Import: validation with row and column, all or nothing, idempotence, pseudonyms."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from recsys.data import schema
from recsys.data.importer import import_files, import_frames
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store
from recsys.errors import DataValidationError, InputFileError

ITEMS = """item_id,title,category,brand,price,size
I1,Organic Whole Milk,Dairy,Meadow,1.20,1L
I2,Sourdough Loaf,Bakery,Crust,2.00,800g
I3,Free-range Eggs,Dairy,Meadow,3.10,
I4,Salted Butter,Dairy,Meadow,2.50,
I5,Strawberry Jam,Pantry,Orchard,2.50,
I6,Green Tea,Pantry,Leaf,1.99,
I7,Ground Coffee,Pantry,Bean,4.50,
"""
CUSTOMERS = """customer_id,age_band,gender,segment
alice,25-34,female,family
bob,35-44,male,single
"""
EVENTS = """event_id,customer_id,item_id,event_type,timestamp,value
e1,alice,I1,purchase,2024-03-01T10:00:00Z,2
e2,alice,I2,view,1709287200,
e3,bob,I3,cart,2024-03-01 10:00:00,
e4,bob,I1,rating,2024-03-01T11:00:00+01:00,4
e5,bob,I7,,2024-03-02,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "items": write(tmp_path, "items.csv", ITEMS),
        "customers": write(tmp_path, "customers.csv", CUSTOMERS),
        "events": write(tmp_path, "events.csv", EVENTS),
    }


def test_good_files_import_with_types(store: Store, pseudonymiser: Pseudonymiser, files: dict[str, Path]) -> None:
    report = import_files(store, pseudonymiser, **files, sensitive=["age_band", "gender"])
    assert (report.items_inserted, report.customers_inserted, report.events_inserted) == (7, 2, 5)
    assert store.counts() == {"items": 7, "customers": 2, "events": 5}
    ev = store.events_frame()
    assert ev["event_type"].to_list() == ["purchase", "view", "cart", "rating", "purchase"]
    assert ev["ts"].to_list() == [1709287200, 1709287200, 1709287200, 1709287200, 1709337600]
    assert ev["value"].to_list()[:4] == [2.0, None, None, 4.0]
    items = store.items_frame()
    assert items.filter(pl.col("item_id") == "I1")["price"].item() == pytest.approx(1.2)
    assert items.filter(pl.col("item_id") == "I1")["attributes"].item() == {"size": "1L"}
    assert store.attribute_definitions() == {"age_band": True, "gender": True, "segment": False}
    assert store.sensitive_attributes() == ("age_band", "gender")


def test_raw_customer_ids_are_never_stored(store: Store, pseudonymiser: Pseudonymiser, files: dict[str, Path]) -> None:
    import_files(store, pseudonymiser, **files)
    keys = set(store.customers_frame()["customer_key"].to_list())
    assert keys == {pseudonymiser("alice"), pseudonymiser("bob")}
    with store.engine.connect() as conn:
        for table in (schema.customers, schema.events):
            for row in conn.execute(sa.select(table)):
                assert "alice" not in str(tuple(row)) and "bob" not in str(tuple(row))


def test_bad_price_and_unknown_item_name_row_and_column_and_change_nothing(
    store: Store, pseudonymiser: Pseudonymiser, tmp_path: Path, files: dict[str, Path]
) -> None:
    import_files(store, pseudonymiser, **files)
    before = store.counts()
    lines = ITEMS.splitlines()
    lines.append("I8,Rice,Pantry,Grain,1.00,")
    lines[7] = "I7,Ground Coffee,Pantry,Bean,four fifty,"  # data row 7
    bad_items = write(tmp_path, "bad_items.csv", "\n".join(lines) + "\n")
    bad_events = write(tmp_path, "bad_events.csv", EVENTS.replace("e5,bob,I7", "e6,bob,NOPE") + "e7,alice,I8,purchase,,1\n")
    with pytest.raises(DataValidationError) as info:
        import_files(store, pseudonymiser, items=bad_items, events=bad_events)
    err = info.value
    located = {(p.file, p.row, p.column) for p in err.problems}
    assert ("bad_items.csv", 7, "price") in located
    assert ("bad_events.csv", 5, "item_id") in located
    text = str(err)
    assert "bad_items.csv, row 7 (line 8), column 'price': 'four fifty' is not a number" in text
    assert "unknown item 'NOPE'" in text
    assert store.counts() == before
    # I8 is only in the rejected items file, so it must not exist now
    assert "I8" not in store.items_frame()["item_id"].to_list()


def test_every_problem_is_listed_not_just_the_first(store: Store, pseudonymiser: Pseudonymiser, tmp_path: Path) -> None:
    items = write(tmp_path, "items.csv", "item_id,price\nA,1\nA,2\n,3\nB,-1\nC,nan\nD,x\n")
    customers = write(tmp_path, "customers.csv", "customer_id,age\nu1,30\nu1,31\n")
    events = write(
        tmp_path,
        "events.csv",
        "customer_id,item_id,event_type,timestamp,value\n"
        "u1,A,click,2024-01-01,1\n"
        "u1,A,purchase,yesterday,1\n"
        "u1,A,purchase,1700000000000,1\n"
        "ghost,A,purchase,2024-01-01,1\n"
        "u1,A,rating,2024-01-01,\n",
    )
    with pytest.raises(DataValidationError) as info:
        import_files(store, pseudonymiser, items=items, customers=customers, events=events, sensitive=["nope"])
    messages = [str(p) for p in info.value.problems]
    expected = [
        "items.csv, row 2 (line 3), column 'item_id': duplicate item_id 'A' (first seen in row 1)",
        "items.csv, row 3 (line 4), column 'item_id': 'item_id' is empty",
        "items.csv, row 4 (line 5), column 'price': price -1 is negative",
        "items.csv, row 5 (line 6), column 'price': price is NaN",
        "items.csv, row 6 (line 7), column 'price': 'x' is not a number",
        "customers.csv, row 2 (line 3), column 'customer_id': duplicate customer_id 'u1'",
        "customers.csv, column 'nope': --sensitive names 'nope'",
        "events.csv, row 1 (line 2), column 'event_type': unknown event type 'click'",
        "events.csv, row 2 (line 3), column 'timestamp': cannot read 'yesterday' as a time",
        "events.csv, row 3 (line 4), column 'timestamp': 1700000000000 looks like epoch milliseconds",
        "events.csv, row 4 (line 5), column 'customer_id': unknown customer",
        "events.csv, row 5 (line 6), column 'value': a rating event needs a value",
    ]
    for want in expected:
        assert any(m.startswith(want) for m in messages), (want, messages)
    assert all("ghost" not in m for m in messages), "raw customer ids must not appear in messages"
    assert store.counts() == {"items": 0, "customers": 0, "events": 0}


def test_missing_required_column_and_unknown_format(store: Store, pseudonymiser: Pseudonymiser, tmp_path: Path) -> None:
    items = write(tmp_path, "items.csv", "sku,title\nA,x\n")
    with pytest.raises(DataValidationError, match="required column 'item_id' is missing"):
        import_files(store, pseudonymiser, items=items)
    with pytest.raises(InputFileError, match=r"unknown format '\.xlsx'"):
        import_files(store, pseudonymiser, items=write(tmp_path, "items.xlsx", "x"))
    with pytest.raises(InputFileError, match="not found"):
        import_files(store, pseudonymiser, items=tmp_path / "nope.csv")


def test_reimporting_events_with_ids_is_idempotent(store: Store, pseudonymiser: Pseudonymiser, files: dict[str, Path]) -> None:
    import_files(store, pseudonymiser, **files)
    again = import_files(store, pseudonymiser, **files)
    assert again.events_inserted == 0 and again.events_skipped == 5
    assert (again.items_updated, again.customers_updated) == (7, 2)
    assert store.counts() == {"items": 7, "customers": 2, "events": 5}


def test_events_can_reference_items_and_customers_already_stored(
    store: Store, pseudonymiser: Pseudonymiser, files: dict[str, Path], tmp_path: Path
) -> None:
    import_files(store, pseudonymiser, items=files["items"], customers=files["customers"])
    more = write(tmp_path, "more.csv", "customer_id,item_id\nalice,I5\nbob,I6\n")
    report = import_files(store, pseudonymiser, events=more)
    assert report.events_inserted == 2
    assert store.events_frame()["event_type"].to_list() == ["purchase", "purchase"]


def test_item_update_replaces_fields_and_sensitive_flag_is_sticky(
    store: Store, pseudonymiser: Pseudonymiser, files: dict[str, Path], tmp_path: Path
) -> None:
    import_files(store, pseudonymiser, **files, sensitive=["gender"])
    write(tmp_path, "upd.csv", "item_id,title,price,active\nI1,Whole Milk 2L,2.10,false\n")
    import_files(store, pseudonymiser, items=tmp_path / "upd.csv", customers=files["customers"])
    row = store.items_frame().filter(pl.col("item_id") == "I1").row(0, named=True)
    assert (row["title"], row["price"], row["active"]) == ("Whole Milk 2L", 2.1, False)
    assert store.attribute_definitions()["gender"] is True


def test_parquet_with_native_types(store: Store, pseudonymiser: Pseudonymiser, tmp_path: Path) -> None:
    from datetime import datetime

    pl.DataFrame({"item_id": [1, 2], "price": [1.5, None]}).write_parquet(tmp_path / "items.parquet")
    pl.DataFrame({"customer_id": [10, 11], "region": ["N", None]}).write_parquet(tmp_path / "customers.parquet")
    pl.DataFrame(
        {
            "customer_id": [10, 11],
            "item_id": [1, 2],
            "timestamp": [datetime(2024, 1, 1, 12), datetime(2024, 1, 2)],
            "value": [1, 3],
        }
    ).write_parquet(tmp_path / "events.parquet")
    import_files(
        store,
        pseudonymiser,
        items=tmp_path / "items.parquet",
        customers=tmp_path / "customers.parquet",
        events=tmp_path / "events.parquet",
    )
    ev = store.events_frame()
    assert ev["item_id"].to_list() == ["1", "2"]
    assert ev["ts"].to_list() == [1704110400, 1704153600]
    assert set(ev["customer_key"]) == {pseudonymiser("10"), pseudonymiser("11")}


def test_failure_while_writing_rolls_everything_back(store: Store, pseudonymiser: Pseudonymiser) -> None:
    n = 45_000  # more than two write batches
    items = pl.DataFrame({"item_id": ["A", "B"]})
    customers = pl.DataFrame({"customer_id": ["c1"]})
    events = pl.DataFrame({"customer_id": ["c1"] * n, "item_id": ["A", "B"] * (n // 2)})

    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "events" and done > 20_000:
            raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        import_frames(store, pseudonymiser, items=items, customers=customers, events=events, progress=interrupt)
    assert store.counts() == {"items": 0, "customers": 0, "events": 0}
    report = import_frames(store, pseudonymiser, items=items, customers=customers, events=events)
    assert report.events_inserted == n


def test_failed_bulk_load_keeps_indexes_and_rows(store: Store, pseudonymiser: Pseudonymiser) -> None:
    """A bulk load drops and rebuilds indexes on SQLite; a failure must roll that back too."""
    import_frames(store, pseudonymiser, items=pl.DataFrame({"item_id": ["A"]}), customers=pl.DataFrame({"customer_id": ["c1"]}))
    n = 60_000
    events = pl.DataFrame({"customer_id": ["c1"] * n, "item_id": ["A"] * n, "event_id": [f"e{i}" for i in range(n)]})

    def interrupt(stage: str, done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_frames(store, pseudonymiser, events=events, progress=interrupt)
    assert store.counts()["events"] == 0
    names = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("events")}
    assert {"uq_events_event_id", "ix_events_customer_key", "ix_events_item_id", "ix_events_ts"} <= names
    import_frames(store, pseudonymiser, events=events)
    again = import_frames(store, pseudonymiser, events=events)
    assert again.events_skipped == n and store.counts()["events"] == n
