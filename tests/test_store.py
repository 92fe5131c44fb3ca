"""The store on both backends: migrations, pragmas, snapshots."""

from __future__ import annotations

import sqlalchemy as sa

from recsys.data import schema
from recsys.data.store import Store


def test_open_brings_a_new_database_to_head(db_url: str) -> None:
    store = Store.open(db_url)
    assert store.current_revision() == Store.head_revision()
    assert store.counts() == {"items": 0, "customers": 0, "events": 0}
    # a second open is a no-op upgrade
    before, after = Store.open(db_url).upgrade()
    assert before == after == Store.head_revision()


def test_open_without_upgrade_leaves_database_empty(db_url: str) -> None:
    store = Store.open(db_url, upgrade=False)
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == Store.head_revision()


def test_migrated_schema_matches_metadata(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    for table in schema.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    event_indexes = {ix["name"] for ix in inspector.get_indexes("events")}
    assert {"ix_events_customer_key", "ix_events_item_id", "ix_events_ts"} <= event_indexes


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_reject_an_event_for_a_missing_item(store: Store) -> None:
    from datetime import datetime

    import pytest

    now = datetime(2024, 1, 1)
    with store.transaction() as conn:
        conn.execute(
            schema.customers.insert().values(
                customer_key="k" * 64, attributes={}, consent_personalisation=True, created_at=now
            )
        )
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        conn.execute(
            schema.events.insert().values(customer_key="k" * 64, item_id="nope", event_type="view")
        )
    assert store.counts()["events"] == 0


def test_deleting_a_customer_cascades_to_events(store: Store) -> None:
    from datetime import datetime

    now = datetime(2024, 1, 1)
    with store.transaction() as conn:
        conn.execute(
            schema.items.insert().values(item_id="i1", active=True, attributes={}, created_at=now, updated_at=now)
        )
        conn.execute(
            schema.customers.insert().values(
                customer_key="k" * 64, attributes={}, consent_personalisation=True, created_at=now
            )
        )
        conn.execute(schema.events.insert().values(customer_key="k" * 64, item_id="i1", event_type="view"))
    with store.transaction() as conn:
        conn.execute(schema.customers.delete().where(schema.customers.c.customer_key == "k" * 64))
    assert store.counts() == {"items": 1, "customers": 0, "events": 0}


def test_unreachable_database_says_what_to_check() -> None:
    import pytest

    from recsys.errors import StoreError

    with pytest.raises(StoreError, match="CLEARSHELF_DATABASE_URL"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
