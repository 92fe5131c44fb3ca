"""Import of items, customers and events into the store, all or nothing.

Every table is validated in full before anything is written; a single problem
anywhere stops the import with a :class:`~recsys.errors.DataValidationError`
listing every problem found (up to a cap) and leaves the store unchanged. The
write itself runs in one transaction, in batches, so a failure half-way (a
lost connection, a disk full) rolls everything back too.

Customer ids are pseudonymised before they reach the store. Items and
customers are upserted (attributes replaced, consent kept); events with an
``event_id`` already in the store are skipped, so re-importing is idempotent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from recsys.data import schema
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store
from recsys.data.validate import (
    Table as InputTable,
)
from recsys.data.validate import (
    read_table,
    validate_customers,
    validate_events,
    validate_items,
)
from recsys.errors import DataValidationError, Problem

BATCH_ROWS = 20_000

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as batches are written."""


@dataclass(frozen=True)
class ImportReport:
    """What an import changed."""

    items_inserted: int = 0
    items_updated: int = 0
    customers_inserted: int = 0
    customers_updated: int = 0
    events_inserted: int = 0
    events_skipped: int = 0  # event_id already in the store
    sensitive: tuple[str, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"items: {self.items_inserted} new, {self.items_updated} updated; "
            f"customers: {self.customers_inserted} new, {self.customers_updated} updated; "
            f"events: {self.events_inserted} new, {self.events_skipped} already present"
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def insert_statement(conn: Connection, table: Table) -> Any:
    """An INSERT for ``table`` in the dialect of ``conn``, so callers can add
    ``.on_conflict_do_nothing()`` / ``.on_conflict_do_update(...)`` (both SQLite and PostgreSQL
    spell upserts this way; SQLAlchemy's generic ``insert`` has no conflict clause).

    Raises NotImplementedError for any other database.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect '{dialect}': use SQLite or PostgreSQL")


def _batches(rows: pl.DataFrame, size: int = BATCH_ROWS) -> Iterable[pl.DataFrame]:
    for start in range(0, rows.height, size):
        yield rows.slice(start, size)


def _existing(conn: Connection, column: Any) -> pl.Series:
    values = conn.execute(select(column)).scalars().all()
    return pl.Series(column.name, values, dtype=pl.Utf8)


def import_tables(
    store: Store,
    pseudonymiser: Pseudonymiser,
    *,
    items: InputTable | None = None,
    customers: InputTable | None = None,
    events: InputTable | None = None,
    sensitive: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportReport:
    """Validate then write; raises :class:`DataValidationError` and writes nothing on any problem."""
    started = time.perf_counter()
    problems: list[Problem] = []
    total = 0
    sensitive = tuple(dict.fromkeys(s.strip() for s in sensitive if s.strip()))

    with store.engine.connect() as conn:
        store_items = _existing(conn, schema.items.c.item_id)
        store_keys = _existing(conn, schema.customers.c.customer_key)
        known_attrs = set(conn.execute(select(schema.attribute_definitions.c.name)).scalars())

    item_frame = cust_frame = event_frame = None
    if items is not None:
        item_frame, p, n = validate_items(items)
        problems += p
        total += n
    if customers is not None:
        cust_frame, p, n = validate_customers(customers, sensitive=sensitive, known_attributes=known_attrs)
        problems += p
        total += n
        if "customer_id" in cust_frame.columns:
            cust_frame = cust_frame.with_columns(
                pseudonymiser.series(cust_frame["customer_id"]).alias("customer_key")
            )
    elif sensitive:
        for name in sensitive:
            if name not in known_attrs:
                problems.append(Problem("--sensitive", None, name, f"no customer attribute '{name}' is known: import a customers file with that column"))
                total += 1
    if events is not None:
        item_ids = store_items
        if item_frame is not None and item_frame.height:
            item_ids = pl.concat([store_items, item_frame["item_id"].drop_nulls()])
        keys = store_keys
        if cust_frame is not None and "customer_key" in cust_frame.columns:
            keys = pl.concat([store_keys, cust_frame["customer_key"].drop_nulls()])
        event_frame, p, n = validate_events(
            events,
            item_ids=item_ids,
            customer_keys=keys,
            to_key=pseudonymiser.series,
            customer_label=customers.label if customers is not None else "customers",
        )
        problems += p
        total += n
    if problems:
        order = {label: i for i, label in enumerate(dict.fromkeys(p.file for p in problems))}
        problems.sort(key=lambda p: (order[p.file], p.row if p.row is not None else 0))
        raise DataValidationError(problems, total=total)

    report: dict[str, Any] = {"sensitive": sensitive}
    now = _now()
    with store.transaction() as conn:
        if item_frame is not None and item_frame.height:
            report.update(_write_items(conn, item_frame, store_items, now, progress))
        if cust_frame is not None and cust_frame.height:
            _write_attribute_definitions(conn, cust_frame, sensitive)
            report.update(_write_customers(conn, cust_frame, store_keys, now, progress))
        elif sensitive:
            _mark_sensitive(conn, sensitive)
        if event_frame is not None and event_frame.height:
            report.update(_write_events(conn, event_frame, progress))
    return ImportReport(**report, seconds=time.perf_counter() - started)


def import_files(
    store: Store,
    pseudonymiser: Pseudonymiser,
    *,
    items: Path | None = None,
    customers: Path | None = None,
    events: Path | None = None,
    sensitive: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportReport:
    """Read CSV/Parquet files in the generic format and import them (see :func:`import_tables`)."""
    return import_tables(
        store,
        pseudonymiser,
        items=read_table(items, kind="items") if items else None,
        customers=read_table(customers, kind="customers") if customers else None,
        events=read_table(events, kind="events") if events else None,
        sensitive=sensitive,
        progress=progress,
    )


def import_frames(
    store: Store,
    pseudonymiser: Pseudonymiser,
    *,
    items: pl.DataFrame | None = None,
    customers: pl.DataFrame | None = None,
    events: pl.DataFrame | None = None,
    sensitive: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportReport:
    """Import in-memory frames in the generic format (demo data, real datasets)."""
    return import_tables(
        store,
        pseudonymiser,
        items=InputTable(items, "items") if items is not None else None,
        customers=InputTable(customers, "customers") if customers is not None else None,
        events=InputTable(events, "events") if events is not None else None,
        sensitive=sensitive,
        progress=progress,
    )


def _write_items(
    conn: Connection, frame: pl.DataFrame, existing: pl.Series, now: datetime, progress: Progress | None
) -> dict[str, int]:
    t = schema.items
    updated = int(frame["item_id"].is_in(existing.implode()).sum())
    done = 0
    for batch in _batches(frame):
        rows = [
            {**r, "attributes": json.loads(r["attributes"]), "created_at": now, "updated_at": now}
            for r in batch.to_dicts()
        ]
        stmt = insert_statement(conn, t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.item_id],
            set_={c: stmt.excluded[c] for c in ("title", "description", "category", "brand", "price", "active", "attributes", "updated_at")},
        )
        conn.execute(stmt, rows)
        done += batch.height
        if progress:
            progress("items", done, frame.height)
    return {"items_inserted": frame.height - updated, "items_updated": updated}


def _write_attribute_definitions(conn: Connection, frame: pl.DataFrame, sensitive: Sequence[str]) -> None:
    names: set[str] = set(sensitive)
    for attrs in frame["attributes"].unique().to_list():
        names.update(json.loads(attrs).keys())
    if not names:
        return
    t = schema.attribute_definitions
    stmt = insert_statement(conn, t)
    # A name once declared sensitive stays sensitive: an import that forgets
    # --sensitive must not quietly turn an audit-only attribute into a feature.
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.name], set_={"sensitive": t.c.sensitive | stmt.excluded.sensitive}
    )
    conn.execute(stmt, [{"name": n, "sensitive": n in sensitive} for n in sorted(names)])


def _mark_sensitive(conn: Connection, sensitive: Sequence[str]) -> None:
    t = schema.attribute_definitions
    conn.execute(t.update().where(t.c.name.in_(list(sensitive))).values(sensitive=True))


def _write_customers(
    conn: Connection, frame: pl.DataFrame, existing: pl.Series, now: datetime, progress: Progress | None
) -> dict[str, int]:
    t = schema.customers
    updated = int(frame["customer_key"].is_in(existing.implode()).sum())
    done = 0
    for batch in _batches(frame.select("customer_key", "attributes")):
        rows = [
            {
                "customer_key": key,
                "attributes": json.loads(attrs),
                "consent_personalisation": True,
                "created_at": now,
            }
            for key, attrs in batch.iter_rows()
        ]
        stmt = insert_statement(conn, t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.customer_key], set_={"attributes": stmt.excluded.attributes}
        )
        conn.execute(stmt, rows)
        done += batch.height
        if progress:
            progress("customers", done, frame.height)
    return {"customers_inserted": frame.height - updated, "customers_updated": updated}


EVENT_COLUMNS = ("event_id", "customer_key", "item_id", "event_type", "ts", "value")


def _write_events(conn: Connection, frame: pl.DataFrame, progress: Progress | None) -> dict[str, int]:
    t = schema.events
    with_id = frame.filter(pl.col("event_id").is_not_null())
    skipped = 0
    if with_id.height:
        present = conn.execute(select(t.c.event_id).where(t.c.event_id.is_not(None))).scalars().all()
        if present:
            seen = pl.Series("event_id", present, dtype=pl.Utf8)
            mask = frame["event_id"].is_in(seen.implode()).fill_null(False)
            skipped = int(mask.sum())
            frame = frame.filter(~mask)
    rows = frame.select(EVENT_COLUMNS)
    if conn.dialect.name == "postgresql":
        _copy_events_postgres(conn, rows, progress)
    elif conn.dialect.name == "sqlite":
        _insert_events_sqlite(conn, rows, progress)
    else:
        insert_statement(conn, t)  # raises: unsupported dialect
    return {"events_inserted": rows.height, "events_skipped": skipped}


def _insert_events_sqlite(conn: Connection, rows: pl.DataFrame, progress: Progress | None) -> None:
    """Plain DB-API ``executemany`` of tuples; indexes rebuilt once for a large load.

    Inserting into four B-tree indexes keyed by random strings dominates a
    bulk load; when the load is larger than what is stored, dropping the
    indexes and rebuilding them after (inside the same transaction) is several
    times faster. SQLite DDL is transactional, so a failure rolls this back too.
    """
    existing = conn.execute(select(func.count()).select_from(schema.events)).scalar_one()
    rebuild = rows.height > max(existing, 50_000)
    indexes = [ix for ix in schema.events.indexes]
    if rebuild:
        for ix in indexes:
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{ix.name}"')
    sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    done = 0
    try:
        for batch in _batches(rows, BATCH_ROWS * 5):
            cursor.executemany(sql, batch.iter_rows())
            done += batch.height
            if progress:
                progress("events", done, rows.height)
    finally:
        cursor.close()
    if rebuild:
        for ix in indexes:
            ix.create(conn)


def _copy_events_postgres(conn: Connection, rows: pl.DataFrame, progress: Progress | None) -> None:
    """``COPY ... FROM STDIN`` in the import's transaction: the fastest PostgreSQL path."""
    dbapi = conn.connection.driver_connection
    done = 0
    sql = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    with dbapi.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        for batch in _batches(rows, BATCH_ROWS * 5):
            for row in batch.iter_rows():
                copy.write_row(row)
            done += batch.height
            if progress:
                progress("events", done, rows.height)
